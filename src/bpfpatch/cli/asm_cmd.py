"""`bpfpatch asm FILE.s -o OUT`: assemble text (either style, labels, objdump listings) to bytes."""

from __future__ import annotations

from pathlib import Path

import typer

from bpfpatch.asm import assemble, outside_calls
from bpfpatch.cli.app import app
from bpfpatch.cli.output import write_atomic
from bpfpatch.errors import FileError
from bpfpatch.program import Program


@app.command("asm")
def asm_cmd(
    file: Path = typer.Argument(..., help="assembly text"),
    output: Path = typer.Option(..., "-o", "--output", help="raw little-endian instruction bytes"),
    ax: bool = typer.Option(False, "--ax", help="accept r11, the kernel-internal register (BPF_REG_AX)"),
) -> None:
    """Assemble FILE; the output is written only if the whole file assembles."""
    try:
        text = file.read_text()
    except OSError as exc:
        raise FileError(file, exc.strerror or str(exc)) from exc
    except UnicodeDecodeError as exc:
        raise FileError(file, f"not UTF-8 assembly text (byte offset {exc.start})") from exc
    insns = assemble(text, ax=ax)
    prog = Program.from_insns(insns, external=outside_calls(insns))  # calls into .text stay as they are
    write_atomic(output, prog.to_bytes())

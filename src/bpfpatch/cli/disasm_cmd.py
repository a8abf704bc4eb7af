"""`bpfpatch disasm FILE`: print programs in llvm-objdump or verifier-log syntax."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from bpfpatch.asm import listing
from bpfpatch.asm.disasm import listing_chunks
from bpfpatch.cli.app import app
from bpfpatch.cli.output import reading
from bpfpatch.loader import read_programs


@app.command("disasm")
def disasm_cmd(
    file: Path = typer.Argument(..., help="ELF object, raw instruction bytes or assembly text"),
    style: str = typer.Option("llvm", "--style", help="llvm (llvm-objdump -d) or kernel (verifier log)"),
    section: Optional[str] = typer.Option(None, "--section", help="only this ELF section"),
    source: bool = typer.Option(False, "--source", help="interleave source lines from BTF line_info"),
) -> None:
    """Disassemble every program of FILE (or one section)."""
    if style not in ("llvm", "kernel"):
        raise typer.BadParameter("style must be llvm or kernel")
    with reading(file):
        progs = read_programs(file)
    names = [section] if section else list(progs)
    if section and section not in progs:
        from bpfpatch.errors import ElfError

        raise ElfError(f"{file}: no program section {section!r} (have: {', '.join(progs)})")
    lines_src = _sources(file) if source else {}
    out = sys.stdout.buffer
    sys.stdout.flush()
    for name in names:
        if len(names) > 1 or len(progs) > 1:
            out.write(f"{name}:\n".encode())
        if lines_src.get(name):
            out.write("".join(f"{line}\n" for line in listing(progs[name], style, source=lines_src[name])).encode())
        else:
            for chunk in listing_chunks(progs[name], style):  # built with NumPy, written as it goes
                out.write(chunk)
    out.flush()


def _sources(file: Path) -> dict[str, dict[int, str]]:
    """section -> slot -> 'file:line:col  source text' from BTF line_info."""
    from bpfpatch.elf import read_object

    obj = read_object(file)
    out: dict[str, dict[int, str]] = {}
    if obj.btf is None:
        return out
    for name, prog in obj.programs.items():
        rows = {}
        for li in prog.line_info or []:
            text = obj.btf.string(li.line_off).strip()
            rows[li.insn_off] = f"{Path(obj.btf.string(li.file_name_off)).name}:{li.line_num}:{li.col}  {text}"
        out[name] = rows
    return out

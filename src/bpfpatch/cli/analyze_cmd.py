"""`bpfpatch analyze FILE`: what the verifier will think, offline, in its own log's syntax."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from bpfpatch.cli.app import app
from bpfpatch.cli.output import reading
from bpfpatch.loader import read_program


@app.command("analyze")
def analyze_cmd(
    file: Path = typer.Argument(..., help="ELF object, raw instruction bytes or assembly text"),
    prog_type: Optional[str] = typer.Option(None, "--prog-type", help="socket_filter, sched_cls, xdp, ... (default: from the ELF section name, which must give one; raw input: socket_filter)"),
    section: Optional[str] = typer.Option(None, "--section", help="the ELF section (program) to analyze"),
    budget: int = typer.Option(1_000_000, "--budget", help="processed-instruction limit (the kernel's is 1M)"),
) -> None:
    """Print the per-instruction verifier state of one program; exit 1 at the first violation."""
    from bpfpatch.analysis.verifier import AnalysisError
    from bpfpatch.elf import read_object
    from bpfpatch.errors import BpfPatchError
    from bpfpatch.kernel.analysis import analyze_object_program
    from bpfpatch.progtype import section_prog_type

    with reading(file):  # an error names the file first, as disasm's and patch's do
        program = read_program(file, section=section, linked=True)
    ptype = prog_type
    if ptype is None:
        # raw bytes and assembly text are socket filters; an ELF section its name's type, and a name that
        # gives none (suricata's "filter") is refused, as libbpf refuses to load it
        sec = program.meta.get("section") or ""
        ptype = section_prog_type(sec, f"{file}: ").name.lower() if sec else "socket_filter"
    obj = None
    if program.func_info or program.core_relos:  # the subprograms' prototypes and CO-RE types: the object's BTF
        try:
            obj = read_object(file)
        except (BpfPatchError, OSError):
            obj = None
    try:
        result = analyze_object_program(program, obj, ptype, section=section, strict=prog_type is None, budget=budget,
                                        keep_states=False, log=True)
    except AnalysisError as exc:
        for line in (exc.analysis.log if exc.analysis else []):
            typer.echo(line)
        typer.echo(f"bpfpatch: {file}: instruction {exc.index}: {exc.message}", err=True)
        raise typer.Exit(1)
    if result.log:
        typer.echo("\n".join(result.log))  # one write: a long log is ~100k lines
    typer.echo(f"processed {result.processed} insns (limit {budget}) total_states {result.total_states}")

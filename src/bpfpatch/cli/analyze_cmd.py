"""`bpfpatch analyze FILE`: what the verifier will think, offline, in its own log's syntax."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from bpfpatch.cli.app import app
from bpfpatch.loader import read_program


@app.command("analyze")
def analyze_cmd(
    file: Path = typer.Argument(..., help="ELF object, raw instruction bytes or assembly text"),
    prog_type: Optional[str] = typer.Option(None, "--prog-type", help="socket_filter, sched_cls, xdp, ... (default: from the ELF section name, which must give one; raw input: socket_filter)"),
    section: Optional[str] = typer.Option(None, "--section", help="the ELF section (program) to analyze"),
    budget: int = typer.Option(1_000_000, "--budget", help="processed-instruction limit (the kernel's is 1M)"),
) -> None:
    """Print the per-instruction verifier state of one program; exit 1 at the first violation."""
    from bpfpatch.analysis.verifier import AnalysisError, analyze
    from bpfpatch.btf.vmlinux import kernel_types
    from bpfpatch.kernel.ctxlayout import install_kernel_layouts
    from bpfpatch.progtype import section_prog_type

    install_kernel_layouts()  # the context layouts of the running kernel's BTF, the uapi ones without it

    program = _co_re(file, read_program(file, section=section, linked=True))
    ptype = prog_type
    if ptype is None:
        # raw bytes and assembly text are socket filters; an ELF section its name's type, and a name that
        # gives none (suricata's "filter") is refused, as libbpf refuses to load it
        sec = program.meta.get("section") or ""
        ptype = section_prog_type(sec, f"{file}: ").name.lower() if sec else "socket_filter"
    try:
        # kfunc prototypes and kernel struct members from the running kernel's BTF, read at first need;
        # the subprograms' prototypes (global functions are verified on their own) from the object's BTF
        result = analyze(program, ptype, budget=budget, keep_states=False, log=True, kernel_types=kernel_types,
                         funcs=_subprog_funcs(file, program, ptype), ctx_layout=_btf_ctx(program, section, strict=prog_type is None))
    except AnalysisError as exc:
        for line in (exc.analysis.log if exc.analysis else []):
            typer.echo(line)
        typer.echo(f"bpfpatch: {file}: instruction {exc.index}: {exc.message}", err=True)
        raise typer.Exit(1)
    if result.log:
        typer.echo("\n".join(result.log))  # one write: a long log is ~100k lines
    typer.echo(f"processed {result.processed} insns (limit {budget}) total_states {result.total_states}")


def _co_re(file: Path, program):
    """The program as the verifier gets it from libbpf: its CO-RE field offsets and field-exists checks applied
    against the running kernel's BTF (an object built against another vmlinux.h reads other offsets); as read
    without the kernel's BTF, CO-RE records or the object's BTF."""
    from bpfpatch.btf.core import relocated_offsets
    from bpfpatch.btf.vmlinux import kernel_types
    from bpfpatch.elf import read_object
    from bpfpatch.errors import BpfPatchError

    if not program.core_relos or kernel_types() is None:
        return program
    try:
        obj = read_object(file)
    except (BpfPatchError, OSError):
        return program
    return relocated_offsets(program, obj.btf, kernel_types()) if obj.btf is not None else program


def _btf_ctx(program, section: str | None, strict: bool = False):
    """A tp_btf / fentry / iter / lsm section's context: its target's arguments from the kernel's BTF (None
    for other sections, or without the kernel's BTF); `strict` (no --prog-type given): a target the kernel's BTF
    lacks is an `ElfError` naming the section, as libbpf refuses to load it."""
    from bpfpatch.btf.ctxargs import section_ctx_layout
    from bpfpatch.btf.vmlinux import kernel_types

    return section_ctx_layout(kernel_types(), program.meta.get("section") or section or "", strict=strict)


def _subprog_funcs(file: Path, program, ptype: str):
    """Prototypes of the program's subprograms from an ELF object's BTF and func_info (None otherwise)."""
    from bpfpatch.analysis.funcinfo import SubprogFunc
    from bpfpatch.btf.funcs import subprog_funcs
    from bpfpatch.elf import read_object
    from bpfpatch.errors import BpfPatchError
    from bpfpatch.progtype import prog_type_of

    if not program.func_info:
        return None
    try:
        obj = read_object(file)
    except (BpfPatchError, OSError):
        return None
    if obj.btf is None:
        return None
    funcs = subprog_funcs(obj.btf, [(f.insn_off, f.type_id) for f in program.func_info], prog_type_of(ptype))
    # libbpf loads a hidden global function (usdt.bpf.h's bpf_usdt_arg) as static: verified in its callers' state
    return {k: SubprogFunc(f.start, f.name, False) if f.is_global and f.name in obj.hidden_funcs else f
            for k, f in funcs.items()}

"""`bpfpatch patch IN -o OUT --pass a,b,c`: run passes on one patch list, linearize once."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from bpfpatch.cli.app import app
from bpfpatch.cli.output import reading, write_atomic
from bpfpatch.errors import BpfPatchError, FileError, ProgramError, RelocationError
from bpfpatch.loader import read_program
from bpfpatch.passes import PassContext, available_passes, get_pass, run_passes
from bpfpatch.program import Program
from bpfpatch.progtype import UnknownProgType, prog_type_of


def _aux_reg(value: str) -> int | str:
    """--aux-reg: "auto" or a register number (checked against the program by the passes)."""
    if value.strip().lower() == "auto":
        return "auto"
    try:
        reg = int(value.strip().lstrip("rR"))
    except ValueError:
        reg = -1
    if not (0 <= reg <= 9 or reg == 11):
        raise BpfPatchError(f"--aux-reg {value!r}: expected a register number (0-9, 11) or auto")
    return reg


def _div_guard_bulk(prog: Program, ctx: PassContext) -> Program:
    from bpfpatch.passes.div_guard import div_guard_bulk

    return div_guard_bulk(prog, ctx.aux_reg)


#: Passes with a bulk form (`bpfpatch.patch.replace_sites`: NumPy, no object per instruction)
#: that gives exactly what the pass gives on a patch list.
BULK_FORMS = {"div-guard": _div_guard_bulk}


def rewrite(prog: Program, names: list[str], ctx: PassContext, relax: bool = False) -> Program:
    """Run `names` on `prog`; a first pass with a bulk form runs in it, the rest on one patch list.

    A bulk rewrite whose jumps no longer fit 16 bits falls back to the patch list
    when ``relax`` asks for long-jump relaxation (the bulk form cannot relax).
    """
    bulk = BULK_FORMS.get(names[0]) if names else None
    if bulk is not None:
        try:
            out = bulk(prog, ctx)
        except RelocationError:
            if not relax:
                raise
        else:
            return run_passes(out, names[1:], ctx, relax_long_jumps=relax) if names[1:] else out
    return run_passes(prog, names, ctx, relax_long_jumps=relax)


def _typed(ctx: PassContext, section: str | None, given: object = None) -> PassContext:
    """`ctx` with the program type --prog-type gave, else the one of an ELF section (libbpf's names).

    The same context (and blinding generator) serves every section of an object.
    """
    ptype = given
    if ptype is None and section:
        try:
            ptype = prog_type_of(section)
        except UnknownProgType:
            ptype = None
    ctx.prog_type = ptype
    analysis = ctx.options.get("kernel", {}).get("analysis")
    if analysis is not None and "kernel_types" in analysis:
        # a tp_btf / fentry / iter / lsm section: the attach target's arguments, from the kernel's BTF
        from bpfpatch.btf.ctxargs import section_ctx_layout

        kt = analysis["kernel_types"]
        layout = section_ctx_layout(kt if hasattr(kt, "kfunc") else kt(), section or "")
        if layout is not None:
            analysis["ctx_layout"] = layout
        else:
            analysis.pop("ctx_layout", None)
    return ctx


def _install_kernel_layout(ctx: PassContext | None = None) -> None:
    """The analysis and the kernel pass use this kernel's layouts (its BTF, read on first use), when readable;
    the analysis under `ctx`'s kernel pass also its kfunc prototypes and kernel structs (``kernel_types``)."""
    from bpfpatch.btf.vmlinux import kernel_btf_available, kernel_types
    from bpfpatch.kernel.ctxlayout import install_kernel_layouts

    install_kernel_layouts()
    if ctx is not None and kernel_btf_available():
        ctx.options.setdefault("kernel", {}).setdefault("analysis", {}).setdefault("kernel_types", kernel_types)


class _TypeSizes(dict):
    """The sizes of an object's own BTF types by id (what ``bpf_obj_new`` allocates), read on demand."""

    def __init__(self, btf) -> None:
        super().__init__()
        self._btf = btf

    def get(self, type_id, default=None):
        try:
            return self._btf.size_of(type_id)
        except BpfPatchError:
            return default


@app.command("patch")
def patch_cmd(
    file: Path = typer.Argument(..., help="ELF object, raw instruction bytes or assembly text"),
    output: Path = typer.Option(..., "-o", "--output"),
    passes: List[str] = typer.Option([], "--pass", help=f"in order, comma-separated or repeated: {', '.join(available_passes())}; none: the identity rewrite"),
    seed: int = typer.Option(0, "--seed", help="seed of the blinding constants"),
    aux_reg: str = typer.Option("auto", "--aux-reg", help="scratch register: auto (a free one per site), 0-9, or 11 (the kernel's AX: raw output only)"),
    section: Optional[str] = typer.Option(None, "--section", help="ELF section to rewrite"),
    linked: bool = typer.Option(False, "--linked", help="link the ELF section with its .text callees and maps first"),
    relax: bool = typer.Option(False, "--relax-long-jumps", help="rewrite jumps that overflow 16 bits as gotol"),
    out_format: str = typer.Option("raw", "--format", help="raw bytes, asm (llvm listing) or elf (default for IN.o -o OUT.o)"),
    prog_type: Optional[str] = typer.Option(None, "--prog-type", help="program type (name or number) for passes that need it, e.g. kernel; default: from the ELF section name"),
) -> None:
    """Rewrite one program; the output is written atomically, only on success."""
    names = [p.strip() for given in passes for p in given.split(",") if p.strip()]
    if passes and not names:
        raise BpfPatchError("--pass needs at least one pass (leave it out for the identity rewrite)")
    for name in names:
        get_pass(name)  # unknown names fail before any input is read
    given = prog_type_of(prog_type) if prog_type else None
    ctx = PassContext(seed=seed, aux_reg=_aux_reg(aux_reg), prog_type=given)
    if "kernel" in names:
        _install_kernel_layout(ctx)
    try:
        with open(file, "rb") as f:
            is_elf = f.read(4) == b"\x7fELF"
    except OSError as exc:
        raise FileError(file, exc.strerror or str(exc)) from exc
    kernel_obj = None
    if is_elf and "kernel" in names:
        from bpfpatch.elf import read_object

        with reading(file):
            kernel_obj = read_object(file)
        if kernel_obj.btf is not None:
            ctx.options.setdefault("kernel", {}).setdefault("local_type_sizes", _TypeSizes(kernel_obj.btf))
    if is_elf and not linked and out_format in ("raw", "elf") and (out_format == "elf" or output.suffix == ".o"):
        with reading(file):
            _patch_object(file, output, names, ctx, section, relax, given)
        return
    with reading(file):
        prog = read_program(file, section=section, linked=linked)
        if not len(prog.slots):
            raise ProgramError("no instructions: an empty program cannot be patched (the kernel refuses it too)")
    if kernel_obj is not None:
        from bpfpatch.kernel.analysis import co_re_applied

        # the kernel's view starts from what libbpf hands it: the CO-RE offsets for this kernel (analyze
        # and check read the same), so the analysis types the loads the verifier types
        prog = co_re_applied(prog, kernel_obj)
    out = rewrite(prog, names, _typed(ctx, section or prog.name, given), relax)
    if out_format == "asm":
        from bpfpatch.asm import listing

        data = ("\n".join(listing(out)) + "\n").encode()
    elif out_format == "raw":
        data = out.byte_view()  # the bytes `to_bytes` gives, without a copy
    else:
        raise BpfPatchError(f"unknown --format {out_format!r} (raw or asm)")
    write_atomic(output, data)
    if is_elf and not linked and out_format == "raw":
        _say_what_was_left_out(file, prog)
    typer.echo(f"{file.name}: {len(prog.slots)} -> {len(out.slots)} slots ({', '.join(names) or 'identity'})", err=True)


def _patch_object(file: Path, output: Path, names: list[str], ctx: PassContext, section: str | None, relax: bool,
                  given: object = None) -> None:
    """Rewrite every program section (or one) of an ELF object and write a valid object."""
    from bpfpatch.elf import read_object, write_object
    from bpfpatch.elf.rewrite import check_loadable, sections_to_rewrite

    obj = read_object(file, opaque=True)
    from bpfpatch.kernel.analysis import for_object

    for_object(ctx, obj, names)  # blind: a frame it cannot follow gets the verifier's depth
    rewritten = {}
    for name in sections_to_rewrite(obj, names, [section] if section else None):
        rewritten[name] = check_loadable(name, rewrite(obj.programs[name], names, _typed(ctx, name, given), relax))
    write_object(obj, rewritten, output)
    sizes = ", ".join(f"{n} {len(obj.programs[n].slots)} -> {len(p.slots)}" for n, p in rewritten.items())
    typer.echo(f"{file.name}: {sizes or 'every section as it was'} ({', '.join(names) or 'identity'})", err=True)


def _say_what_was_left_out(file: Path, prog) -> None:
    """Raw bytes of one ELF section: name the section and what a loader would miss."""
    from bpfpatch.elf.model import R_BPF_64_32

    relocs = list(prog.meta.get("relocations") or ())
    calls = sorted({r.symbol or r.symbol_section for r in relocs if r.type == R_BPF_64_32})
    data = sorted({r.symbol or r.symbol_section for r in relocs if r.type != R_BPF_64_32})
    left = []
    if calls:
        left.append(f"the functions it calls in other sections ({', '.join(calls)})")
    if data:
        left.append(f"the maps and global data it refers to ({', '.join(data)}; their loads hold 0)")
    if prog.core_relos:
        left.append(f"{len(prog.core_relos)} CO-RE relocations")
    msg = f"{file.name}: wrote section {prog.meta.get('section', prog.name)!r} alone, as raw bytes"
    if left:
        msg += "; left out: " + "; ".join(left) + " (--linked appends the callees; -o OUT.o writes an object)"
    typer.echo(msg, err=True)

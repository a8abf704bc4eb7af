"""`rewrite_object`: run passes on every program of an ELF object and write a valid object, in one call."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from bpfpatch.elf.model import ElfModel
from bpfpatch.elf.reader import read_object
from bpfpatch.elf.writer import build_object
from bpfpatch.errors import DecodeError, ElfError
from bpfpatch.fileio import write_atomic
from bpfpatch.passes import Pass, PassContext, get_pass
from bpfpatch.isa import validate_slots
from bpfpatch.isa.opcodes import MAX_USER_REG
from bpfpatch.patch import PatchList
from bpfpatch.program import Program


def rewrite_object(source: str | Path | bytes, output: str | Path | None, passes: Sequence[str | Pass], *,
                   sections: Sequence[str] | None = None, ctx: PassContext | None = None,
                   relax_long_jumps: bool = False) -> bytes:
    """Run `passes` (names, ``module:Class`` specs or pass objects) on each program section; write `output`.

    Every section (or those in `sections`) gets one patch list, all passes in
    order, one linearize; relocations, symbols and ``.BTF.ext`` follow.  The
    new object's bytes are returned (and written atomically when `output` is
    given).  Without passes no section is rewritten, and code that does not
    decode is no obstacle: the identity gives back the input byte for byte
    (`sections_to_rewrite`).
    """
    obj = read_object(source, opaque=True)
    todo = sections_to_rewrite(obj, passes, sections)
    instances = [get_pass(p) if isinstance(p, str) else p for p in passes]
    ctx = ctx or PassContext(aux_reg="auto")
    out = {}
    for name in todo:
        pl = PatchList(obj.programs[name])
        for p in instances:
            p.run(pl, ctx)
        out[name] = check_loadable(name, pl.linearize(relax_long_jumps=relax_long_jumps))
    data = build_object(obj, out)
    if output is not None:
        write_atomic(output, data)
    return data


#: Passes whose output only the kernel itself can run, and why (refused when writing an object).
KERNEL_ONLY_PASSES = {
    "ctx": "it lowers context accesses to the kernel's internal structures (struct sk_buff), "
           "which the verifier refuses in a program it is given",
    "kernel": "it applies the verifier's post-verification rewrites (context lowering, inlined helpers, "
              "the kernel's AX), which only the kernel itself may run",
}


def refuse_kernel_only(passes: Sequence[str | Pass]) -> None:
    """`ElfError` naming the first pass whose output no loader can load (an object would be useless)."""
    for p in passes:
        name = p if isinstance(p, str) else getattr(p, "name", "")
        if name in KERNEL_ONLY_PASSES:
            raise ElfError(f"pass {name!r}: {KERNEL_ONLY_PASSES[name]}; an object written with it would not load "
                           "(write raw bytes, -o OUT.bin, to look at the kernel's form)")


def sections_to_rewrite(obj: ElfModel, passes: Sequence[str | Pass], sections: Sequence[str] | None = None) -> list[str]:
    """The program sections the passes run on (none without passes), after `refuse_for_object`.

    A section read as bytes only (``obj.opaque``: code that does not decode,
    such as a register past r10) is refused only where a pass would have to
    change it: when it is asked for (all sections are, by default), or when
    ``.text`` is rewritten, whose calls and function addresses it may hold.
    """
    if not passes:
        for name in sections or ():
            if name not in obj.programs and name not in obj.opaque:
                raise ElfError(f"no program section {name!r} (have: {', '.join(list(obj.programs) + list(obj.opaque))})")
        return []
    refuse_for_object(obj, passes)
    todo = list(sections) if sections is not None else list(obj.programs) + list(obj.opaque)
    for name in todo:
        if name in obj.opaque:
            raise ElfError(f"cannot be rewritten: {obj.opaque[name]}"
                           + ("; name the other sections to rewrite them" if sections is None else ""), section=name)
        if name not in obj.programs:
            raise ElfError(f"no program section {name!r} (have: {', '.join(obj.programs)})")
    if obj.opaque and ".text" in todo:
        held = ", ".join(obj.opaque)
        raise ElfError(f"cannot rewrite .text: {held} does not decode and may call into it", section=".text")
    return todo


def refuse_for_object(obj: ElfModel, passes: Sequence[str | Pass]) -> None:
    """`refuse_kernel_only`: passes whose output no loader can load."""
    refuse_kernel_only(passes)


def check_loadable(section: str, prog: Program) -> Program:
    """`prog` if a loader may be given it, else `ElfError` (e.g. the kernel's AX, r11, in the code)."""
    try:
        validate_slots(prog.slots, max_reg=MAX_USER_REG)
    except DecodeError as exc:
        raise ElfError(f"the rewrite holds code only the kernel itself can load ({exc}); "
                       "with --aux-reg auto the passes use registers a loader accepts", section=section) from exc
    return prog


__all__ = ["KERNEL_ONLY_PASSES", "check_loadable", "refuse_for_object", "refuse_kernel_only", "rewrite_object", "sections_to_rewrite"]

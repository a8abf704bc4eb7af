"""`rewrite_object`: run passes on every program of an ELF object and write a valid object, in one call."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from bpfpatch.elf.reader import read_object
from bpfpatch.elf.writer import build_object
from bpfpatch.errors import ElfError
from bpfpatch.fileio import write_atomic
from bpfpatch.passes import Pass, PassContext, get_pass
from bpfpatch.patch import PatchList


def rewrite_object(source: str | Path | bytes, output: str | Path | None, passes: Sequence[str | Pass], *,
                   sections: Sequence[str] | None = None, ctx: PassContext | None = None,
                   relax_long_jumps: bool = False) -> bytes:
    """Run `passes` (names, ``module:Class`` specs or pass objects) on each program section; write `output`.

    Every section (or those in `sections`) gets one patch list, all passes in
    order, one linearize; relocations, symbols and ``.BTF.ext`` follow.  The
    new object's bytes are returned (and written atomically when `output` is
    given).
    """
    obj = read_object(source)
    todo = list(sections) if sections is not None else list(obj.programs)
    for name in todo:
        if name not in obj.programs:
            raise ElfError(f"no program section {name!r} (have: {', '.join(obj.programs)})")
    instances = [get_pass(p) if isinstance(p, str) else p for p in passes]
    ctx = ctx or PassContext()
    out = {}
    for name in todo:
        pl = PatchList(obj.programs[name])
        for p in instances:
            p.run(pl, ctx)
        out[name] = pl.linearize(relax_long_jumps=relax_long_jumps)
    data = build_object(obj, out)
    if output is not None:
        write_atomic(output, data)
    return data


__all__ = ["rewrite_object"]

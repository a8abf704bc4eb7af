"""Rewriting passes on one shared patch list, and the pipeline that runs them.

Each pass lives in its own module and registers itself in `PASSES` by name;
`run_passes` builds one `PatchList`, runs the passes in order and linearizes
once.
"""

from __future__ import annotations

import importlib
from typing import Sequence

from bpfpatch.errors import PatchError
from bpfpatch.passes.base import Pass, PassContext
from bpfpatch.patch import PatchList
from bpfpatch.program import Program

# name -> module defining a class with `name` and `run(pl, ctx)`; imported lazily.
_PASS_MODULES = {
    "div-guard": "bpfpatch.passes.div_guard",
    "dce": "bpfpatch.passes.dce",
    "blind": "bpfpatch.passes.blind",
    "zext": "bpfpatch.passes.zext",
    "ctx": "bpfpatch.passes.ctx",
}


def get_pass(name: str) -> Pass:
    """The pass registered under `name` (an instance)."""
    modname = _PASS_MODULES.get(name)
    if modname is None:
        raise PatchError(f"unknown pass {name!r} (known: {', '.join(sorted(_PASS_MODULES))})")
    module = importlib.import_module(modname)
    return module.PASS()


def available_passes() -> list[str]:
    return sorted(_PASS_MODULES)


def run_passes(
    program: Program,
    names: Sequence[str],
    ctx: PassContext | None = None,
    *,
    relax_long_jumps: bool = False,
) -> Program:
    """Run the named passes on one patch list and linearize once."""
    ctx = ctx or PassContext()
    passes = [get_pass(n) for n in names]
    pl = PatchList(program)
    for p in passes:
        p.run(pl, ctx)
    return pl.linearize(relax_long_jumps=relax_long_jumps)


__all__ = ["Pass", "PassContext", "available_passes", "get_pass", "run_passes"]

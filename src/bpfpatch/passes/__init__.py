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
    "kernel": "bpfpatch.passes.kernel",
}


def get_pass(name: str) -> Pass:
    """The pass registered under `name` (an instance), or a user's ``package.module:ClassName``."""
    if ":" in name:
        return _user_pass(name)
    modname = _PASS_MODULES.get(name)
    if modname is None:
        raise PatchError(f"unknown pass {name!r} (known: {', '.join(sorted(_PASS_MODULES))})")
    module = importlib.import_module(modname)
    return module.PASS()


def _user_pass(spec: str) -> Pass:
    """Import ``package.module:ClassName`` and instantiate it; it must have `name` and `run(pl, ctx)`."""
    modname, _, clsname = spec.partition(":")
    try:
        module = importlib.import_module(modname)
    except ImportError as exc:
        raise PatchError(f"pass {spec!r}: cannot import {modname!r} ({exc})") from None
    cls = getattr(module, clsname, None)
    if cls is None:
        raise PatchError(f"pass {spec!r}: module {modname!r} has no {clsname!r}")
    obj = cls() if isinstance(cls, type) else cls
    if not callable(getattr(obj, "run", None)):
        raise PatchError(f"pass {spec!r}: {clsname} has no run(pl, ctx) method")
    return obj


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
    if passes and callable(getattr(passes[0], "prepare", None)):
        passes[0].prepare(program, ctx)  # the first pass's work on the program alone, before the list exists
    pl = PatchList(program, kernel_internal=True)  # passes emit the kernel's own forms (AX, zext marker)
    for p in passes:
        p.run(pl, ctx)
    return pl.linearize(relax_long_jumps=relax_long_jumps)


__all__ = ["Pass", "PassContext", "available_passes", "get_pass", "run_passes"]

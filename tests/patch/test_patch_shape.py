"""The simple core stays simple: every public `PatchList` operation, and every seed operation it
applies (`bpfpatch.patch.apply`), reads on one screen (issue 16's "Done when")."""

from __future__ import annotations

import inspect

from bpfpatch.patch import PatchList, apply

#: One screen: the function's whole source, docstring included.
SCREEN = 50


def _public_functions() -> dict[str, object]:
    out: dict[str, object] = {}
    for name, member in vars(PatchList).items():
        if name.startswith("_") and name not in ("__init__", "__iter__", "__len__"):
            continue
        func = member.fget if isinstance(member, property) else member
        if inspect.isfunction(func):
            out[f"PatchList.{name}"] = func
    for name, func in vars(apply).items():
        if inspect.isfunction(func) and not name.startswith("_") and func.__module__ == apply.__name__:
            out[f"apply.{name}"] = func
    return out


def test_the_operations_are_found():
    names = _public_functions()
    assert {"PatchList.replace", "PatchList.prepend", "PatchList.append", "PatchList.delete",
            "PatchList.linearize", "PatchList.replace_rows", "apply.replace_now", "apply.delete_now"} <= set(names)


def test_every_public_operation_reads_on_one_screen():
    long = {name: len(inspect.getsourcelines(func)[0]) for name, func in _public_functions().items()}
    assert {name: n for name, n in long.items() if n > SCREEN} == {}

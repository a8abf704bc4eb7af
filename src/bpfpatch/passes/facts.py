"""The verifier's facts on a patch list: attaching them, reading them, and a fallback.

`attach_facts` runs the analysis (`bpfpatch.analysis.verifier.analyze`) once
and gives every original node its `InsnAux` as aux data, by reference (the
kernel's ``insn_aux_data``); nodes passes insert later have no facts
(``None``).  `facts_of` reads them back.  Without facts, zext's
`bpfpatch.passes.zext.ctx_pointer_loads` is the fallback (which loads read
through a register that may hold the context pointer).
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from bpfpatch.analysis.facts import InsnAux, RegType
from bpfpatch.errors import PatchError
from bpfpatch.patch import DELETED, Node, PatchList
from bpfpatch.progtype import ProgType, prog_type_of


def analysis_of(program: Any, prog_type: ProgType, **options: Any) -> list[InsnAux | None]:
    """One `InsnAux` (or None) per slot of `program`, from the verification layer."""
    try:
        from bpfpatch.analysis.verifier import analyze
    except ImportError as exc:  # the analysis is the verification layer's; say so plainly
        raise PatchError(f"kernel: the verifier analysis is not available ({exc})") from exc
    result = analyze(program, prog_type, **options)
    for name in ("aux", "insn_aux", "facts"):
        aux = getattr(result, name, None)
        if aux is not None:
            return list(aux)
    return list(result)


def attach_facts(pl: PatchList, prog_type: "ProgType | int | str", *, facts: "list[InsnAux | None] | None" = None,
                 **options: Any) -> int:
    """Analyze the list's program once and hang each slot's facts on its node; returns how many.

    ``facts``: `analysis_of` the list's program, already run (then `options` are not used).
    """
    ptype = prog_type_of(prog_type)
    if facts is None:
        facts = analysis_of(pl.program, ptype, **options)
    # By the store's columns, 256 slots at a time (no handle a node, no int list of the program)
    store, nslots = pl.store, len(pl.program.slots)
    count = 0
    for lo in range(0, len(facts), _CHUNK):
        part = facts[lo:lo + _CHUNK]
        slots = np.flatnonzero(np.fromiter((aux is not None for aux in part), dtype=np.bool_, count=len(part))) + lo
        inside = slots[slots < nslots]
        nids = store.slot_to_id[inside]
        if (nids <= 0).any() or len(inside) < len(slots):  # an ld_imm64's second half, or past the end
            pl.node_at(int(inside[np.argmax(nids <= 0)]) if (nids <= 0).any() else int(slots[len(inside)]))  # raises
        live = pl.orig_indices(nids) != DELETED
        kept = (slots[live] - lo).tolist()
        store.set_aux_many(nids[live].tolist(), [part[k] for k in kept])
        count += len(kept)
    _WITH_FACTS.add(pl)
    return count


def facts_of(node: Node) -> InsnAux | None:
    """The node's verifier facts, or None (an inserted node, or a list without facts)."""
    aux = node.aux
    return aux if isinstance(aux, InsnAux) else None


def has_facts(pl: PatchList) -> bool:
    """Does the list carry verifier facts? (`attach_facts` ran on it, or its first nodes hold `InsnAux`.)

    Facts hang on every original node, so a list without them shows it in
    its first few nodes; no walk over a long list.
    """
    if pl in _WITH_FACTS:
        return True
    for k, node in enumerate(pl):
        if isinstance(node.aux, InsnAux):
            return True
        if k >= _PROBE:
            return False
    return False


_WITH_FACTS: "weakref.WeakSet[PatchList]" = weakref.WeakSet()
_CHUNK = 256  # slots `attach_facts` takes at once
_PROBE = 16


def require_facts(node: Node, what: str) -> InsnAux:
    """The node's facts, or a PatchError naming the pass that needed them."""
    aux = facts_of(node)
    if aux is None:
        raise PatchError(f"{what}: node {node!r} has no verifier facts (run the analysis first)")
    return aux


def verified_stack_depth(node: Node) -> int | None:
    """By the facts on a subprogram's first node: its stack depth as the verifier computed it, or None (no facts).

    The kernel's ``subprog_info[].stack_depth``: the deepest byte any verified
    path of the subprogram touched below its frame pointer, rounded up to 8
    (update_stack_depth); a variable-offset access counts its lowest bound.
    """
    aux = facts_of(node)
    if aux is None:
        return None
    return aux.stack_depth


def is_ctx_access(node: Node) -> bool | None:
    """By the facts: does the node access memory through the context pointer? (None: no facts.)"""
    aux = facts_of(node)
    if aux is None:
        return None
    return aux.ptr_type == RegType.PTR_TO_CTX


__all__ = ["analysis_of", "attach_facts", "facts_of", "has_facts", "is_ctx_access", "require_facts",
           "verified_stack_depth"]

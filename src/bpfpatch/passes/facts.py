"""The verifier's facts on a patch list: attaching them, reading them, and a fallback.

`attach_facts` runs the analysis (`bpfpatch.analysis.verifier.analyze`) once
and gives every original node its `InsnAux` as aux data, by reference (the
kernel's ``insn_aux_data``); nodes passes insert later have no facts
(``None``).  `facts_of` reads them back.  `ctx_loads` is the fallback a
standalone pass uses when a list carries no facts: which loads read through
a register that may hold the context pointer (r1 at entry, copies, stack
spills of it).
"""

from __future__ import annotations

import weakref
from typing import Any

from bpfpatch.analysis.facts import InsnAux, RegType
from bpfpatch.errors import PatchError
from bpfpatch.isa import KIND_OF, Insn, Kind
from bpfpatch.isa.opcodes import SIZE_MASK, AluOp, InsnClass, Size, Source
from bpfpatch.patch import Node, PatchList
from bpfpatch.progtype import ProgType, prog_type_of

_MOV64_X = InsnClass.ALU64 | AluOp.MOV | Source.X
_FP = 10


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


def attach_facts(pl: PatchList, prog_type: "ProgType | int | str", **options: Any) -> int:
    """Analyze the list's program once and hang each slot's facts on its node; returns how many."""
    ptype = prog_type_of(prog_type)
    facts = analysis_of(pl.program, ptype, **options)
    count = 0
    for slot, aux in enumerate(facts):
        if aux is None:
            continue
        node = pl.node_at(slot)
        if not node.deleted:
            node.aux = aux
            count += 1
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
_PROBE = 16


def require_facts(node: Node, what: str) -> InsnAux:
    """The node's facts, or a PatchError naming the pass that needed them."""
    aux = facts_of(node)
    if aux is None:
        raise PatchError(f"{what}: node {node!r} has no verifier facts (run the analysis first)")
    return aux


def is_ctx_access(node: Node) -> bool | None:
    """By the facts: does the node access memory through the context pointer? (None: no facts.)"""
    aux = facts_of(node)
    if aux is None:
        return None
    return aux.ptr_type == RegType.PTR_TO_CTX


def ctx_loads(insns: list[Insn], joins: "set[int] | frozenset[int]" = frozenset()) -> list[bool]:
    """Per instruction: is it a load whose base register may hold the context pointer?

    Tracking without facts: r1-r5 may hold the context at entry, ``rX = rY``
    copies it, an 8-byte store to the stack spills it and an 8-byte load from
    that slot fills it; anything else that writes a register, and a call,
    forgets it.  Where control may arrive from elsewhere -- the indices in
    `joins` (jump and call targets), and after an ``exit`` or ``goto`` (the
    next function of a section, or a target) -- nothing is known: every
    register and stack slot may hold it.  So "no" is sound and "maybe" is
    an over-approximation; the passes that use this treat "maybe" as "yes".
    """
    # At entry r1 holds the context; a function of `.text` entered from another section may hold
    # it in any argument register (r2-r5 are uninitialized in a program's main function, so
    # counting them costs nothing there).
    regs = {1, 2, 3, 4, 5}
    slots: set[int] = set()
    any_slot = False            # every stack slot may hold the context pointer
    out = []
    top = False
    for k, insn in enumerate(insns):
        code, dst, src, off, _ = insn
        kind = KIND_OF[code]
        if top or k in joins:
            regs, slots, any_slot = set(range(_FP)), set(), True
        top = kind in (Kind.EXIT, Kind.JA, Kind.GOTOL)
        out.append(kind in (Kind.LDX, Kind.LDSX) and src in regs)
        if kind == Kind.ALU_X and code == _MOV64_X and off == 0:
            (regs.add if src in regs else regs.discard)(dst)
        elif kind == Kind.STX and dst == _FP and code & SIZE_MASK == Size.DW:
            (slots.add if src in regs else slots.discard)(off)
        elif kind == Kind.LDX and src == _FP and code & SIZE_MASK == Size.DW and (any_slot or off in slots):
            regs.add(dst)
        elif kind in (Kind.CALL, Kind.LD_ABS, Kind.LD_IND):
            regs -= {0, 1, 2, 3, 4, 5}
        elif kind in (Kind.ALU_K, Kind.ALU_X, Kind.NEG, Kind.END, Kind.LDX, Kind.LDSX, Kind.LD_IMM64):
            regs.discard(dst)
    return out


__all__ = ["analysis_of", "attach_facts", "ctx_loads", "facts_of", "has_facts", "is_ctx_access", "require_facts"]

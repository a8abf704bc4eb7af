"""zext: explicit zero extension after 32-bit sub-register definitions.

JITs for 32-bit hardware (and some 64-bit ones) do not clear the upper half
when an instruction writes a 32-bit sub-register; the kernel then inserts a
zero extension after each such definition whose upper half is READ later
(opt_subreg_zext_lo32_rnd_hi32, decided by the verifier's 64-bit read
liveness).  This pass makes the same decision with a backward liveness over
the control flow graph and inserts ``w_dst = w_dst`` right after the
definition::

    w1 = w2                 w1 = w2
    r0 = r1          ->     w1 = w1      ; upper half of r1 is read as 64 bits
    exit                    r0 = r1
                            exit

A definition whose register is only read as 32 bits, or redefined, before
any 64-bit read gets nothing.  Reads: 64-bit ALU and JMP operands, pointers
(LDX/STX/ST/atomic bases), DW store values, call arguments r1-r5 and the
exit value r0.  The liveness is the analysis layer's one backward data flow
(`bpfpatch.analysis.liveness`, its 64-bit read view: linear, a chain of
backward gotos costs one sweep plus one re-visit per back edge).  When the
nodes carry the verifier's facts (`bpfpatch.analysis.facts`),
the pass zero-extends exactly where ``zext_dst`` says; without them it never
zero-extends a 32-bit load of a context field the verifier turns into a
pointer (``__sk_buff`` / ``xdp_md`` ``data``, ``data_end``, ``data_meta``,
for the program type the section name gives, or any type's for ``.text``)
through a register that may hold the context pointer: ``w2 = w2`` would
truncate the packet pointer (`ctx_pointer_loads`).  With ``options["zext"]["kernel_form"]`` the inserted move
carries imm=1, the kernel's internal BPF_ZEXT_REG marker (only the kernel
accepts it).  The decision is recorded as ``zext_dst`` in dict aux data.
"""

from __future__ import annotations

from typing import Callable, ClassVar

import numpy as np

from bpfpatch.analysis.liveness import list_liveness
from bpfpatch.analysis.liveness import wide_uses_defs as uses_defs
from bpfpatch.isa import KIND_OF, Insn, Kind
from bpfpatch.isa.opcodes import SIZE_MASK, AluOp, InsnClass, Size, Source
from bpfpatch.passes.base import PassContext
from bpfpatch.analysis.ctxlayout import UAPI_LAYOUTS, uapi_layout
from bpfpatch.passes.facts import facts_of, has_facts
from bpfpatch.patch import Node, PatchList
from bpfpatch.progtype import UnknownProgType, prog_type_of

ARGS = frozenset(range(1, 6))
CALLER_SAVED = frozenset(range(0, 6))


def liveness(pl: PatchList) -> tuple[np.ndarray, Callable[[int], int], np.ndarray]:
    """64-bit read liveness over the live nodes (`bpfpatch.analysis.liveness`, linear in the edges).

    Returns (live node ids, position -> mask of the registers read as 64 bits
    after it, per position the register of its 32-bit definition or -1).
    """
    ids, live, d32 = list_liveness(pl, wide=True)
    return ids, live.out, d32


def needs_zext(pl: PatchList) -> list:
    """Nodes whose 32-bit definition is read as 64 bits on some path (backward liveness)."""
    ids, out_of, d32 = liveness(pl)
    result = []
    for i in np.flatnonzero(d32 >= 0).tolist():
        if out_of(i) >> int(d32[i]) & 1:
            result.append(Node(pl, int(ids[i])))
    return result


class Zext:
    """Insert zero extension after 32-bit definitions whose upper half is read."""

    name: ClassVar[str] = "zext"

    def run(self, pl: PatchList, ctx: PassContext) -> None:
        kernel_form = bool(ctx.options.get("zext", {}).get("kernel_form", False))
        if has_facts(pl):
            # The verifier's decision, exactly (opt_subreg_zext_lo32_rnd_hi32 reads zext_dst).
            sites = [node for node in pl if (f := facts_of(node)) is not None and f.zext_dst]
        else:
            sites = needs_zext(pl)
            # A 32-bit context load may be one the kernel turns into a 64-bit pointer load
            # (data, data_end, data_meta): zero-extending it would truncate the pointer.
            offsets = ctx_pointer_offsets(_prog_type(pl, ctx))
            maybe_ctx = {n for n, ok in zip(sites, _maybe_ctx_loads(pl, sites, offsets)) if ok}
            sites = [n for n in sites if n not in maybe_ctx]
        for node in sites:
            reg = uses_defs(node.insn)[2]
            if reg is None:
                continue
            pl.append(node, [Insn(InsnClass.ALU | AluOp.MOV | Source.X, reg, reg, 0, 1 if kernel_form else 0)])
            if node.aux is None:
                node.aux = {"zext_dst": True}
            elif isinstance(node.aux, dict):
                node.aux["zext_dst"] = True


def _prog_type(pl: PatchList, ctx: PassContext):
    """The context's program type, else the one the list's ELF section name gives (None: not known)."""
    if ctx.prog_type is not None:
        return prog_type_of(ctx.prog_type)
    section = (pl.program.meta or {}).get("section") or pl.program.name
    try:
        return prog_type_of(section) if section else None
    except UnknownProgType:
        return None


def ctx_pointer_offsets(prog_type) -> frozenset[int]:
    """Context offsets whose 32-bit load the verifier turns into a pointer (every type's when `prog_type` is None)."""
    layouts = [uapi_layout(prog_type)] if prog_type is not None else list(UAPI_LAYOUTS.values())
    return frozenset(off for layout in layouts for off, (_, size) in layout.pointers.items() if size == 4)


def _maybe_ctx_loads(pl: PatchList, sites: list, offsets: frozenset[int]) -> list[bool]:
    """For each site: is it a load of a pointer field through a register that may hold the context pointer?"""
    if not offsets or not any(KIND_OF[n.insn.code] == Kind.LDX and n.insn.off in offsets for n in sites):
        return [False] * len(sites)
    nodes = list(pl)
    targets = {t for n in nodes if (t := n.target) is not None}
    joins = {k for k, n in enumerate(nodes) if n in targets}
    flags = dict(zip(nodes, ctx_pointer_loads([n.insn for n in nodes], joins, offsets)))
    return [flags.get(n, False) for n in sites]


_FP = 10


def ctx_pointer_loads(insns: list[Insn], joins: "set[int] | frozenset[int]", offsets: frozenset[int]) -> list[bool]:
    """Per instruction: is it a 32-bit load at one of `offsets` whose base register may hold the context pointer?

    Tracking without facts, forwards in list order: r1-r5 may hold the
    context at entry, ``rX = rY`` copies it, an 8-byte store to the stack
    spills it and an 8-byte load from that slot fills it.  Once it may have
    gone into memory the stack tracking does not follow (stored through
    another register, given to a call: ``bpf_loop``'s callback context is a
    struct holding it), any 8-byte load may give it back.  Where control may
    arrive from elsewhere -- the indices in `joins` (jump and call targets),
    and after an ``exit`` or ``goto`` -- nothing is known: every register
    and slot may hold it, and it may be in memory.  "No" is sound; the pass
    treats "maybe" as "yes".
    """
    regs = {1, 2, 3, 4, 5}  # a .text function entered from another section may take it in any argument
    slots: set[int] = set()
    any_slot = False  # every stack slot may hold it
    escaped = False   # it may be anywhere in memory
    out = []
    top = False
    for k, insn in enumerate(insns):
        code, dst, src, off, _ = insn
        kind = KIND_OF[code]
        if top or k in joins:
            regs, slots, any_slot, escaped = set(range(_FP)), set(), True, True
        top = kind in (Kind.EXIT, Kind.JA, Kind.GOTOL)
        out.append(kind == Kind.LDX and code & SIZE_MASK == Size.W and off in offsets and src in regs)
        if kind == Kind.ALU_X and code == _MOV64_X and off == 0:
            (regs.add if src in regs else regs.discard)(dst)
        elif kind == Kind.STX and code & SIZE_MASK == Size.DW:
            if dst == _FP:
                (slots.add if src in regs else slots.discard)(off)
            elif src in regs:
                escaped = True
        elif kind == Kind.LDX and code & SIZE_MASK == Size.DW:
            maybe = escaped or (src == _FP and (any_slot or off in slots))
            (regs.add if maybe else regs.discard)(dst)
        elif kind in (Kind.CALL, Kind.LD_ABS, Kind.LD_IND):
            if regs & ARGS:
                escaped = True
            regs -= CALLER_SAVED
        elif kind == Kind.ATOMIC and src in regs:
            escaped = True
        elif kind in (Kind.ALU_K, Kind.ALU_X, Kind.NEG, Kind.END, Kind.LDX, Kind.LDSX, Kind.LD_IMM64):
            regs.discard(dst)
    return out


_MOV64_X = InsnClass.ALU64 | AluOp.MOV | Source.X


PASS = Zext

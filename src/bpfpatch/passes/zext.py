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
exit value r0.  The liveness is a worklist over 12-bit register masks
(linear: a chain of backward gotos costs one sweep plus one re-visit per back
edge).  When the nodes carry the verifier's facts (`bpfpatch.analysis.facts`),
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

from array import array
from typing import Callable, ClassVar

import numpy as np

from bpfpatch.isa import KIND, KIND_OF, Insn, Kind
from bpfpatch.isa.opcodes import (
    ATOMIC_FETCH, CLASS_MASK, OP_MASK, SIZE_MASK, AluOp, AtomicOp, InsnClass, Size, Source,
)
from bpfpatch.passes.base import PassContext
from bpfpatch.passes.cfg import target_positions
from bpfpatch.analysis.ctxlayout import UAPI_LAYOUTS, uapi_layout
from bpfpatch.passes.facts import facts_of, has_facts
from bpfpatch.patch import Node, PatchList
from bpfpatch.progtype import UnknownProgType, prog_type_of

ARGS = frozenset(range(1, 6))
CALLER_SAVED = frozenset(range(0, 6))


def uses_defs(insn: Insn) -> tuple[frozenset[int], frozenset[int], int | None]:
    """(registers read as 64 bits, registers (re)defined, register defined as a 32-bit sub-register)."""
    code, dst, src, off, imm = insn
    kind = KIND_OF[code]
    cls = code & CLASS_MASK
    op = code & OP_MASK
    wide = cls in (InsnClass.ALU64, InsnClass.JMP)
    r64: set[int] = set()
    defs: set[int] = set()
    def32 = None
    if kind in (Kind.ALU_K, Kind.ALU_X, Kind.NEG):
        if wide and op != AluOp.MOV:
            r64.add(dst)
        if wide and kind == Kind.ALU_X:
            r64.add(src)
        defs.add(dst)
        # `w_r = w_r` is the zero extension itself: its result is a full 64-bit value.
        if not wide and not (kind == Kind.ALU_X and op == AluOp.MOV and src == dst and off == 0):
            def32 = dst
    elif kind == Kind.END:
        if imm == 64:
            r64.add(dst)
        defs.add(dst)
    elif kind in (Kind.JCOND_K, Kind.JCOND_X):
        if wide:
            r64.add(dst)
            if kind == Kind.JCOND_X:
                r64.add(src)
    elif kind == Kind.CALL:
        r64 |= ARGS
        defs |= CALLER_SAVED
    elif kind == Kind.EXIT:
        r64.add(0)
    elif kind == Kind.LD_IMM64:
        defs.add(dst)
    elif kind in (Kind.LD_ABS, Kind.LD_IND):
        r64.add(6)
        defs |= CALLER_SAVED
        def32 = None
    elif kind in (Kind.LDX, Kind.LDSX):
        r64.add(src)
        defs.add(dst)
        if kind == Kind.LDX and code & SIZE_MASK != Size.DW:
            def32 = dst
    elif kind == Kind.ST:
        r64.add(dst)
    elif kind == Kind.STX:
        r64.add(dst)
        if code & SIZE_MASK == Size.DW:
            r64.add(src)
    elif kind == Kind.ATOMIC:
        r64.add(dst if imm != AtomicOp.LOAD_ACQ else src)
        is64 = code & SIZE_MASK == Size.DW
        if is64 and imm != AtomicOp.LOAD_ACQ:
            r64.add(src)
        if imm == AtomicOp.CMPXCHG:
            if is64:
                r64.add(0)
            defs.add(0)
            def32 = None if is64 else 0
        elif imm == AtomicOp.LOAD_ACQ:
            defs.add(dst)
            def32 = None if is64 else dst
        elif imm & ATOMIC_FETCH:
            defs.add(src)
            def32 = None if is64 else src
    return frozenset(r64), frozenset(defs), def32


def _masks(insn: Insn) -> tuple[int, int, int]:
    """`uses_defs` as bit masks: (64-bit reads, definitions, 32-bit definition's register or -1)."""
    r64, defs, d32 = uses_defs(insn)
    return sum(1 << r for r in r64), sum(1 << r for r in defs), -1 if d32 is None else d32


def _decode_word(w: int) -> Insn:
    """The instruction of a slot word (the second word of an ld_imm64 does not change its masks)."""
    off = (w >> 16) & 0xFFFF
    imm = (w >> 32) & 0xFFFFFFFF
    return Insn(w & 0xFF, (w >> 8) & 0x0F, (w >> 12) & 0x0F, off - 0x10000 if off >> 15 else off,
                imm - (1 << 32) if imm >> 31 else imm)


_NO_FALL = np.isin(KIND, (Kind.EXIT, Kind.JA, Kind.GOTOL))
_HAS_TARGET_EDGE = np.isin(KIND, (Kind.JA, Kind.GOTOL, Kind.JCOND_K, Kind.JCOND_X, Kind.MAY_GOTO))
_IMM_MATTERS = np.isin(KIND, (Kind.END, Kind.ATOMIC))


def liveness(pl: PatchList) -> tuple[np.ndarray, Callable[[int], int], np.ndarray]:
    """64-bit read liveness over the live nodes, linear in the edges.

    Returns (live node ids, position -> mask of the registers read as 64 bits
    after it, per position the register of its 32-bit definition or -1).  A worklist over
    instructions with register sets as 12-bit masks: each node's set only
    grows, so it changes at most 12 times (a backward goto chain costs one
    sweep plus one re-visit per back edge, not one sweep per link).
    """
    ids = pl.live_ids()
    n = len(ids)
    w0, _ = pl.words(ids)
    code = (w0 & np.uint64(0xFF)).astype(np.uint8)
    _, target = target_positions(pl, ids)
    # Decode each distinct instruction shape once (the immediate matters only to END / ATOMIC).
    key = np.where(np.take(_IMM_MATTERS, code), w0, w0 & np.uint64(0xFFFFFFFF))
    uniq, inv = np.unique(key, return_inverse=True)
    table = [_masks(_decode_word(int(w))) for w in uniq.tolist()]
    r64 = array("H", np.array([t[0] for t in table], dtype=np.uint16)[inv].tobytes())
    kill = array("H", np.array([(~t[1]) & 0xFFFF for t in table], dtype=np.uint16)[inv].tobytes())
    d32 = np.array([t[2] for t in table], dtype=np.int8)[inv]
    fall = ~np.take(_NO_FALL, code)
    if n:
        fall[-1] = False
    tgt = np.where(np.take(_HAS_TARGET_EDGE, code), target, -1)
    # Predecessors, compressed: edges (src -> dst) sorted by dst.
    fsrc = np.flatnonzero(fall)
    tsrc = np.flatnonzero(tgt >= 0)
    src = np.concatenate([fsrc, tsrc])
    dst = np.concatenate([fsrc + 1, tgt[tsrc]])
    order = np.argsort(dst, kind="stable")
    pred = array("i", src[order].astype(np.int32).tobytes())
    start = array("i", np.searchsorted(dst[order], np.arange(n + 1)).astype(np.int32).tobytes())
    tgt_a = array("i", tgt.astype(np.int32).tobytes())
    fall_a = bytes(fall.astype(np.uint8))
    live_in = array("H", bytes(2 * n))

    def out_of(i: int) -> int:
        m = live_in[i + 1] if fall_a[i] else 0
        t = tgt_a[i]
        return m | live_in[t] if t >= 0 else m

    # One backward sweep settles everything but back edges; then a worklist.
    for i in range(n - 1, -1, -1):
        live_in[i] = r64[i] | (out_of(i) & kill[i])
    back = tsrc[tgt[tsrc] <= tsrc]
    work = back.tolist()
    queued = bytearray(n)
    for i in work:
        queued[i] = 1
    while work:
        i = work.pop()
        queued[i] = 0
        new = r64[i] | (out_of(i) & kill[i])
        if new != live_in[i]:
            live_in[i] = new
            for k in range(start[i], start[i + 1]):
                p = pred[k]
                if not queued[p]:
                    queued[p] = 1
                    work.append(p)
    return ids, out_of, d32


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

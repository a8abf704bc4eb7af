"""Register liveness on a patch list: which registers a later instruction may still read.

A register that is not live after an instruction can be clobbered there
without changing the program: `blind` takes its scratch register from these,
per site, so the blinded program needs neither the kernel-internal AX nor a
register the whole program leaves alone.  Registers are bit masks (bit r for
r0..r10).

Reads and writes per instruction, as the verifier's ``check_reg_arg`` sees
them: a call reads r1-r5 and leaves r0-r5 written (a helper's or a callee's
result and clobbers), ``exit`` reads r0, LD_ABS/LD_IND read r6 and clobber
r0-r5, atomics read their base and value (fetch forms write the value
register, ``cmpxchg`` reads and writes r0).  A subprogram call continues after
the call; the callee is analysed on its own (it cannot see the caller's r6-r9).
"""

from __future__ import annotations

import numpy as np

from bpfpatch.isa import KIND_OF, Insn, Kind
from bpfpatch.isa.opcodes import ATOMIC_FETCH, OP_MASK, AluOp, AtomicOp, InsnClass

ARGS_MASK = 0b111110  # r1-r5
CALLER_SAVED_MASK = 0b111111  # r0-r5
ALL_REGS_MASK = (1 << 11) - 1


def reads_writes(insn: Insn) -> tuple[int, int]:
    """(registers read, registers written) of one instruction, as bit masks."""
    code, dst, src, _off, imm = insn
    kind = KIND_OF[code]
    d, s = 1 << dst, 1 << src
    if kind == Kind.ALU_K:
        return (0 if code & OP_MASK == AluOp.MOV else d), d
    if kind == Kind.ALU_X:
        return (s if code & OP_MASK == AluOp.MOV else d | s), d
    if kind in (Kind.NEG, Kind.END):
        return d, d
    if kind == Kind.JCOND_K:
        return d, 0
    if kind == Kind.JCOND_X:
        return d | s, 0
    if kind == Kind.CALL:
        return ARGS_MASK, CALLER_SAVED_MASK
    if kind == Kind.EXIT:
        return 1, 0
    if kind == Kind.GOTOX:
        return ALL_REGS_MASK, 0  # its targets (a jump table's entries) are not in the list: all stays live
    if kind == Kind.LD_IMM64:
        return 0, d
    if kind == Kind.LD_ABS:
        return 1 << 6, CALLER_SAVED_MASK
    if kind == Kind.LD_IND:
        return 1 << 6 | s, CALLER_SAVED_MASK
    if kind in (Kind.LDX, Kind.LDSX):
        return s, d
    if kind == Kind.ST:
        return d, 0
    if kind == Kind.STX:
        return d | s, 0
    if kind == Kind.ATOMIC:
        if imm == AtomicOp.LOAD_ACQ:
            return s, d
        if imm == AtomicOp.CMPXCHG:
            return d | s | 1, 1
        return d | s, (s if imm & ATOMIC_FETCH else 0)
    return 0, 0  # ja, gotol, may_goto, nops


def live_out(pl) -> tuple[list, np.ndarray]:
    """(live nodes in order, registers live after each one as a uint16 mask)."""
    nodes = list(pl)
    n = len(nodes)
    rw = [reads_writes(node.insn) for node in nodes]
    succ = _successors(pl, nodes)
    live_in = [0] * n
    out = [0] * n
    changed = True
    while changed:  # backwards to a fixed point
        changed = False
        for i in range(n - 1, -1, -1):
            o = 0
            for x in succ[i]:
                o |= live_in[x]
            r, w = rw[i]
            new = (o & ~w) | r
            out[i] = o
            if new != live_in[i]:
                live_in[i] = new
                changed = True
    return nodes, np.array(out, dtype=np.uint16)


def _successors(pl, nodes: list) -> list[tuple[int, ...]]:
    index = {node.id: i for i, node in enumerate(nodes)}
    n = len(nodes)
    succ: list[tuple[int, ...]] = []
    for i, node in enumerate(nodes):
        kind = KIND_OF[node.insn.code]
        target = node.target
        t = index.get(target.id, -1) if target is not None else -1
        if t < 0 and target is not None:
            landing = pl.landing(target)
            t = index.get(landing.id, -1) if landing is not None else -1
        if kind == Kind.EXIT:
            s: tuple[int, ...] = ()
        elif kind in (Kind.JA, Kind.GOTOL):
            s = (t,)
        elif kind in (Kind.JCOND_K, Kind.JCOND_X, Kind.MAY_GOTO):
            s = (t, i + 1)
        else:
            s = (i + 1,)
        succ.append(tuple(x for x in s if 0 <= x < n))
    return succ


def subprogram_starts(pl, nodes: list) -> list[int]:
    """Indices (into `nodes`) where a subprogram starts: 0 and every pseudo call / pseudo func target."""
    index = {node.id: i for i, node in enumerate(nodes)}
    starts = {0}
    for node in nodes:
        insn = node.insn
        kind = KIND_OF[insn.code]
        if (kind == Kind.CALL and insn.src == 1) or (kind == Kind.LD_IMM64 and insn.src == 4):
            target = node.target
            if target is not None:
                landing = target if target.id in index else pl.landing(target)
                if landing is not None and landing.id in index:
                    starts.add(index[landing.id])
    return sorted(starts)


def initialized_in(pl, nodes: list) -> list[int]:
    """Registers written on every path to each node (a must-analysis; r1 and r10 at the entry).

    A subprogram starts with r10 only (its arguments may be unset); after a
    call r1-r5 are unset again, as the verifier marks them.
    """
    n = len(nodes)
    succ = _successors(pl, nodes)
    rw = [reads_writes(node.insn) for node in nodes]
    clobber = [CALLER_SAVED_MASK & ~1 if KIND_OF[node.insn.code] in (Kind.CALL, Kind.LD_ABS, Kind.LD_IND) else 0
               for node in nodes]
    entry = {i: 1 << 10 for i in subprogram_starts(pl, nodes)}
    entry[0] = 1 << 10 | 1 << 1
    state = [ALL_REGS_MASK] * n  # unreached nodes: anything goes
    for i, m in entry.items():
        state[i] = m
    work = sorted(entry)
    seen = set(work)
    while work:
        i = work.pop()
        seen.discard(i)
        out = (state[i] & ~clobber[i]) | rw[i][1]
        for x in succ[i]:
            new = state[x] & out
            if new != state[x]:
                state[x] = new
                if x not in seen:
                    seen.add(x)
                    work.append(x)
    return state


#: The kernel's limit on one frame (MAX_BPF_STACK).
MAX_STACK = 512


#: More offsets than this for one pointer: its place on the stack is taken as unknown.
_MAX_OFFSETS = 16


def stack_depths(pl, nodes: list, starts: list[int]) -> list[int | None]:
    """Bytes of stack each subprogram uses (from r10 and pointers derived from it), None if not understood.

    A forward data flow over the subprogram's control flow: per register (and
    per 8-byte stack slot a pointer is spilled to) the offsets from r10 it
    may hold, the union where paths join (a register that is a stack pointer
    on one path only counts as one).  ``rX = r10``, copies, ``rX += K`` /
    ``rX -= K``, spills and fills are followed; an access through a pointer
    moved by a register (a variable offset), or such a pointer given to a
    call, makes the depth unknown, as does a pointer taking more than 16
    offsets (one stepped in a loop).
    """
    succ = _successors(pl, nodes)
    bounds = list(starts) + [len(nodes)]
    return [_frame_depth(nodes, succ, a, b) for a, b in zip(bounds, bounds[1:])]


def _frame_depth(nodes: list, succ: list, a: int, b: int) -> int | None:
    """`stack_depths` of the subprogram at nodes[a:b] (entered at a, and at any code the walk does not reach)."""
    TOP = None  # a stack pointer at an offset we do not know
    states: dict[int, dict] = {}
    work: list[int] = []
    depth = 0
    unseen = a  # code no walk reached yet (a section holding several programs): entered afresh
    while work or unseen < b:
        if not work:
            while unseen < b and unseen in states:
                unseen += 1
            if unseen == b:
                break
            states[unseen] = {}
            work.append(unseen)
        i = work.pop()
        st = dict(states[i])
        code, dst, src, off, imm = nodes[i].insn
        kind = KIND_OF[code]
        op = code & OP_MASK
        wide = (code & 0x07) == InsnClass.ALU64

        def offsets(r: int):
            return frozenset((0,)) if r == 10 else st.get(r, ())

        base = -1
        if kind in (Kind.LDX, Kind.LDSX) or (kind == Kind.ATOMIC and imm == AtomicOp.LOAD_ACQ):
            base = src
        elif kind in (Kind.ST, Kind.STX, Kind.ATOMIC):
            base = dst
        at = offsets(base) if base >= 0 else ()
        if at is TOP or (kind == Kind.CALL and any(st.get(r, ()) is TOP for r in range(1, 6))):
            return None  # an access at a variable place on the stack (or a helper given one)
        for v in at:
            depth = max(depth, -(v + off))
        slot = ("slot", next(iter(at)) + off) if len(at) == 1 else None
        if kind == Kind.ALU_X and op == AluOp.MOV and wide and off == 0:
            if src == 10 or src in st:
                st[dst] = offsets(src)
            else:
                st.pop(dst, None)
        elif kind == Kind.ALU_K and wide and op in (AluOp.ADD, AluOp.SUB) and dst in st and dst != 10:
            old = st[dst]
            st[dst] = TOP if old is TOP else frozenset(v + (imm if op == AluOp.ADD else -imm) for v in old)
        elif kind == Kind.ALU_X and wide and op in (AluOp.ADD, AluOp.SUB) and dst in st and dst != 10:
            st[dst] = TOP  # moved by a register
        elif kind == Kind.STX and code & 0x18 == 0x18 and at:  # a 64-bit store onto the stack
            value = offsets(src)
            for v in at:
                key = ("slot", v + off)
                if key == slot:  # the one place it goes: what was there is gone
                    st.pop(key, None)
                if value:
                    old = st.get(key, ())
                    st[key] = TOP if TOP in (old, value) else frozenset(old) | value
        elif kind in (Kind.LDX,) and code & 0x18 == 0x18 and slot is not None and slot in st:
            st[dst] = st[slot]  # a stack pointer filled from its spill slot
        else:
            if kind in (Kind.ST, Kind.STX, Kind.ATOMIC) and slot is not None:
                st.pop(slot, None)  # a narrower store over a spilled pointer
            w = reads_writes(nodes[i].insn)[1]
            for r in [r for r in st if isinstance(r, int) and (w >> r) & 1]:
                del st[r]
        for r, v in list(st.items()):
            if v is not TOP and len(v) > _MAX_OFFSETS:
                st[r] = v = TOP
            if v is not TOP and isinstance(r, int):
                depth = max(depth, -min(v))
        for x in succ[i]:
            if not a <= x < b:
                continue
            if x not in states:
                states[x] = st
                work.append(x)
                continue
            old = states[x]
            merged = dict(old)
            for r, v in st.items():
                o = old.get(r, ())
                merged[r] = TOP if TOP in (o, v) else frozenset(o) | v
            if merged != old:
                states[x] = merged
                work.append(x)
    return depth

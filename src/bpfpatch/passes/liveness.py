"""Register facts on a patch list for `blind`: liveness, registers set on every path, stack use.

A register that is not live after an instruction can be clobbered there
without changing the program: `blind` takes its scratch register from these,
per site, so the blinded program needs neither the kernel-internal AX nor a
register the whole program leaves alone.  Registers are bit masks (bit r for
r0..r10).  The liveness is the analysis layer's (`bpfpatch.analysis.liveness`:
what each instruction reads and writes, and the one backward data flow); this
module adds the must-analysis "written on every path" and the stack depth a
spill slot must lie below.
"""

from __future__ import annotations

import numpy as np

from bpfpatch.analysis.liveness import (
    ALL_REGS_MASK, ARGS_MASK, CALLER_SAVED_MASK, falls, jump_targets, list_liveness, target_positions,
)
from bpfpatch.analysis.liveness import uses_defs as reads_writes
from bpfpatch.isa import KIND_OF, Kind
from bpfpatch.isa.opcodes import OP_MASK, AluOp, AtomicOp, InsnClass

__all__ = ["ALL_REGS_MASK", "ARGS_MASK", "CALLER_SAVED_MASK", "MAX_STACK", "initialized_in", "live_out",
           "reads_writes", "stack_depths", "subprogram_starts"]


def live_out(pl) -> tuple[list, np.ndarray]:
    """(live nodes in order, registers live after each one as a uint16 mask)."""
    nodes = list(pl)
    ids = np.fromiter((node.id for node in nodes), dtype=np.int64, count=len(nodes))
    return nodes, list_liveness(pl, ids=ids)[1].live_out()


def _successors(pl, nodes: list) -> list[tuple[int, ...]]:
    ids = np.fromiter((node.id for node in nodes), dtype=np.int64, count=len(nodes))
    code = (pl.words(ids)[0] & np.uint64(0xFF)).astype(np.uint8)
    fall = falls(code).tolist()
    target = jump_targets(code, target_positions(pl, ids)[1]).tolist()
    return [((t,) if t >= 0 else ()) + ((i + 1,) if f else ()) for i, (t, f) in enumerate(zip(target, fall))]


def subprogram_starts(pl, nodes: list) -> list[int]:
    """Indices (into `nodes`) where a subprogram starts: 0, every pseudo call / pseudo func target, and every
    function the program names (``Program.subprogs``: func_info, the ELF symbols), as the verifier splits it.

    A ``.text`` function only other sections call is no call target here, yet
    the kernel verifies it as a subprogram of its own (its own frame and depth).
    """
    index = {node.id: i for i, node in enumerate(nodes)}
    named = set(pl.program.subprogs)
    starts = {0} | {i for i, node in enumerate(nodes) if node.orig_idx in named}
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

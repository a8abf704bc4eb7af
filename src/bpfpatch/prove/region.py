"""A symbolic entry state for a changed region: every value fresh, only pointer kinds kept.

To prove a region equivalent for *every* state that can reach it, the state on
entry is made of fresh symbols: scalar registers, all memory (stack, packet,
context, map values, global data), the number of helper calls made so far and
the maps' contents.  What is kept is what the region needs to address memory:
which register (or 8-byte stack spill) holds which kind of pointer, and its
offset where every path agrees on it.  `pointer_kinds` computes that by one
forward pass over the loop-free main function (a small abstract interpretation,
merged at joins); the entry state built from it over-approximates every real
one, so a region proved from it is proved for the real program.  When the
abstraction is too coarse (a pointer of unknown kind is used), the caller
falls back to the exact entry state.
"""

from __future__ import annotations

from typing import Any

import z3

from bpfpatch.isa import KIND_OF, Kind
from bpfpatch.isa.opcodes import AluOp, CallSrc, PseudoSrc
from bpfpatch.program import Program
from bpfpatch.prove import layout as L
from bpfpatch.prove.model import HELPERS, KMEM, NREGS, STACK_SIZE, Encoder, Region, State, bv

UNKNOWN = ("?", None)
SCALAR = (None, None)
Kinds = tuple  # (registers: tuple of (tag, offset|None)), spills: frozenset of (offset, (tag, offset)))


def _merge(a: Kinds | None, b: Kinds) -> Kinds:
    if a is None:
        return b
    regs = []
    for x, y in zip(a[0], b[0]):
        if x == y:
            regs.append(x)
        elif x[0] == y[0]:
            regs.append((x[0], None))
        elif {x[0], y[0]} == {None, KMEM}:  # as the model merges them: dereferenced, it is kernel memory
            regs.append((KMEM, None))
        else:
            regs.append(UNKNOWN)
    return (tuple(regs), a[1] & b[1])


def pointer_kinds(program: Program, upto: int, layout: list[L.Field], *, kernel_memory: bool = False) -> Kinds | None:
    """Pointer kinds of registers and stack spills on entry to slot `upto`, or None (a backward jump).

    `kernel_memory`: a tracing program's (`bpfpatch.prove.model.KERNEL_MEMORY_TYPES`), whose 8-byte loads
    from the context and from kernel memory are BTF pointers (``kmem``), as the model reads them."""
    insns = {}
    slot = 0
    for insn in program.insns:
        insns[slot] = insn
        slot += insn.nslots
    refs = {int(k): v for k, v in (program.meta.get("map_refs") or {}).items()}
    start = [SCALAR] * NREGS
    start[1], start[10] = ("ctx", 0), ("stack0", 0)
    pending: dict[int, Kinds] = {0: (tuple(start), frozenset())}
    for s in sorted(insns):
        if s >= upto:
            break
        state = pending.pop(s, None)
        if state is None:
            continue
        insn = insns[s]
        kind = KIND_OF[insn.code]
        regs, spills = list(state[0]), state[1]
        succ = [s + insn.nslots]
        op = insn.code & 0xF0
        is64 = insn.code & 0x07 == 0x07
        if kind in (Kind.ALU_K, Kind.ALU_X, Kind.NEG, Kind.END):
            src = regs[insn.src] if kind == Kind.ALU_X else SCALAR
            d = regs[insn.dst]
            if op == AluOp.MOV and is64 and not insn.off:
                regs[insn.dst] = src
            elif is64 and op in (AluOp.ADD, AluOp.SUB) and d[0] is not None and src[0] is None:
                off = None if kind == Kind.ALU_X or d[1] is None else d[1] + (insn.imm if op == AluOp.ADD else -insn.imm)
                regs[insn.dst] = (d[0], off)
            elif is64 and op == AluOp.ADD and kind == Kind.ALU_X and d[0] is None and src[0] is not None:
                regs[insn.dst] = (src[0], None)
            else:
                regs[insn.dst] = SCALAR
        elif kind in (Kind.JA, Kind.GOTOL):
            succ = [s + 1 + insn.branch_offset]
        elif kind in (Kind.JCOND_K, Kind.JCOND_X):
            succ = [s + insn.nslots, s + 1 + insn.off]
        elif kind == Kind.EXIT:
            succ = []
        elif kind == Kind.LD_IMM64:
            ref = refs.get(s)
            if ref is None and insn.src in (PseudoSrc.MAP_FD, PseudoSrc.MAP_IDX):
                ref = (f"fd{insn.imm_lo}", None)
            elif ref is None and insn.src in (PseudoSrc.MAP_VALUE, PseudoSrc.MAP_IDX_VALUE):
                ref = (f"fd{insn.imm_lo}", insn.imm_hi)
            if ref is None:
                regs[insn.dst] = SCALAR
            elif ref[1] is None:
                regs[insn.dst] = (f"map:{ref[0]}", 0)
            else:
                regs[insn.dst] = (f"gd:{ref[0]}", ref[1])
        elif kind in (Kind.LDX, Kind.LDSX):
            p = regs[insn.src]
            size = {0: 4, 1: 2, 2: 1, 3: 8}[(insn.code >> 3) & 3]
            new = SCALAR
            if kernel_memory and kind == Kind.LDX and size == 8 and p[0] in ("ctx", KMEM):
                new = (KMEM, None)
            elif p[0] == "stack0" and p[1] is not None and size == 8:
                new = dict(spills).get(p[1] + insn.off, SCALAR)
            elif p[0] == "ctx" and p[1] is not None and kind == Kind.LDX:
                f = L.field_at(layout, p[1] + insn.off, size)
                if f is not None and f.name in L.POINTER_FIELDS:
                    new = ("pkt_end", 0) if f.name == L.PKT_END else ("pkt", 0)
            regs[insn.dst] = new
        elif kind in (Kind.ST, Kind.STX, Kind.ATOMIC):
            p = regs[insn.dst]
            size = {0: 4, 1: 2, 2: 1, 3: 8}[(insn.code >> 3) & 3]
            if p[0] == "stack0":
                if p[1] is None:
                    spills = frozenset()
                else:
                    at = p[1] + insn.off
                    spills = frozenset((o, v) for o, v in spills if not (at - 8 < o < at + size))
                    if kind == Kind.STX and size == 8 and regs[insn.src][0] is not None:
                        spills = spills | {(at, regs[insn.src])}
            if kind == Kind.ATOMIC:
                if insn.imm & 1:
                    regs[insn.src] = SCALAR
                if insn.imm == 0xF1:
                    regs[0] = SCALAR
        elif kind == Kind.CALL:
            if insn.src == CallSrc.HELPER:
                how = HELPERS.get(insn.imm, ("", 0, "?"))[2]
                if how in ("pkt", "pkt_len", "?"):
                    return None  # the packet (or something unknown) changed: no cheap abstraction
                r1 = regs[1][0] or ""
                regs[0] = (f"mv:{r1[4:]}", 0) if how == "lookup" and r1.startswith("map:") else (
                    (KMEM, None) if how == "kptr" else SCALAR)
            else:
                regs[0] = UNKNOWN
                spills = frozenset()
            for r in range(1, 6):
                regs[r] = SCALAR
        elif kind in (Kind.LD_ABS, Kind.LD_IND):
            for r in range(0, 6):
                regs[r] = SCALAR
        else:
            return None
        out = (tuple(regs), spills)
        for t in succ:
            if t <= s:
                return None
            pending[t] = _merge(pending.get(t), out)
    return pending.get(upto)


def entry_state(enc: Encoder, kinds: Kinds) -> State:
    """Fresh symbols for everything the prefix computed, pointers of the kinds found."""
    env = enc.env
    enc.fresh = "entry_"
    regs: list[Any] = []
    made: dict[Any, tuple] = {}

    def pointer(kind: tuple, name: str) -> tuple:
        tag, off = kind
        if kind in made:
            return made[kind]
        if tag is None or tag == "?":
            v = (env.sym(f"entry_{name}", 64), None)
        elif tag == KMEM:
            v = (env.sym(f"entry_{name}", 64), KMEM)
        elif tag.startswith("gd:") and tag[3:] not in env.maps:
            v = (env.sym(f"entry_{name}", 64), None)  # global data of no known map: a value like any other
        elif tag.startswith("mv:"):
            mname = tag[3:]
            if mname not in env.maps:
                v = (env.sym(f"entry_{name}", 64), None)
            else:
                rname = f"entry:{name}"
                r = Region(rname, env.base(rname), env.maps[mname].value_size,
                           lambda o, n=rname: env.sym(f"entry_{n}_{o}", 8))
                enc.regions[rname] = r
                v = (z3.If(env.sym(f"entry_{name}_null", 1) == 0, bv(r.base), bv(0)), rname)
        else:
            if tag == "pkt_end":
                return (bv(env.base("pkt")) + env.plen, "pkt_end")
            if tag.startswith("map:"):
                return (bv(env.base(tag)), tag)
            r = enc.regions.get(tag) or enc.region(tag) if tag != "ctx" else None
            base = env.base(tag) + (STACK_SIZE if tag == "stack0" else 0)
            delta = bv(off) if off is not None else env.sym(f"entry_{name}_off", 64)
            v = (bv(base) + delta if off is None else bv(base + off), tag)
            del r
        if off is not None:
            made[kind] = v
        return v

    for r in range(NREGS):
        regs.append(pointer(kinds[0][r], f"r{r}") if kinds[0][r][0] is not None else (env.sym(f"entry_r{r}", 64), None))
    st = State(regs, {}, {}, (), env.plen)
    enc.region("stack0")
    for off, kind in sorted(kinds[1]):
        v = pointer(kind, f"spill{-off}")
        mem = st.region_mem("stack0")
        at = STACK_SIZE + off
        for i in range(8):
            mem[at + i] = z3.Extract(8 * i + 7, 8 * i, v[0])
        st.tags["stack0"][at] = v[1]
    enc.count = env.sym("entry_calls", 32)
    return st

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
exit value r0.  With ``options["zext"]["kernel_form"]`` the inserted move
carries imm=1, the kernel's internal BPF_ZEXT_REG marker (only the kernel
accepts it).  The decision is recorded as ``zext_dst`` in dict aux data.
"""

from __future__ import annotations

from typing import ClassVar

from bpfpatch.isa import KIND_OF, Insn, Kind
from bpfpatch.isa.opcodes import (
    ATOMIC_FETCH, CLASS_MASK, OP_MASK, SIZE_MASK, AluOp, AtomicOp, InsnClass, Size, Source,
)
from bpfpatch.passes.base import PassContext
from bpfpatch.patch import PatchList

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


def needs_zext(pl: PatchList) -> list:
    """Nodes whose 32-bit definition is read as 64 bits on some path (backward liveness)."""
    nodes = list(pl)
    index = {n.id: i for i, n in enumerate(nodes)}
    n = len(nodes)
    info = [uses_defs(node.insn) for node in nodes]
    succ: list[list[int]] = []
    for i, node in enumerate(nodes):
        kind = KIND_OF[node.insn.code]
        target = node.target
        t = index.get(target.id, -1) if target is not None else -1
        if kind == Kind.EXIT:
            s = []
        elif kind in (Kind.JA, Kind.GOTOL):
            s = [t]
        elif kind in (Kind.JCOND_K, Kind.JCOND_X, Kind.MAY_GOTO):
            s = [t, i + 1]
        else:
            s = [i + 1]  # calls continue after the call; the callee is analysed on its own
        succ.append([x for x in s if 0 <= x < n])
    live_in: list[frozenset[int]] = [frozenset()] * n
    changed = True
    while changed:  # iterate to a fixed point, visiting backwards
        changed = False
        for i in range(n - 1, -1, -1):
            out: frozenset[int] = frozenset().union(*(live_in[s] for s in succ[i])) if succ[i] else frozenset()
            r64, defs, _ = info[i]
            new = (out - defs) | r64
            if new != live_in[i]:
                live_in[i] = new
                changed = True
    result = []
    for i, node in enumerate(nodes):
        d32 = info[i][2]
        if d32 is None:
            continue
        out = frozenset().union(*(live_in[s] for s in succ[i])) if succ[i] else frozenset()
        if d32 in out:
            result.append(node)
    return result


class Zext:
    """Insert zero extension after 32-bit definitions whose upper half is read."""

    name: ClassVar[str] = "zext"

    def run(self, pl: PatchList, ctx: PassContext) -> None:
        kernel_form = bool(ctx.options.get("zext", {}).get("kernel_form", False))
        for node in needs_zext(pl):
            reg = uses_defs(node.insn)[2]
            pl.append(node, [Insn(InsnClass.ALU | AluOp.MOV | Source.X, reg, reg, 0, 1 if kernel_form else 0)])
            if node.aux is None:
                node.aux = {"zext_dst": True}
            elif isinstance(node.aux, dict):
                node.aux["zext_dst"] = True


PASS = Zext

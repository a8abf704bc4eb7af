"""The text forms of eBPF: one table of templates drives printing and parsing.

Two styles:

* ``llvm``   -- what ``llvm-objdump -d`` prints (LLVM 14, Debian's default,
  for every encoding it decodes; LLVM 19's syntax for the cpu-v4 and other
  encodings LLVM 14 prints as ``<unknown>``).
* ``kernel`` -- the verifier log's form (kernel/bpf/disasm.c): ``(b7) r0 = 7``,
  ``goto pc+1``, ``if r1 != 0x0 goto pc+2``, ``call pc+3`` for pseudo calls.

A template is a string with fields: ``{d}`` ``{s}`` (registers with their r/w
prefix), ``{imm}`` (signed decimal), ``{himm}`` (hex, kernel style),
``{off}`` (signed, with its sign), ``{mem}`` (``+ 4`` / ``- 4``), ``{sz}``.
`Template.regex` turns one into the parser's pattern, so each template is
written once for both directions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from bpfpatch.isa import KIND, Insn, Kind
from bpfpatch.isa.opcodes import (
    CLASS_MASK, OP_MASK, SIZE_MASK, SOURCE_MASK, AluOp, AtomicOp, CallSrc, InsnClass, JmpOp, Mode, PseudoSrc, Size,
)

SIZE_NAME = {Size.B: "u8", Size.H: "u16", Size.W: "u32", Size.DW: "u64"}
SIGNED_SIZE_NAME = {Size.B: "s8", Size.H: "s16", Size.W: "s32"}

ALU_SYM = {
    AluOp.ADD: "+=", AluOp.SUB: "-=", AluOp.MUL: "*=", AluOp.DIV: "/=", AluOp.OR: "|=", AluOp.AND: "&=",
    AluOp.LSH: "<<=", AluOp.RSH: ">>=", AluOp.MOD: "%=", AluOp.XOR: "^=", AluOp.MOV: "=", AluOp.ARSH: "s>>=",
}
SIGNED_ALU_SYM = {AluOp.DIV: "s/=", AluOp.MOD: "s%="}
JMP_SYM = {
    JmpOp.JEQ: "==", JmpOp.JGT: ">", JmpOp.JGE: ">=", JmpOp.JSET: "&", JmpOp.JNE: "!=", JmpOp.JSGT: "s>",
    JmpOp.JSGE: "s>=", JmpOp.JLT: "<", JmpOp.JLE: "<=", JmpOp.JSLT: "s<", JmpOp.JSLE: "s<=",
}
ATOMIC_NAME = {AtomicOp.ADD: "add", AtomicOp.OR: "or", AtomicOp.AND: "and", AtomicOp.XOR: "xor"}
ATOMIC_LOCK_SYM = {AtomicOp.ADD: "+=", AtomicOp.OR: "|=", AtomicOp.AND: "&=", AtomicOp.XOR: "^="}

# A few helper names for the kernel style (bpf_func_id); others print as "#id".
HELPER_NAMES = {
    1: "bpf_map_lookup_elem", 2: "bpf_map_update_elem", 3: "bpf_map_delete_elem", 5: "bpf_ktime_get_ns",
    6: "bpf_trace_printk", 7: "bpf_get_prandom_u32", 8: "bpf_get_smp_processor_id", 12: "bpf_tail_call",
    14: "bpf_get_current_pid_tgid", 25: "bpf_perf_event_output", 26: "bpf_skb_load_bytes",
}


def _reg(n: int, wide: bool) -> str:
    return f"{'r' if wide else 'w'}{n}"


def _sgn(v: int) -> str:
    return f"{v:+d}"


def _mem(off: int) -> str:
    return f"+ {off}" if off >= 0 else f"- {-off}"


def _kmem(off: int) -> str:
    return f"{off:+d}"


def _s64(v: int) -> int:
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >> 63 else v


def _hex(v: int, bits: int = 32) -> str:
    return f"{v & ((1 << bits) - 1):#x}"


def format_llvm(insn: Insn) -> str:
    """One instruction as llvm-objdump prints it."""
    code, dst, src, off, imm = insn
    kind = KIND[code]
    cls = code & CLASS_MASK
    op = code & OP_MASK
    if kind in (Kind.ALU_K, Kind.ALU_X):
        wide = cls == InsnClass.ALU64
        d = _reg(dst, wide)
        if op == AluOp.MOV and kind == Kind.ALU_X and off in (8, 16, 32):
            return f"{d} = (s{off}){_reg(src, wide)}"
        sym = SIGNED_ALU_SYM[op] if (off == 1 and op in SIGNED_ALU_SYM) else ALU_SYM[op]
        rhs = _reg(src, wide) if kind == Kind.ALU_X else str(imm)
        return f"{d} {sym} {rhs}"
    if kind == Kind.NEG:
        d = _reg(dst, cls == InsnClass.ALU64)
        return f"{d} = -{d}"
    if kind == Kind.END:
        if cls == InsnClass.ALU64:
            return f"r{dst} = bswap{imm} r{dst}"
        return f"r{dst} = {'be' if code & SOURCE_MASK else 'le'}{imm} r{dst}"
    if kind == Kind.JA:
        return f"goto {_sgn(off)}"
    if kind == Kind.GOTOL:
        return f"gotol {_sgn(imm)}"
    if kind == Kind.MAY_GOTO:
        return f"may_goto {_sgn(off)}"
    if kind in (Kind.JCOND_K, Kind.JCOND_X):
        wide = cls == InsnClass.JMP
        rhs = _reg(src, wide) if kind == Kind.JCOND_X else str(imm)
        return f"if {_reg(dst, wide)} {JMP_SYM[op]} {rhs} goto {_sgn(off)}"
    if kind == Kind.CALL:
        return f"call {imm}"
    if kind == Kind.EXIT:
        return "exit"
    if kind == Kind.LD_IMM64:
        if src == PseudoSrc.NONE:
            return f"r{dst} = {_s64(imm)} ll"
        lo = imm & 0xFFFFFFFF
        return f"ld_pseudo r{dst}, {src}, {lo - (1 << 32) if lo >> 31 else lo}"
    size = code & SIZE_MASK
    if kind == Kind.LD_ABS:
        return f"r0 = *({SIZE_NAME[size]} *)skb[{imm}]"
    if kind == Kind.LD_IND:
        return f"r0 = *({SIZE_NAME[size]} *)skb[r{src}]"
    if kind == Kind.LDX:
        return f"r{dst} = *({SIZE_NAME[size]} *)(r{src} {_mem(off)})"
    if kind == Kind.LDSX:
        return f"r{dst} = *({SIGNED_SIZE_NAME[size]} *)(r{src} {_mem(off)})"
    if kind == Kind.ST:
        return f"*({SIZE_NAME[size]} *)(r{dst} {_mem(off)}) = {imm}"
    if kind == Kind.STX:
        return f"*({SIZE_NAME[size]} *)(r{dst} {_mem(off)}) = r{src}"
    if kind == Kind.ATOMIC:
        return _atomic_llvm(size, dst, src, off, imm)
    raise ValueError(f"no text form for {insn}")


def _atomic_llvm(size: int, dst: int, src: int, off: int, imm: int) -> str:
    wide = size == Size.DW
    sz = SIZE_NAME[size]
    addr = f"r{dst} {_mem(off)}"
    if imm in ATOMIC_LOCK_SYM:
        # LLVM 14 prints the 32-bit form with an r register (LLVM 19: w).
        return f"lock *({sz} *)({addr}) {ATOMIC_LOCK_SYM[AtomicOp(imm)]} r{src}"
    if imm & ~0x01 in ATOMIC_NAME and imm & 0x01:
        s = _reg(src, wide)
        return f"{s} = atomic_fetch_{ATOMIC_NAME[AtomicOp(imm & ~1)]}(({sz} *)({addr}), {s})"
    if imm == AtomicOp.XCHG:
        s = _reg(src, wide)
        return f"{s} = xchg_64({addr}, {s})" if wide else f"{s} = xchg32_32({addr}, {s})"
    if imm == AtomicOp.CMPXCHG:
        r0, s = _reg(0, wide), _reg(src, wide)
        return f"{r0} = cmpxchg_64({addr}, {r0}, {s})" if wide else f"{r0} = cmpxchg32_32({addr}, {r0}, {s})"
    if imm == AtomicOp.LOAD_ACQ:
        return f"r{dst} = load_acquire(({sz} *)(r{src} {_mem(off)}))"
    if imm == AtomicOp.STORE_REL:
        return f"store_release(({sz} *)({addr}), r{src})"
    raise ValueError(f"unknown atomic op {imm:#x}")


def format_kernel(insn: Insn, pc: int | None = None) -> str:
    """One instruction as the verifier log prints it: ``(code) text``."""
    code, dst, src, off, imm = insn
    kind = KIND[code]
    cls = code & CLASS_MASK
    op = code & OP_MASK
    head = f"({code:02x}) "
    if kind in (Kind.ALU_K, Kind.ALU_X):
        wide = cls == InsnClass.ALU64
        d = _reg(dst, wide)
        if op == AluOp.MOV and kind == Kind.ALU_X and off in (8, 16, 32):
            return head + f"{d} = (s{off}){_reg(src, wide)}"
        sym = SIGNED_ALU_SYM[op] if (off == 1 and op in SIGNED_ALU_SYM) else ALU_SYM[op]
        rhs = _reg(src, wide) if kind == Kind.ALU_X else str(imm)
        return head + f"{d} {sym} {rhs}"
    if kind == Kind.NEG:
        d = _reg(dst, cls == InsnClass.ALU64)
        return head + f"{d} = -{d}"
    if kind == Kind.END:
        if cls == InsnClass.ALU64:
            return head + f"r{dst} = bswap{imm} r{dst}"
        return head + f"r{dst} = {'be' if code & SOURCE_MASK else 'le'}{imm} r{dst}"
    if kind == Kind.JA:
        return head + f"goto pc{off:+d}"
    if kind == Kind.GOTOL:
        return head + f"gotol pc{imm:+d}"
    if kind == Kind.MAY_GOTO:
        return head + f"may_goto pc{off:+d}"
    if kind in (Kind.JCOND_K, Kind.JCOND_X):
        wide = cls == InsnClass.JMP
        rhs = _reg(src, wide) if kind == Kind.JCOND_X else _hex(imm)
        return head + f"if {_reg(dst, wide)} {JMP_SYM[op]} {rhs} goto pc{off:+d}"
    if kind == Kind.CALL:
        if src == CallSrc.PSEUDO_CALL:
            return head + f"call pc{imm:+d}"
        if src == CallSrc.KFUNC:
            return head + f"call kfunc#{imm}" + (f" off={off}" if off else "")
        return head + f"call {HELPER_NAMES.get(imm, '')}#{imm}"
    if kind == Kind.EXIT:
        return head + "exit"
    if kind == Kind.LD_IMM64:
        if src == PseudoSrc.NONE:
            return head + f"r{dst} = {_hex(imm, 64)}"
        return head + f"r{dst} = pseudo{src}[{imm & 0xFFFFFFFF:#x}, {(imm >> 32) & 0xFFFFFFFF:#x}]"
    size = code & SIZE_MASK
    if kind == Kind.LD_ABS:
        return head + f"r0 = *({SIZE_NAME[size]} *)skb[{imm}]"
    if kind == Kind.LD_IND:
        return head + f"r0 = *({SIZE_NAME[size]} *)skb[r{src} {imm:+d}]"
    if kind == Kind.LDX:
        return head + f"r{dst} = *({SIZE_NAME[size]} *)(r{src} {_kmem(off)})"
    if kind == Kind.LDSX:
        return head + f"r{dst} = *({SIGNED_SIZE_NAME[size]} *)(r{src} {_kmem(off)})"
    if kind == Kind.ST:
        return head + f"*({SIZE_NAME[size]} *)(r{dst} {_kmem(off)}) = {imm}"
    if kind == Kind.STX:
        return head + f"*({SIZE_NAME[size]} *)(r{dst} {_kmem(off)}) = r{src}"
    if kind == Kind.ATOMIC:
        wide = size == Size.DW
        sz = SIZE_NAME[size]
        addr = f"r{dst} {_kmem(off)}"
        if imm in ATOMIC_LOCK_SYM:
            return head + f"lock *({sz} *)({addr}) {ATOMIC_LOCK_SYM[AtomicOp(imm)]} r{src}"
        if imm & ~0x01 in ATOMIC_NAME and imm & 0x01:
            s = _reg(src, wide)
            return head + f"{s} = atomic{'64' if wide else ''}_fetch_{ATOMIC_NAME[AtomicOp(imm & ~1)]}(({sz} *)({addr}), {s})"
        if imm == AtomicOp.XCHG:
            s = _reg(src, wide)
            return head + f"{s} = atomic{'64' if wide else ''}_xchg(({sz} *)({addr}), {s})"
        if imm == AtomicOp.CMPXCHG:
            r0, s = _reg(0, wide), _reg(src, wide)
            return head + f"{r0} = atomic{'64' if wide else ''}_cmpxchg(({sz} *)({addr}), {r0}, {s})"
        if imm == AtomicOp.LOAD_ACQ:
            return head + f"r{dst} = load_acquire(({sz} *)(r{src} {_kmem(off)}))"
        if imm == AtomicOp.STORE_REL:
            return head + f"store_release(({sz} *)({addr}), r{src})"
    raise ValueError(f"no text form for {insn}")

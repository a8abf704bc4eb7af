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

from dataclasses import dataclass
from typing import Callable

from bpfpatch.isa import KIND_OF, Insn, Kind
from bpfpatch.isa.opcodes import (
    CLASS_MASK, OP_MASK, SIZE_MASK, SOURCE_MASK, AluOp, AtomicOp, CallSrc, InsnClass, JmpOp, PseudoSrc, Size,
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


@dataclass(frozen=True)
class Style:
    """What differs between the two text forms; everything else is shared."""

    name: str
    mem: Callable[[int], str]  # memory offset: "+ 4" (llvm) / "+4" (kernel)
    target: Callable[[str, int], str]  # jump/call target: "goto +1" / "goto pc+1"
    cmp_imm: Callable[[int], str]  # immediate of a conditional jump
    call: Callable[[Insn], str]
    ld_imm64: Callable[[Insn], str]
    ld_ind: Callable[[Insn, str], str]
    atomic_fn: Callable[[str, bool], str]  # (operation, 64-bit) -> function-like name


def _llvm_call(insn: Insn) -> str:
    return f"call {insn.imm}"


def _kernel_call(insn: Insn) -> str:
    if insn.src == CallSrc.PSEUDO_CALL:
        return f"call pc{insn.imm:+d}"
    if insn.src == CallSrc.KFUNC:
        return f"call kfunc#{insn.imm}" + (f" off={insn.off}" if insn.off else "")
    return f"call {HELPER_NAMES.get(insn.imm, '')}#{insn.imm}"


def _llvm_ld_imm64(insn: Insn) -> str:
    if insn.src == PseudoSrc.NONE:
        return f"r{insn.dst} = {_s64(insn.imm)} ll"
    lo = insn.imm & 0xFFFFFFFF
    return f"ld_pseudo r{insn.dst}, {insn.src}, {lo - (1 << 32) if lo >> 31 else lo}"


def _kernel_ld_imm64(insn: Insn) -> str:
    if insn.src == PseudoSrc.NONE:
        return f"r{insn.dst} = {_hex(insn.imm, 64)}"
    return f"r{insn.dst} = pseudo{insn.src}[{insn.imm & 0xFFFFFFFF:#x}, {(insn.imm >> 32) & 0xFFFFFFFF:#x}]"


def _llvm_atomic_fn(op: str, wide: bool) -> str:
    return {"xchg": "xchg_64" if wide else "xchg32_32", "cmpxchg": "cmpxchg_64" if wide else "cmpxchg32_32"}.get(
        op, f"atomic_fetch_{op}"
    )


def _kernel_atomic_fn(op: str, wide: bool) -> str:
    return f"atomic{'64' if wide else ''}_{op if op in ('xchg', 'cmpxchg') else 'fetch_' + op}"


LLVM = Style(
    "llvm", _mem, lambda kw, off: f"{kw} {off:+d}", str, _llvm_call, _llvm_ld_imm64,
    lambda insn, sz: f"r0 = *({sz} *)skb[r{insn.src}]", _llvm_atomic_fn,
)
KERNEL = Style(
    "kernel", _kmem, lambda kw, off: f"{kw} pc{off:+d}", _hex, _kernel_call, _kernel_ld_imm64,
    lambda insn, sz: f"r0 = *({sz} *)skb[r{insn.src} {insn.imm:+d}]", _kernel_atomic_fn,
)


def format_llvm(insn: Insn) -> str:
    """One instruction as llvm-objdump prints it."""
    return _format(insn, LLVM)


def format_kernel(insn: Insn, pc: int | None = None) -> str:
    """One instruction as the verifier log prints it: ``(code) text``."""
    return f"({insn.code:02x}) " + _format(insn, KERNEL)


def _format(insn: Insn, st: Style) -> str:
    code, dst, src, off, imm = insn
    kind = KIND_OF[code]
    cls = code & CLASS_MASK
    op = code & OP_MASK
    if kind in (Kind.ALU_K, Kind.ALU_X):
        wide = cls == InsnClass.ALU64
        d = _reg(dst, wide)
        if op == AluOp.MOV and kind == Kind.ALU_X and off in (8, 16, 32):
            return f"{d} = (s{off}){_reg(src, wide)}"
        if op == AluOp.MOV and kind == Kind.ALU_X and off == 1 and wide:
            return f"{d} = addr_space_cast(r{src}, {(imm >> 16) & 0xFFFF}, {imm & 0xFFFF})"
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
        return st.target("goto", off)
    if kind == Kind.GOTOL:
        return st.target("gotol", imm)
    if kind == Kind.MAY_GOTO:
        return st.target("may_goto", off)
    if kind in (Kind.JCOND_K, Kind.JCOND_X):
        wide = cls == InsnClass.JMP
        rhs = _reg(src, wide) if kind == Kind.JCOND_X else st.cmp_imm(imm)
        return st.target(f"if {_reg(dst, wide)} {JMP_SYM[op]} {rhs} goto", off)
    if kind == Kind.CALL:
        return st.call(insn)
    if kind == Kind.GOTOX:
        return f"gotox r{dst}"
    if kind == Kind.CALLX:
        return f"callx r{imm or dst}"  # LLVM 19 keeps the register in dst, LLVM 14 in imm
    if kind == Kind.EXIT:
        return "exit"
    if kind == Kind.LD_IMM64:
        return st.ld_imm64(insn)
    size = code & SIZE_MASK
    sz = SIZE_NAME.get(size, "")
    if kind == Kind.LD_ABS:
        return f"r0 = *({sz} *)skb[{imm}]"
    if kind == Kind.LD_IND:
        return st.ld_ind(insn, sz)
    if kind == Kind.LDX:
        return f"r{dst} = *({sz} *)(r{src} {st.mem(off)})"
    if kind == Kind.LDSX:
        return f"r{dst} = *({SIGNED_SIZE_NAME[size]} *)(r{src} {st.mem(off)})"
    if kind == Kind.ST:
        return f"*({sz} *)(r{dst} {st.mem(off)}) = {imm}"
    if kind == Kind.STX:
        return f"*({sz} *)(r{dst} {st.mem(off)}) = r{src}"
    if kind == Kind.ATOMIC:
        return _atomic(size, dst, src, off, imm, st)
    raise ValueError(f"no text form for {insn}")


def _atomic(size: int, dst: int, src: int, off: int, imm: int, st: Style) -> str:
    wide = size == Size.DW
    sz = SIZE_NAME[size]
    addr = f"r{dst} {st.mem(off)}"
    ptr = f"({sz} *)({addr})"
    if imm in ATOMIC_LOCK_SYM:
        # LLVM 14 prints the 32-bit form with an r register (LLVM 19: w).
        return f"lock *{ptr} {ATOMIC_LOCK_SYM[AtomicOp(imm)]} r{src}"
    s = _reg(src, wide)
    # llvm's xchg/cmpxchg take a bare address; the kernel's a typed pointer.
    where = addr if st is LLVM else ptr
    if imm & ~0x01 in ATOMIC_NAME and imm & 0x01:
        return f"{s} = {st.atomic_fn(ATOMIC_NAME[AtomicOp(imm & ~1)], wide)}({ptr}, {s})"
    if imm == AtomicOp.XCHG:
        return f"{s} = {st.atomic_fn('xchg', wide)}({where}, {s})"
    if imm == AtomicOp.CMPXCHG:
        r0 = _reg(0, wide)
        return f"{r0} = {st.atomic_fn('cmpxchg', wide)}({where}, {r0}, {s})"
    if imm == AtomicOp.LOAD_ACQ:
        return f"r{dst} = load_acquire(({sz} *)(r{src} {st.mem(off)}))"
    if imm == AtomicOp.STORE_REL:
        return f"store_release({ptr}, r{src})"
    raise ValueError(f"unknown atomic op {imm:#x}")

"""`Insn`: one logical eBPF instruction as a plain immutable value.

An ``ld_imm64`` is ONE `Insn` whose ``imm`` holds the full 64-bit value
(low word in the first slot, high word in the second); it knows it takes two
8-byte slots.  Every other instruction takes one slot.

The constructors below are named after the kernel's macros (BPF_ALU64_IMM,
BPF_JMP_REG, ...); each one-line docstring says what the instruction does.
"""

from __future__ import annotations

from typing import NamedTuple

from bpfpatch.isa.opcodes import (
    CLASS_MASK,
    LD_IMM64,
    OP_MASK,
    SOURCE_MASK,
    AluOp,
    AtomicOp,
    CallSrc,
    InsnClass,
    JmpOp,
    Mode,
    PseudoSrc,
    Size,
    Source,
)


class Insn(NamedTuple):
    """One instruction: ``Insn(code, dst=0, src=0, off=0, imm=0)``.

    For ``ld_imm64`` (code 0x18) ``imm`` is the signed 64-bit immediate.
    In a patch buffer, a jump's ``off`` is relative within the buffer
    (kernel convention) unless the patch gives a target node.
    """

    code: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0

    @property
    def cls(self) -> InsnClass:
        return InsnClass(self.code & CLASS_MASK)

    @property
    def nslots(self) -> int:
        """Number of 8-byte slots: 2 for ld_imm64, else 1."""
        return 2 if self.code == LD_IMM64 else 1

    @property
    def is_ld_imm64(self) -> bool:
        return self.code == LD_IMM64

    @property
    def is_jump(self) -> bool:
        """A jump whose target is an instruction (ja, gotol, conditional, may_goto)."""
        return jump_kind(self.code) is not None and not (
            self.code & OP_MASK in (JmpOp.CALL, JmpOp.EXIT)
        )

    @property
    def is_pseudo_call(self) -> bool:
        return self.code == InsnClass.JMP | JmpOp.CALL and self.src == CallSrc.PSEUDO_CALL

    @property
    def is_pseudo_func(self) -> bool:
        return self.code == LD_IMM64 and self.src == PseudoSrc.FUNC

    @property
    def branch_offset(self) -> int | None:
        """Relative offset (in slots) of the instruction's target, or None."""
        kind = jump_kind(self.code)
        if kind is None:
            if self.is_pseudo_func:
                return self.imm_lo
            return None
        if self.code & OP_MASK == JmpOp.EXIT:
            return None
        if self.code & OP_MASK == JmpOp.CALL:
            return self.imm if self.src == CallSrc.PSEUDO_CALL else None
        return self.imm if kind == "imm" else self.off

    @property
    def imm_lo(self) -> int:
        """Low 32 bits of the immediate as a signed int (first slot of ld_imm64)."""
        v = self.imm & 0xFFFFFFFF
        return v - (1 << 32) if v & 0x80000000 else v

    @property
    def imm_hi(self) -> int:
        """High 32 bits of a 64-bit immediate as a signed int (second slot)."""
        v = (self.imm >> 32) & 0xFFFFFFFF
        return v - (1 << 32) if v & 0x80000000 else v

    def with_offset(self, offset: int) -> "Insn":
        """The same jump/call/func reference pointing `offset` slots away."""
        kind = jump_kind(self.code)
        if self.is_pseudo_func:
            return self._replace(imm=(self.imm & ~0xFFFFFFFF) | (offset & 0xFFFFFFFF))
        if kind == "imm" or self.is_pseudo_call:
            return self._replace(imm=offset)
        return self._replace(off=offset)


def jump_kind(code: int) -> str | None:
    """Where a JMP-class instruction keeps its offset: "off", "imm", or None (not a jump)."""
    cls = code & CLASS_MASK
    if cls == InsnClass.JMP32 and code & (OP_MASK | SOURCE_MASK) == JmpOp.JA:
        return "imm"  # gotol
    if cls in (InsnClass.JMP, InsnClass.JMP32):
        return "off"
    return None


# --- constructors, named after the kernel's macros ---------------------------------


def alu64_reg(op: AluOp, dst: int, src: int, off: int = 0) -> Insn:
    """dst op= src (64-bit)."""
    return Insn(InsnClass.ALU64 | op | Source.X, dst, src, off, 0)


def alu32_reg(op: AluOp, dst: int, src: int, off: int = 0) -> Insn:
    """w_dst op= w_src (32-bit, upper half zeroed)."""
    return Insn(InsnClass.ALU | op | Source.X, dst, src, off, 0)


def alu64_imm(op: AluOp, dst: int, imm: int, off: int = 0) -> Insn:
    """dst op= imm32 (64-bit, imm sign-extended)."""
    return Insn(InsnClass.ALU64 | op | Source.K, dst, 0, off, imm)


def alu32_imm(op: AluOp, dst: int, imm: int, off: int = 0) -> Insn:
    """w_dst op= imm32 (32-bit)."""
    return Insn(InsnClass.ALU | op | Source.K, dst, 0, off, imm)


def mov64_reg(dst: int, src: int) -> Insn:
    """dst = src."""
    return alu64_reg(AluOp.MOV, dst, src)


def mov32_reg(dst: int, src: int) -> Insn:
    """w_dst = w_src (zero-extends)."""
    return alu32_reg(AluOp.MOV, dst, src)


def mov64_imm(dst: int, imm: int) -> Insn:
    """dst = imm32 sign-extended."""
    return alu64_imm(AluOp.MOV, dst, imm)


def mov32_imm(dst: int, imm: int) -> Insn:
    """w_dst = imm32 (upper half zeroed)."""
    return alu32_imm(AluOp.MOV, dst, imm)


def jmp_reg(op: JmpOp, dst: int, src: int, off: int) -> Insn:
    """if dst op src goto pc + off + 1."""
    return Insn(InsnClass.JMP | op | Source.X, dst, src, off, 0)


def jmp_imm(op: JmpOp, dst: int, imm: int, off: int) -> Insn:
    """if dst op imm goto pc + off + 1."""
    return Insn(InsnClass.JMP | op | Source.K, dst, 0, off, imm)


def jmp32_reg(op: JmpOp, dst: int, src: int, off: int) -> Insn:
    """if w_dst op w_src goto pc + off + 1."""
    return Insn(InsnClass.JMP32 | op | Source.X, dst, src, off, 0)


def jmp32_imm(op: JmpOp, dst: int, imm: int, off: int) -> Insn:
    """if w_dst op imm goto pc + off + 1."""
    return Insn(InsnClass.JMP32 | op | Source.K, dst, 0, off, imm)


def ja(off: int) -> Insn:
    """goto pc + off + 1 (16-bit offset)."""
    return Insn(InsnClass.JMP | JmpOp.JA, 0, 0, off, 0)


def gotol(imm: int) -> Insn:
    """goto pc + imm + 1 (32-bit offset, cpu v4)."""
    return Insn(InsnClass.JMP32 | JmpOp.JA, 0, 0, 0, imm)


def call_helper(helper_id: int) -> Insn:
    """r0 = helper(r1..r5)."""
    return Insn(InsnClass.JMP | JmpOp.CALL, 0, CallSrc.HELPER, 0, helper_id)


def call_pseudo(off: int) -> Insn:
    """call the subprogram at pc + off + 1."""
    return Insn(InsnClass.JMP | JmpOp.CALL, 0, CallSrc.PSEUDO_CALL, 0, off)


def exit_insn() -> Insn:
    """return r0."""
    return Insn(InsnClass.JMP | JmpOp.EXIT)


def ld_imm64(dst: int, imm: int, src: int = PseudoSrc.NONE) -> Insn:
    """dst = imm64 (two slots); src says what the immediate refers to."""
    return Insn(LD_IMM64, dst, src, 0, imm)


def ldx_mem(size: Size, dst: int, src: int, off: int) -> Insn:
    """dst = *(size *)(src + off)."""
    return Insn(InsnClass.LDX | Mode.MEM | size, dst, src, off, 0)


def stx_mem(size: Size, dst: int, src: int, off: int) -> Insn:
    """*(size *)(dst + off) = src."""
    return Insn(InsnClass.STX | Mode.MEM | size, dst, src, off, 0)


def st_mem(size: Size, dst: int, off: int, imm: int) -> Insn:
    """*(size *)(dst + off) = imm32."""
    return Insn(InsnClass.ST | Mode.MEM | size, dst, 0, off, imm)


def atomic_op(size: Size, op: AtomicOp, dst: int, src: int, off: int) -> Insn:
    """atomic op on *(size *)(dst + off) with src."""
    return Insn(InsnClass.STX | Mode.ATOMIC | size, dst, src, off, op)

"""blind: constant blinding, as the kernel's bpf_jit_blind_insn does it.

Every immediate an attacker could plant is split into ``imm ^ rnd`` and
``rnd`` (a fresh random value per site, from the seeded ``ctx.rng``) and
recombined in the auxiliary register at run time::

    r1 += 0x1234            AX = rnd ^ 0x1234; AX ^= rnd; r1 += AX
    if r2 > 7 goto L        AX = rnd ^ 7; AX ^= rnd; if r2 > AX goto L
    *(u32 *)(r10 -4) = 5    AX = rnd ^ 5; AX ^= rnd; *(u32 *)(r10 -4) = AX
    r3 = 0x1122334455 ll    AX = rnd1 ^ 0x11; AX ^= rnd1; AX <<= 32; r3 = AX;
                            w_AX = rnd2 ^ 0x22334455; w_AX ^= rnd2; r3 |= AX
    w4 = 0                  r4 ^= r4      (with the kernel's AX; a loadable program keeps w4 = 0)

Classes: ALU/ALU64 immediates (add, sub, and, or, xor, mul, mov, div, mod),
JMP/JMP32 immediate conditions (the blinded jump keeps its target by
reference, so it still reaches the original instruction), ST stores and
plain ld_imm64 (pseudo loads, and loads an ELF relocation or map reference
points at, are left alone: the loader fills them in by position).  ``ctx.aux_reg``: 11 (the kernel's AX: such a program loads
only inside the kernel), a program register, or "auto" -- one no instruction
touches, so the output loads as a normal program.
"""

from __future__ import annotations

import random
from typing import ClassVar

from bpfpatch.isa import KIND_OF, Insn, Kind
from bpfpatch.isa.opcodes import AX_REG, CLASS_MASK, OP_MASK, SIZE_MASK, AluOp, InsnClass, JmpOp, Mode, PseudoSrc, Source
from bpfpatch.program import relocated_slots
from bpfpatch.passes.base import PassContext
from bpfpatch.passes.regs import resolve_aux_reg
from bpfpatch.patch import PatchInsn, PatchList

_BLINDED_ALU = frozenset({AluOp.ADD, AluOp.SUB, AluOp.AND, AluOp.OR, AluOp.XOR, AluOp.MUL, AluOp.MOV, AluOp.DIV, AluOp.MOD})
_BLINDED_JMP = frozenset({JmpOp.JEQ, JmpOp.JNE, JmpOp.JGT, JmpOp.JLT, JmpOp.JGE, JmpOp.JLE, JmpOp.JSGT, JmpOp.JSLT,
                          JmpOp.JSGE, JmpOp.JSLE, JmpOp.JSET})


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


def blind_insn(insn: Insn, ax: int, rng: random.Random) -> list[Insn | PatchInsn] | None:
    """The blinded replacement of one instruction (jumps: the last item needs its target), or None."""
    code, dst, src, off, imm = insn
    if ax in (dst, src) and KIND_OF[code] != Kind.LD_IMM64:
        return None
    kind = KIND_OF[code]
    cls = code & CLASS_MASK
    op = code & OP_MASK
    if kind == Kind.ALU_K and imm == 0 and op == AluOp.MOV:
        # The kernel clears with `dst ^= dst` after verification; a program that is
        # still to be verified must not read dst first, so outside the kernel's AX
        # mode the harmless `dst = 0` stays.
        return [Insn(InsnClass.ALU64 | AluOp.XOR | Source.X, dst, dst)] if ax == AX_REG else None
    rnd = _s32(rng.getrandbits(32))
    if kind == Kind.ALU_K and op in _BLINDED_ALU:
        return [Insn(cls | AluOp.MOV | Source.K, ax, 0, 0, rnd ^ imm), Insn(cls | AluOp.XOR | Source.K, ax, 0, 0, rnd),
                Insn(cls | op | Source.X, dst, ax, off, 0)]
    if kind == Kind.JCOND_K and op in _BLINDED_JMP and (imm != 0 or ax == AX_REG):
        # Outside the kernel, `if rX == 0` must stay: the verifier learns a map value is
        # not NULL only from a comparison with the constant 0 (and 0 plants nothing).
        alu = InsnClass.ALU64 if cls == InsnClass.JMP else InsnClass.ALU
        return [Insn(alu | AluOp.MOV | Source.K, ax, 0, 0, rnd ^ imm), Insn(alu | AluOp.XOR | Source.K, ax, 0, 0, rnd),
                Insn(cls | op | Source.X, dst, ax, 0, 0)]  # the caller gives it the jump's target
    if kind == Kind.ST:
        return [Insn(InsnClass.ALU64 | AluOp.MOV | Source.K, ax, 0, 0, rnd ^ imm), Insn(InsnClass.ALU64 | AluOp.XOR | Source.K, ax, 0, 0, rnd),
                Insn(InsnClass.STX | Mode.MEM | (code & SIZE_MASK), dst, ax, off, 0)]
    if kind == Kind.LD_IMM64 and src == PseudoSrc.NONE and ax != dst:
        lo, hi = _s32(imm), _s32(imm >> 32)
        rnd2 = _s32(rng.getrandbits(32))
        return [
            Insn(InsnClass.ALU64 | AluOp.MOV | Source.K, ax, 0, 0, rnd ^ hi),
            Insn(InsnClass.ALU64 | AluOp.XOR | Source.K, ax, 0, 0, rnd),
            Insn(InsnClass.ALU64 | AluOp.LSH | Source.K, ax, 0, 0, 32),
            Insn(InsnClass.ALU64 | AluOp.MOV | Source.X, dst, ax),
            Insn(InsnClass.ALU | AluOp.MOV | Source.K, ax, 0, 0, rnd2 ^ lo),
            Insn(InsnClass.ALU | AluOp.XOR | Source.K, ax, 0, 0, rnd2),
            Insn(InsnClass.ALU64 | AluOp.OR | Source.X, dst, ax),
        ]
    return None


class Blind:
    """Constant blinding of every immediate the kernel blinds."""

    name: ClassVar[str] = "blind"

    def run(self, pl: PatchList, ctx: PassContext) -> None:
        ax = resolve_aux_reg(pl, ctx)
        keep = relocated_slots(pl.program)  # map loads the loader fills in by position
        for node in pl:
            insn = node.insn
            if node.orig_idx in keep:
                continue
            patch = blind_insn(insn, ax, ctx.rng)
            if patch is None:
                continue
            if KIND_OF[insn.code] == Kind.JCOND_K:
                patch[-1] = PatchInsn(patch[-1], target=node.target)
            pl.replace(node, patch)


PASS = Blind

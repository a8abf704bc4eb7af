"""div-guard: the kernel's divide/modulo-by-zero and signed-overflow guards.

The same sequences ``do_misc_fixups`` emits (checked against this kernel's
xlated output; see shared NOTES.md).  ``W`` is JMP32 for 32-bit operations,
``A`` the operation's own ALU class, ``AX`` the auxiliary register::

    r0 /= r1            ->  if r1 != 0 goto +2; w0 ^= w0; goto +1; r0 /= r1
    r0 %= r1            ->  if r1 == 0 goto +1; r0 %= r1
    w0 %= w1            ->  if w1 == 0 goto +2; w0 %= w1; goto +1; w0 = w0
    r0 s/= r1           ->  AX = r1; AX += 1; if AX > 1 goto +4; if AX == 0 goto +1;
                            r0 = 0; r0 = -r0; goto +1; r0 s/= r1
    r0 s%= r1           ->  AX = r1; AX += 1; if AX > 1 goto +3; if AX == 1 goto +3;
                            w0 = 0; goto +1; r0 s%= r1          (32-bit: +4, and a
                            trailing goto +1; w0 = w0)
    r0 s/= -1           ->  r0 = -r0
    r0 s%= -1           ->  w0 = 0

The division stays the node that keeps its aux data (the kernel moves it to
the last instruction of the patch).  ``ctx.aux_reg``: 11 (the kernel's AX,
loadable only by the kernel), a program register, or "auto" -- a register no
instruction of the program touches, so the output loads as a normal program.
"""

from __future__ import annotations

from typing import ClassVar

from bpfpatch.isa import Insn
from bpfpatch.isa.opcodes import AX_REG, CLASS_MASK, OP_MASK, SOURCE_MASK, AluOp, InsnClass, JmpOp, Source
from bpfpatch.passes.base import PassContext
from bpfpatch.passes.regs import resolve_aux_reg
from bpfpatch.patch import PatchList

_DIVMOD = (AluOp.DIV, AluOp.MOD)


def guard(insn: Insn, ax: int = AX_REG) -> tuple[Insn, ...] | None:
    """The kernel's replacement for one division/modulo, or None if it needs none."""
    cls = insn.code & CLASS_MASK
    if cls not in (InsnClass.ALU, InsnClass.ALU64) or insn.code & OP_MASK not in _DIVMOD:
        return None
    is64 = cls == InsnClass.ALU64
    is_div = insn.code & OP_MASK == AluOp.DIV
    W = InsnClass.JMP if is64 else InsnClass.JMP32
    A = cls
    rd, rs = insn.dst, insn.src
    signed = insn.off == 1
    if insn.code & SOURCE_MASK == Source.K:
        if not signed or insn.imm != -1:
            return None  # the verifier rejects a zero immediate divisor; others need no guard
        if is_div:
            return (Insn(A | AluOp.NEG, rd),)  # x s/ -1 == -x, without the trap
        return (Insn(InsnClass.ALU | AluOp.MOV | Source.K, rd, 0, 0, 0),)  # x s% -1 == 0
    ja1 = Insn(InsnClass.JMP | JmpOp.JA, 0, 0, 1, 0)
    if not signed:
        if is_div:
            return (
                Insn(W | JmpOp.JNE | Source.K, rs, 0, 2, 0),
                Insn(InsnClass.ALU | AluOp.XOR | Source.X, rd, rd),
                ja1,
                insn,
            )
        if is64:
            return (Insn(W | JmpOp.JEQ | Source.K, rs, 0, 1, 0), insn)
        return (
            Insn(W | JmpOp.JEQ | Source.K, rs, 0, 2, 0),
            insn,
            ja1,
            Insn(InsnClass.ALU | AluOp.MOV | Source.X, rd, rd),
        )
    head = (
        Insn(InsnClass.ALU64 | AluOp.MOV | Source.X, ax, rs),
        Insn(A | AluOp.ADD | Source.K, ax, 0, 0, 1),
    )
    if is_div:
        return head + (
            Insn(W | JmpOp.JGT | Source.K, ax, 0, 4, 1),
            Insn(W | JmpOp.JEQ | Source.K, ax, 0, 1, 0),
            Insn(A | AluOp.MOV | Source.K, rd, 0, 0, 0),
            Insn(A | AluOp.NEG, rd),
            ja1,
            insn,
        )
    body = head + (
        Insn(W | JmpOp.JGT | Source.K, ax, 0, 3, 1),
        Insn(W | JmpOp.JEQ | Source.K, ax, 0, 3 if is64 else 4, 1),
        Insn(InsnClass.ALU | AluOp.MOV | Source.K, rd, 0, 0, 0),
        ja1,
        insn,
    )
    return body if is64 else body + (ja1, Insn(InsnClass.ALU | AluOp.MOV | Source.X, rd, rd))


class DivGuard:
    """The divide/modulo guards of the kernel's do_misc_fixups."""

    name: ClassVar[str] = "div-guard"

    def run(self, pl: PatchList, ctx: PassContext) -> None:
        ax: int | None = None
        cache: dict[Insn, tuple[Insn, ...] | None] = {}
        for node in pl:
            insn = node.insn
            if insn.code & OP_MASK not in _DIVMOD or insn.code & CLASS_MASK not in (InsnClass.ALU, InsnClass.ALU64):
                continue
            if insn not in cache:
                if ax is None and insn.off == 1:
                    ax = resolve_aux_reg(pl, ctx)
                cache[insn] = guard(insn, ax if ax is not None else AX_REG)
            patch = cache[insn]
            if patch is not None:
                pl.replace(node, patch)


PASS = DivGuard

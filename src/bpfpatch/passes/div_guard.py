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

import numpy as np

from bpfpatch.isa import LD_IMM64, Insn, distinct_bytes, insn_starts, opcodes
from bpfpatch.isa.opcodes import AX_REG, CLASS_MASK, OP_MASK, SOURCE_MASK, AluOp, InsnClass, JmpOp, Source
from bpfpatch.passes.base import PassContext
from bpfpatch.passes.regs import registers_named, resolve_aux_reg
from bpfpatch.patch import PatchList
from bpfpatch.patch.bulk import SITE, Row, S, replace_sites
from bpfpatch.program import Program

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
    """The divide/modulo guards of the kernel's do_misc_fixups.

    Vectorized: divisions are found with NumPy over the list's slot words and
    patched per (opcode, off) group with `PatchList.replace_rows`; `guard`
    gives the same rewrite for one instruction.
    """

    name: ClassVar[str] = "div-guard"

    def run(self, pl: PatchList, ctx: PassContext) -> None:
        ids = pl.live_ids()
        w0, _ = pl.words(ids)
        groups = _division_groups(w0)
        if not groups:
            return
        ax = AX_REG
        if any(c & SOURCE_MASK == Source.X and o == 1 for c, o, _ in groups):
            ax = resolve_aux_reg(pl, ctx)  # only register signed guards use it
        for c, o, at in groups:
            template = _template(_prototype(c, o), ax)
            if template:
                pl.replace_rows(ids[at], template)


def _divmod_codes() -> tuple[np.ndarray, np.ndarray]:
    """Per opcode byte: is it a division/modulo; does its divisor come from a register."""
    div = np.zeros(256, dtype=bool)
    reg = np.zeros(256, dtype=bool)
    for code in range(256):
        if code & CLASS_MASK in (InsnClass.ALU, InsnClass.ALU64) and code & OP_MASK in _DIVMOD:
            div[code] = True
            reg[code] = code & SOURCE_MASK == Source.X
    return div, reg


_IS_DIVMOD, _IS_REG_DIVMOD = _divmod_codes()


def _division_groups(w0: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
    """(opcode, off, positions) of every division/modulo that may need a guard, per group.

    One table lookup on the opcode byte screens the program; fields are read
    (as views of the gathered words, no conversion) only at the divisions it
    finds, and the selections are skipped in the usual case of one opcode and
    one ``off`` for every division.
    """
    w0 = np.ascontiguousarray(w0, dtype=np.dtype("<u8"))
    code_byte = w0.view(np.uint8)[::8]
    at = np.flatnonzero(_IS_DIVMOD[code_byte])
    if not len(at):
        return []
    words = w0[at]
    code = words.view(np.uint8)[::8]
    reg = _IS_REG_DIVMOD[code]
    if not reg.all():  # immediate divisors: only the signed -1 case needs a guard
        keep = reg | ((words.view(np.int16)[1::4] == 1) & (words.view(np.int32)[1::2] == -1))
        at, words = at[keep], words[keep]
        if not len(at):
            return []
        code = words.view(np.uint8)[::8]
    off = words.view(np.int16)[1::4]
    codes = distinct_bytes(code)
    out = []
    for c in codes:
        pos, offs = (at, off) if len(codes) == 1 else (at[code == c], off[code == c])
        o0 = int(offs[0])
        if (offs == o0).all():  # the usual case: one off per opcode
            out.append((c, o0, pos))
            continue
        for o in np.unique(offs).tolist():
            out.append((c, o, pos[offs == o]))
    return out


def _prototype(code: int, off: int) -> Insn:
    """A division of the group with placeholder registers (see `_template`)."""
    x = code & SOURCE_MASK == Source.X
    return Insn(code, _RD, _RS if x else 0, off, 0 if x else -1)


PASS = DivGuard


# Placeholder registers of the prototype division a bulk template is derived from
# (outside 0-11, so no guard row can mention them by accident).
_RD, _RS = 12, 13


def _template(proto: Insn, ax: int) -> list:
    """`guard(proto)` with the placeholder registers turned into the site's own fields."""
    def field(v: int):
        return S.dst if v == _RD else S.src if v == _RS else v

    rows: list = []
    for g in guard(proto, ax) or ():
        if g == proto:
            rows.append(SITE)
        else:
            rows.append(Row(g.code, dst=field(g.dst), src=field(g.src), off=g.off, imm=g.imm))
    return rows


def div_guard_bulk(program: Program, aux_reg: int | str = AX_REG) -> Program:
    """div-guard in bulk: one vectorized template per (code, off) group of divisions.

    Gives exactly what the `div-guard` pass gives (`run_passes(program,
    ["div-guard"])`), slots and metadata, without a Python object per site.
    """
    slots = np.ascontiguousarray(program.slots)
    # Every slot is screened; the second halves of ld_imm64 (data, not instructions) are dropped
    # from what the screen finds, when the program has any.
    found = _division_groups(slots.view(np.uint64))
    starts = insn_starts(slots) if found and (opcodes(slots) == LD_IMM64).any() else None
    if starts is not None:
        found = [(c, o, pos[starts[pos]]) for c, o, pos in found]
        found = [g for g in found if len(g[2])]
    ax = AX_REG
    if any(c & SOURCE_MASK == Source.X and o == 1 for c, o, _ in found):
        regs = slots["regs"] if starts is None else slots["regs"][starts]
        ax = resolve_aux_reg(None, PassContext(aux_reg=aux_reg), registers_named(regs))
    groups = []
    for c, o, pos in found:
        template = _template(_prototype(c, o), ax)
        if template:
            groups.append((pos, template))
    if not groups:
        return program.copy()
    return replace_sites(program, groups)

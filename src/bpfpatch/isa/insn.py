"""`Insn`: one logical eBPF instruction as a plain immutable value.

An ``ld_imm64`` is ONE `Insn` whose ``imm`` holds the full 64-bit value
(low word in the first slot, high word in the second); it knows it takes two
8-byte slots.  Every other instruction takes one slot.

Also here: `Insn` <-> slot arrays (`insns_to_slots`, `slots_to_insns`) and
<-> little-endian slot words (`insn_words`, `insn_of_words`, what the patch
list stores).  The named constructors (``add64_imm``, ``jmp_reg``, ...) are
`bpfpatch.isa.build`.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

import numpy as np

from bpfpatch.errors import DecodeError

from bpfpatch.isa.opcodes import (
    CLASS_MASK,
    LD_IMM64,
    InsnClass,
)
from bpfpatch.isa.refs import REF_OF, SUBPROG_REFS, TARGET_OF, Ref, Target
from bpfpatch.isa.slots import SLOT_DTYPE, dst_of, src_of


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
        """The instruction class (bits 0-2 of the opcode)."""
        return InsnClass(self.code & CLASS_MASK)

    @property
    def nslots(self) -> int:
        """Number of 8-byte slots: 2 for ld_imm64, else 1."""
        return 2 if self.code == LD_IMM64 else 1

    @property
    def is_ld_imm64(self) -> bool:
        """Is this the two-slot 64-bit immediate load?"""
        return self.code == LD_IMM64

    @property
    def ref(self) -> Ref:
        """What the instruction refers to (`bpfpatch.isa.refs`: jump, subprogram, map, helper, ...)."""
        return REF_OF[(self.code & 0xFF) << 4 | (self.src & 0xF)]

    @property
    def target_field(self) -> Target:
        """Which field holds the offset of the instruction it targets (`Target.NONE`: none)."""
        return TARGET_OF[(self.code & 0xFF) << 4 | (self.src & 0xF)]

    @property
    def is_jump(self) -> bool:
        """A jump whose target is an instruction (ja, gotol, conditional, may_goto)."""
        return self.ref == Ref.JUMP

    @property
    def is_pseudo_call(self) -> bool:
        """A call of a subprogram of this program (src = 1)."""
        return self.ref == Ref.SUBPROG

    @property
    def is_pseudo_func(self) -> bool:
        """An ld_imm64 of a subprogram's address (src = 4)."""
        return self.ref == Ref.FUNC

    @property
    def is_subprog_ref(self) -> bool:
        """Does the instruction make its target the start of a subprogram?"""
        return self.ref in SUBPROG_REFS

    @property
    def branch_offset(self) -> int | None:
        """Relative offset (in slots) of the instruction's target, or None."""
        field = self.target_field
        if field == Target.NONE:
            return None
        if field == Target.OFF:
            return self.off
        return self.imm_lo if self.code == LD_IMM64 else self.imm

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
        """The same jump/call/func reference pointing `offset` slots away (``off`` if it targets nothing)."""
        field = self.target_field
        if field == Target.IMM:
            if self.code == LD_IMM64:
                return self._replace(imm=(self.imm & ~0xFFFFFFFF) | (offset & 0xFFFFFFFF))
            return self._replace(imm=offset)
        return self._replace(off=offset)


#: An `Insn` from a tuple of its five fields, in C: the NamedTuple's own ``__new__`` is a Python frame
#: around this same call (``Insn(*fields)`` costs about twice as much on CPython 3.11).
_new = tuple.__new__


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _s64(v: int) -> int:
    v &= 0xFFFFFFFFFFFFFFFF
    return v - (1 << 64) if v & (1 << 63) else v


def insn_words(insn: Insn) -> tuple[int, int]:
    """(first, second) little-endian slot words of an instruction (second is 0 unless ld_imm64)."""
    code, dst, src, off, imm = insn
    w0 = code | ((dst & 0xF) | (src << 4)) << 8 | (off & 0xFFFF) << 16 | (imm & 0xFFFFFFFF) << 32
    return w0, (((imm >> 32) & 0xFFFFFFFF) << 32 if code == LD_IMM64 else 0)


def insn_of_words(w0: int, w1: int) -> Insn:
    """The instruction whose little-endian slot words are `w0` (and `w1` for ld_imm64)."""
    code = w0 & 0xFF
    off = (w0 >> 16) & 0xFFFF
    imm = w0 >> 32
    if code == LD_IMM64:
        imm |= (w1 >> 32) << 32
        imm = imm - (1 << 64) if imm >> 63 else imm
    else:
        imm = imm - (1 << 32) if imm >> 31 else imm
    return _new(Insn, (code, (w0 >> 8) & 0xF, (w0 >> 12) & 0xF, off - 0x10000 if off >> 15 else off, imm))


def insns_to_slots(insns: Iterable[Insn]) -> np.ndarray:
    """Logical instructions -> slot array (an ld_imm64 becomes two slots).

    Every field must fit its encoding (opcode and registers 4 bits / 8 bits, off signed 16 bits,
    imm signed 32 bits, an ld_imm64's 64 bits signed or unsigned) and be an int: anything else is a
    `DecodeError` naming the instruction, never masked into another value.  (Which values the
    kernel accepts is `validate_slots`' business.)
    """
    rows: list[tuple[int, int, int, int, int]] = []
    append = rows.append
    index: list[int] = []  # instruction number of each ld_imm64's first slot
    k = -1
    try:
        for k, insn in enumerate(insns):
            code, dst, src, off, imm = insn
            if code == LD_IMM64:
                if not -(1 << 63) <= imm < 1 << 64:
                    raise DecodeError(f"ld_imm64 immediate {imm} does not fit in 64 bits", index=k)
                index.append(k)
                append((code, dst, src, off, _s32(imm & 0xFFFFFFFF)))
                append((0, 0, 0, 0, _s32((imm >> 32) & 0xFFFFFFFF)))
            else:
                append((code, dst, src, off, imm))
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"not an instruction (code, dst, src, off, imm): {exc}", index=k + 1 if k < 0 else k) from exc
    if not rows:
        return np.empty(0, dtype=SLOT_DTYPE)
    try:
        raw = np.array(rows)
    except (OverflowError, TypeError, ValueError):
        raw = np.array(rows, dtype=object)
    if raw.dtype.kind not in "iu" or raw.ndim != 2:
        _refuse_fields(rows, index)
    bad = ((raw[:, 0] < 0) | (raw[:, 0] > 0xFF) | (raw[:, 1] < 0) | (raw[:, 1] > 0x0F) | (raw[:, 2] < 0)
           | (raw[:, 2] > 0x0F) | (raw[:, 3] < -(1 << 15)) | (raw[:, 3] >= 1 << 15) | (raw[:, 4] < -(1 << 31))
           | (raw[:, 4] >= 1 << 31))
    if bad.any():
        _refuse_fields(rows, index)
    out = np.empty(len(rows), dtype=SLOT_DTYPE)
    out["code"] = raw[:, 0]
    out["regs"] = raw[:, 1] | (raw[:, 2] << 4)
    out["off"] = raw[:, 3]
    out["imm"] = raw[:, 4]
    return out


_FIELD_RANGES = (("code", 0, 0xFF), ("dst", 0, 0x0F), ("src", 0, 0x0F), ("off", -(1 << 15), (1 << 15) - 1),
                 ("imm", -(1 << 31), (1 << 31) - 1))


def _refuse_fields(rows: list[tuple[int, int, int, int, int]], ld_imm64_at: list[int]) -> None:
    """The first slot row with a field that is not an int of its encoding's range: a DecodeError naming
    its instruction (slots counted back to instructions through the ld_imm64 pairs)."""
    pairs = 0
    firsts = set()
    for k in ld_imm64_at:
        firsts.add(k + pairs)
        pairs += 1
    skipped = 0
    for slot, row in enumerate(rows):
        if slot - 1 in firsts:
            skipped += 1  # an ld_imm64's second slot
        for (name, lo, hi), v in zip(_FIELD_RANGES, row):
            if not isinstance(v, int):
                raise DecodeError(f"field {name} is a {type(v).__name__}, not an int", index=slot - skipped)
            if not lo <= v <= hi:
                raise DecodeError(f"field {name} {v} does not fit in {lo}..{hi}", index=slot - skipped)
    raise DecodeError("not an instruction")


def slots_to_insns(slots: np.ndarray) -> list[Insn]:
    """Slot array -> logical instructions (ld_imm64 pairs joined)."""
    out: list[Insn] = []
    codes = slots["code"].tolist()
    dsts = dst_of(slots).tolist()
    srcs = src_of(slots).tolist()
    offs = slots["off"].tolist()
    imms = slots["imm"].tolist()
    i, n = 0, len(codes)
    while i < n:
        code = codes[i]
        if code == LD_IMM64 and i + 1 < n:
            imm = (imms[i] & 0xFFFFFFFF) | ((imms[i + 1] & 0xFFFFFFFF) << 32)
            out.append(_new(Insn, (code, dsts[i], srcs[i], offs[i], _s64(imm))))
            i += 2
        else:
            out.append(_new(Insn, (code, dsts[i], srcs[i], offs[i], imms[i])))
            i += 1
    return out

"""Bytecode-level mutants of relocated programs, for testing `check` (not a test module itself).

Each mutant changes one instruction of what libbpf loads: an immediate, a condition, an offset
or size, a store dropped, a map key, a return value.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

from bpfpatch.isa import INVERTED_JMP

JA_0 = struct.pack("<BBhi", 0x05, 0, 0, 0)  # goto +0: a no-op in place of a dropped store
_SIZES = {0x00: 0x08, 0x08: 0x10, 0x10: 0x08, 0x18: 0x00}  # W->H, H->B, B->H, DW->W


@dataclass(frozen=True)
class Mutant:
    kind: str
    slot: int
    insns: bytes

    def __str__(self) -> str:
        return f"{self.kind} at slot {self.slot}"


def _word(raw: bytes, i: int) -> tuple[int, int, int, int]:
    return struct.unpack_from("<BBhi", raw, 8 * i)


def _put(raw: bytes, i: int, code: int, regs: int, off: int, imm: int) -> bytes:
    b = bytearray(raw)
    struct.pack_into("<BBhi", b, 8 * i, code, regs, off, imm)
    return bytes(b)


def _feeds_stack_key(raw: bytes, i: int, n: int, op: int, dst: int) -> bool:
    """`rX = imm` stored to the stack right after (a map key), or `r2 += imm` after `r2 = r10`."""
    if op == 0x00 and dst == 2 and i > 0:
        pc, pregs, _, _ = _word(raw, i - 1)
        return pc == 0xBF and pregs == (10 << 4) | 2
    if op != 0xB0:
        return False
    for j in range(i + 1, min(i + 4, n)):
        c, r, _, _ = _word(raw, j)
        if c & 7 == 3 and r & 0x0F == 10 and r >> 4 == dst:
            return True
    return False


def mutants(raw: bytes) -> list[Mutant]:
    """Every single-instruction mutant of the kinds above (ld_imm64 and calls left alone)."""
    out: list[Mutant] = []
    n = len(raw) // 8
    i = 0
    while i < n:
        code, regs, off, imm = _word(raw, i)
        if code == 0x18:
            i += 2
            continue
        cls, op, x = code & 7, code & 0xF0, code & 0x08
        dst = regs & 0x0F
        nxt = _word(raw, i + 1)[0] if i + 1 < n else None
        if cls in (5, 6) and op not in (0x00, 0x80, 0x90, 0xE0):
            if op in INVERTED_JMP:
                out.append(Mutant("flipped condition", i, _put(raw, i, (code & 0x0F) | int(INVERTED_JMP[op]), regs, off, imm)))
            if not x:
                out.append(Mutant("changed immediate", i, _put(raw, i, code, regs, off, imm + 1)))
        elif cls in (4, 7):
            if op == 0xB0 and not x and dst == 0 and nxt == 0x95:
                out.append(Mutant("changed return value", i, _put(raw, i, code, regs, off, imm ^ 1)))
            elif not x and op not in (0xD0,):
                kind = "changed map key" if _feeds_stack_key(raw, i, n, op, dst) else "changed immediate"
                out.append(Mutant(kind, i, _put(raw, i, code, regs, off, imm + 1)))
        elif cls == 1 and code & 0xE0 == 0x60:  # LDX MEM
            out.append(Mutant("moved offset", i, _put(raw, i, code, regs, off + 1, imm)))
            sz = code & 0x18
            out.append(Mutant("changed size", i, _put(raw, i, (code & ~0x18) | _SIZES[sz], regs, off, imm)))
        elif cls in (2, 3):
            if dst == 10:
                if cls == 2:
                    out.append(Mutant("changed map key", i, _put(raw, i, code, regs, off, imm + 1)))
            else:
                out.append(Mutant("dropped store", i, raw[: 8 * i] + JA_0 + raw[8 * i + 8:]))
                if code & 0xE0 == 0x60:
                    out.append(Mutant("moved offset", i, _put(raw, i, code, regs, off + 1, imm)))
        i += 1
    return out


def sample(ms: list[Mutant], k: int, seed: int = 0) -> list[Mutant]:
    """At most k mutants, deterministically, keeping every kind represented."""
    if len(ms) <= k:
        return ms
    rng = random.Random(seed)
    by_kind: dict[str, list[Mutant]] = {}
    for m in ms:
        by_kind.setdefault(m.kind, []).append(m)
    picked: list[Mutant] = []
    while len(picked) < k:
        for kind in sorted(by_kind):
            pool = [m for m in by_kind[kind] if m not in picked]
            if pool and len(picked) < k:
                picked.append(rng.choice(pool))
    return sorted(picked, key=lambda m: m.slot)

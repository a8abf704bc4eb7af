"""Instructions -> text: one line per instruction, or an objdump-like listing.

The printers format each *distinct* instruction once: a program's text is a
function of its 8-byte words (jump targets print relative), and programs
repeat instructions, so a million-instruction listing formats a few thousand
and assembles the lines from NumPy columns (slot numbers, one hex dump of the
whole program) with no per-instruction formatting call.
"""

from __future__ import annotations

from itertools import accumulate
from typing import Iterable, Iterator, Protocol

import numpy as np

from bpfpatch.asm.syntax import format_kernel, format_llvm
from bpfpatch.isa import LD_IMM64, Insn, encode_slots, insn_starts, insns_to_slots
from bpfpatch.isa.insn import insn_of_words

STYLES = ("llvm", "kernel")
_HEX_PER_SLOT = 24  # "xx " * 8 in the whole-program hex dump


class Slotted(Protocol):
    """What the printers take besides a list of instructions: a `bpfpatch.program.Program` (its ``slots``)."""

    slots: np.ndarray


def format_insn(insn: Insn, style: str = "llvm", pc: int | None = None) -> str:
    """One instruction in `style`."""
    if style == "llvm":
        return format_llvm(insn)
    if style == "kernel":
        return format_kernel(insn, pc)
    raise ValueError(f"unknown style {style!r} (llvm or kernel)")


def _slots(program: Slotted | Iterable[Insn]) -> np.ndarray:
    slots = getattr(program, "slots", None)
    return slots if isinstance(slots, np.ndarray) else insns_to_slots(list(program))


def _unique_insns(slots: np.ndarray, at: np.ndarray) -> tuple[list[Insn], np.ndarray]:
    """(distinct instructions, index of each instruction of `at` among them)."""
    words = np.ascontiguousarray(slots).view(np.uint64)
    w0 = words[at]
    is_ld = (w0 & np.uint64(0xFF)) == LD_IMM64
    ids = np.empty(len(at), dtype=np.int64)
    plain = ~is_ld
    w0p = w0[plain]
    uniq = np.unique(w0p)  # a plain sort; the inverse by binary search is cheaper than unique's own
    ids[plain] = np.searchsorted(uniq, w0p)
    insns = [insn_of_words(w, 0) for w in uniq.tolist()]
    if is_ld.any():
        seen: dict[tuple[int, int], int] = {}
        ld = np.flatnonzero(is_ld)
        for k, s in zip(ld.tolist(), at[ld].tolist()):
            key = (int(words[s]), int(words[s + 1]) if s + 1 < len(words) else 0)
            got = seen.get(key)
            if got is None:
                got = seen[key] = len(insns)
                insns.append(insn_of_words(*key))
            ids[k] = got
    return insns, ids


def _formatter(style: str):
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r} (llvm or kernel)")
    return format_llvm if style == "llvm" else format_kernel


def _texts(slots: np.ndarray, at: np.ndarray, style: str) -> list[str]:
    """The text of the instruction starting at each slot in `at`, each distinct one formatted once."""
    fmt = _formatter(style)
    insns, ids = _unique_insns(slots, at)
    return np.array([fmt(i) for i in insns] or [""], dtype=object)[ids].tolist()


def _starts(slots: np.ndarray) -> np.ndarray:
    return np.flatnonzero(insn_starts(slots)) if len(slots) else np.zeros(0, dtype=np.int64)


def disasm(program: Slotted | Iterable[Insn], style: str = "llvm") -> list[str]:
    """One text line per instruction (no addresses): exactly llvm-objdump's text in llvm style."""
    slots = _slots(program)
    return _texts(slots, _starts(slots), style)


def _digits(values: np.ndarray) -> np.ndarray:
    """Decimal digit count of each non-negative value."""
    n = np.ones(len(values), dtype=np.int64)
    for k in range(1, 20):
        more = values >= 10**k
        if not more.any():
            break
        n += more
    return n


_FILL = 0  # a byte no text contains: pads each line's row, squeezed out at the end


def listing_bytes(program: Slotted | Iterable[Insn], style: str = "llvm") -> bytes:
    """`listing` as one ASCII buffer, a newline after each line, built with NumPy (`listing_chunks`, joined)."""
    return b"".join(listing_chunks(program, style))


#: Lines per buffer `listing_chunks` yields: its temporaries (a few MB) stay in cache and are
#: reused by the allocator, instead of matrices the size of the whole listing.
LISTING_CHUNK = 1 << 16


def listing_chunks(program: Slotted | Iterable[Insn], style: str = "llvm", lines: int = LISTING_CHUNK) -> Iterator[bytes]:
    """`listing_bytes` in pieces of at most `lines` lines each (what `bpfpatch disasm` writes as it goes).

    Each distinct instruction is formatted once (its text, and in llvm style its
    hex bytes) into a padded row; every line is one row of a matrix -- the slot
    number's digit columns, then its instruction's row -- and the padding is
    squeezed out in one pass: no per-line Python work.
    """
    fmt = _formatter(style)
    slots = _slots(program)
    at = _starts(slots)
    if not len(at):
        return
    insns, ids = _unique_insns(slots, at)
    ndig = int(_digits(at[-1:])[0])  # slots ascend: the last has the most digits
    if style == "kernel":
        suffixes = [f": {fmt(i)}\n".encode() for i in insns]
        width = ndig  # "slot" left-aligned, then ": text"
    else:
        raw = encode_slots(insns_to_slots(insns))  # every distinct instruction's bytes, encoded at once
        sizes = [16 if i[0] == LD_IMM64 else 8 for i in insns]
        suffixes = [f":\t{raw[e - k : e].hex(' ')}\t{fmt(i)}\n".encode() for i, k, e in zip(insns, sizes, accumulate(sizes))]
        width = max(8, ndig)  # right-aligned in 8 columns, wider when it must be
    longest = max(len(x) for x in suffixes)
    rows = np.full((len(suffixes), longest), _FILL, dtype=np.uint8)
    for k, x in enumerate(suffixes):
        rows[k, : len(x)] = np.frombuffer(x, dtype=np.uint8)
    # Slot numbers, right-aligned, one digit column at a time from the right; leading columns are
    # spaces (llvm) or padding (kernel: squeezed out, so the number ends up left-aligned).
    lead = _FILL if style == "kernel" else ord(" ")
    for lo in range(0, len(at), max(1, lines)):
        part = at[lo : lo + lines]
        mat = np.empty((len(part), width + longest), dtype=np.uint8)
        q = part.astype(np.uint32) if int(part[-1]) < 1 << 32 else part.copy()
        for c in range(width - 1, -1, -1):
            q, digit = np.divmod(q, 10)
            col = digit.astype(np.uint8) + np.uint8(ord("0"))
            if c < width - 1:
                col[(q == 0) & (digit == 0)] = lead
            mat[:, c] = col
        mat[:, width:] = np.take(rows, ids[lo : lo + lines], axis=0)
        flat = mat.ravel()
        yield flat[flat != _FILL].tobytes()


def listing(program: Slotted | Iterable[Insn], style: str = "llvm", *, source: dict[int, str] | None = None) -> list[str]:
    """``llvm-objdump -d``-like lines: slot, hex bytes, text (kernel style: ``slot: (code) text``).

    `source` maps slots to source lines to interleave (``--source``).
    """
    text = listing_bytes(program, style).decode("ascii")
    lines = text.split("\n")[:-1] if text else []
    if not source:
        return lines
    at = _starts(_slots(program)).tolist()
    out: list[str] = []
    for s, line in zip(at, lines):
        if s in source:
            out.append(f"; {source[s]}")
        out.append(line)
    return out

"""Tristate numbers (kernel/bpf/tnum.c): known bits of a 64-bit value.

A tnum is a pair ``(value, mask)`` of unsigned 64-bit ints: bits set in
``mask`` are unknown, the others equal the bits of ``value`` (``value & mask``
is always 0).  Functions take and return plain tuples so the interpreter's hot
path allocates nothing else.

    >>> tnum_add((1, 0), (0, 0xf))
    (0, 31)
    >>> tnum_range(0, 255)
    (0, 255)
"""

from __future__ import annotations

U64 = (1 << 64) - 1
U32 = 0xFFFFFFFF

Tnum = tuple[int, int]

UNKNOWN: Tnum = (0, U64)


def tnum_const(value: int) -> Tnum:
    """The tnum of one known value."""
    return (value & U64, 0)


def tnum_range(lo: int, hi: int) -> Tnum:
    """The smallest tnum holding every value in [lo, hi] (unsigned)."""
    chi = (lo ^ hi) & U64
    bits = chi.bit_length()
    if bits > 63:
        return UNKNOWN
    delta = (1 << bits) - 1
    return (lo & ~delta & U64, delta)


def tnum_lshift(a: Tnum, shift: int) -> Tnum:
    return ((a[0] << shift) & U64, (a[1] << shift) & U64)


def tnum_rshift(a: Tnum, shift: int) -> Tnum:
    return (a[0] >> shift, a[1] >> shift)


def tnum_arshift(a: Tnum, shift: int, bits: int) -> Tnum:
    """Arithmetic right shift of the low `bits` (32 or 64) bits."""
    if bits == 32:
        v, m = a[0] & U32, a[1] & U32
        v = v - (1 << 32) if v >> 31 else v
        m = m - (1 << 32) if m >> 31 else m
        return ((v >> shift) & U32, (m >> shift) & U32)
    v, m = a
    v = v - (1 << 64) if v >> 63 else v
    m = m - (1 << 64) if m >> 63 else m
    return ((v >> shift) & U64, (m >> shift) & U64)


def tnum_add(a: Tnum, b: Tnum) -> Tnum:
    sm = (a[1] + b[1]) & U64
    sv = (a[0] + b[0]) & U64
    sigma = (sm + sv) & U64
    chi = sigma ^ sv
    mu = chi | a[1] | b[1]
    return (sv & ~mu & U64, mu)


def tnum_sub(a: Tnum, b: Tnum) -> Tnum:
    dv = (a[0] - b[0]) & U64
    alpha = (dv + a[1]) & U64
    beta = (dv - b[1]) & U64
    chi = alpha ^ beta
    mu = chi | a[1] | b[1]
    return (dv & ~mu & U64, mu)


def tnum_neg(a: Tnum) -> Tnum:
    return tnum_sub((0, 0), a)


def tnum_and(a: Tnum, b: Tnum) -> Tnum:
    alpha = a[0] | a[1]
    beta = b[0] | b[1]
    v = a[0] & b[0]
    return (v, alpha & beta & ~v & U64)


def tnum_or(a: Tnum, b: Tnum) -> Tnum:
    v = a[0] | b[0]
    mu = a[1] | b[1]
    return (v, mu & ~v & U64)


def tnum_xor(a: Tnum, b: Tnum) -> Tnum:
    v = a[0] ^ b[0]
    mu = a[1] | b[1]
    return (v & ~mu & U64, mu)


def tnum_union(a: Tnum, b: Tnum) -> Tnum:
    """Every value either tnum holds."""
    v = a[0] & b[0]
    mu = (a[0] ^ b[0]) | a[1] | b[1]
    return (v & ~mu & U64, mu)


def tnum_mul(a: Tnum, b: Tnum) -> Tnum:
    """Multiplication, the kernel's (6.17+) per-bit accumulation."""
    acc: Tnum = (0, 0)
    while a[0] or a[1]:
        if a[0] & 1:
            acc = tnum_add(acc, b)
        elif a[1] & 1:
            acc = tnum_union(acc, tnum_add(acc, b))
        a = (a[0] >> 1, a[1] >> 1)
        b = ((b[0] << 1) & U64, (b[1] << 1) & U64)
    return acc


def tnum_intersect(a: Tnum, b: Tnum) -> Tnum:
    """Values both tnums may hold (the known bits of both)."""
    v = a[0] | b[0]
    mu = a[1] & b[1]
    return (v & ~mu & U64, mu)


def tnum_cast(a: Tnum, size: int) -> Tnum:
    """The low `size` bytes."""
    m = (1 << (size * 8)) - 1
    return (a[0] & m, a[1] & m)


def tnum_in(a: Tnum, b: Tnum) -> bool:
    """Every value of `b` is a value of `a`."""
    if b[1] & ~a[1]:
        return False
    return a[0] == (b[0] & ~a[1])


def tnum_overlap(a: Tnum, b: Tnum) -> bool:
    """Some value is in both."""
    mu = ~a[1] & ~b[1]
    return ((a[0] ^ b[0]) & mu) == 0


def tnum_subreg(a: Tnum) -> Tnum:
    return (a[0] & U32, a[1] & U32)


def tnum_clear_subreg(a: Tnum) -> Tnum:
    return (a[0] & ~U32 & U64, a[1] & ~U32 & U64)


def tnum_with_subreg(reg: Tnum, subreg: Tnum) -> Tnum:
    return tnum_or(tnum_clear_subreg(reg), tnum_subreg(subreg))


def tnum_const_subreg(a: Tnum, value: int) -> Tnum:
    return tnum_with_subreg(a, (value & U32, 0))


def tnum_step(a: Tnum, z: int) -> int:
    """The smallest member of `a` greater than `z` (the kernel's ``tnum_step``): its largest member
    when `z` is at or above it, its smallest when `z` is below that.

    >>> tnum_step((0, 0xc), 5), tnum_step((0, 0xc), 8), tnum_step((0x1, 0x12), 3)
    (8, 12, 17)
    """
    v, m = a
    tmax = v | m
    if z >= tmax:
        return tmax
    if z < v:
        return v
    y = z + 1  # the smallest member >= y
    diff = (y ^ v) & ~m & U64  # fixed bits where y is not a member
    if not diff:
        return y
    k = diff.bit_length() - 1
    low = (1 << (k + 1)) - 1
    if v >> k & 1:  # y has a 0 where the tnum has a fixed 1: keep y above k, the smallest below
        return (y & ~low & U64) | (v & low)
    # y has a 1 where the tnum has a fixed 0: the next value of the unknown bits above k
    m_hi = m & ~low & U64
    x_hi = ((((y & m_hi) | ~m_hi) & U64) + (1 << (k + 1))) & m_hi
    return v | x_hi


def tnum_is_const(a: Tnum) -> bool:
    return a[1] == 0


def tnum_subreg_is_const(a: Tnum) -> bool:
    return (a[1] & U32) == 0


def tnum_bswap(a: Tnum, bits: int) -> Tnum:
    """Byte swap of the low `bits` bits (upper bits cleared)."""
    n = bits // 8
    v = int.from_bytes((a[0] & ((1 << bits) - 1)).to_bytes(n, "little"), "big")
    m = int.from_bytes((a[1] & ((1 << bits) - 1)).to_bytes(n, "little"), "big")
    return (v, m)


__all__ = [name for name in dir() if name.startswith("tnum_")] + ["Tnum", "UNKNOWN", "U64", "U32"]

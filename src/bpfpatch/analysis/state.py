"""Register and stack states of the abstract interpreter (``struct bpf_reg_state`` and friends).

A `Reg` is one register: its `RegType`, a fixed offset ``off``, the scalar
part (known bits ``var_off`` as a tnum plus signed/unsigned 64- and 32-bit
ranges, the kernel's ``smin_value`` ... ``u32_max_value``), and the
pointer details (packet ``range``, the map of a map pointer or value, ids).
The bounds logic follows kernel/bpf/verifier.c: `reg_bounds_sync` is the
kernel's ``reg_bounds_sync`` (``__update_reg_bounds``, three rounds of
``__reg_deduce_bounds``, ``__reg_bound_offset``).

A `Frame` holds R0-R10 and the stack of one function; a `State` the frames of
the call chain.

Copy on write: the live state of the walk owns its `Reg`, `Slot` and `Frame`
objects and changes them in place.  Every other state -- a kept snapshot
(``InsnAux.states``, a `Snapshot`), a checkpoint (an explored state), a pending branch
waiting on the walk's stack -- is *frozen*: its registers, slots and frames
are shared with the frozen states made before it (`Frame.snapshot`) and are
never changed in place.  A kept state is packed against the newest frozen snapshot (its key) when at most
`KEPT_REGS` registers of one frame differ, across a call or return too (`State.keep`, a `KeptState`: one
int for what differs, a plain scalar as the fields that differ from the key's register), unpacked when read.
Past the first 64 a pending branch waits as a record of the walk's
`ParkedStack` (its walk fields and the registers that differ from the frozen frame it shares with as bytes in
one bytearray, a plain scalar 6 to 74 bytes, `Frame.pack`; its objects in one list; its history the live
path's array), made a live state with owned copies (`ParkedStack.pop`) when the walk takes it up; precision
marks, the only writes into a checkpoint, set bits of its ``pmask`` for registers (`Checkpoint.set_precise`)
and replace the stack slots they change (`State.set_precise`); a checkpoint's
dead slots are forgotten in a shallow copy of its frame.  `record_frozen` /
`check_frozen` verify in tests that nothing frozen changed.
"""

from __future__ import annotations

from array import array
from operator import attrgetter
from struct import Struct
from types import MappingProxyType

from bpfpatch.analysis.facts import MapRef, PackedState, RegType
from bpfpatch.analysis.tnum import (
    U32,
    U64,
    UNKNOWN,
    Tnum,
    tnum_clear_subreg,
    tnum_intersect,
    tnum_or,
    tnum_range,
    tnum_step,
    tnum_subreg,
)

S64_MIN, S64_MAX = -(1 << 63), (1 << 63) - 1
S32_MIN, S32_MAX = -(1 << 31), (1 << 31) - 1
MAX_BPF_STACK = 512
MAX_PACKET_OFF = 0xFFFF
BEYOND_PKT_END = -2
AT_PKT_END = -1
#: A scalar's id flags (include/linux/bpf_verifier.h, 6.18): the register is its linked set's value plus
#: its ``off``, added by a 64-bit or a 32-bit ``+=``/``-=`` of a constant (the set is ``id & ~ADD_CONST``).
ADD_CONST64, ADD_CONST32 = 1 << 31, 1 << 30
ADD_CONST = ADD_CONST64 | ADD_CONST32


def s64(x: int) -> int:
    """`x` as a signed 64-bit int."""
    x &= U64
    return x - (1 << 64) if x >> 63 else x


def s32(x: int) -> int:
    """The low 32 bits of `x` as a signed int."""
    x &= U32
    return x - (1 << 32) if x >> 31 else x


class Reg:
    """One register's abstract value (``struct bpf_reg_state``)."""

    __slots__ = ("type", "off", "var_off", "smin", "smax", "umin", "umax", "s32min", "s32max", "u32min",
                 "u32max", "id", "ref_obj_id", "range", "map", "mem_size", "btf_name", "subreg_def",
                 "precise", "frameno")

    def __init__(self, type: RegType = RegType.NOT_INIT) -> None:
        self.type = type
        self.off = 0
        self.var_off: Tnum = UNKNOWN
        self.smin, self.smax, self.umin, self.umax = S64_MIN, S64_MAX, 0, U64
        self.s32min, self.s32max, self.u32min, self.u32max = S32_MIN, S32_MAX, 0, U32
        self.id = 0
        self.ref_obj_id = 0
        self.range = 0
        self.map: MapRef | None = None
        self.mem_size = 0
        self.btf_name = ""
        self.subreg_def = 0  # 1 + index of the 32-bit definition of the low half, 0: a 64-bit value
        self.precise = False
        self.frameno = 0

    def copy(self) -> "Reg":
        r = Reg.__new__(Reg)
        r.type, r.off, r.var_off = self.type, self.off, self.var_off
        r.smin, r.smax, r.umin, r.umax = self.smin, self.smax, self.umin, self.umax
        r.s32min, r.s32max, r.u32min, r.u32max = self.s32min, self.s32max, self.u32min, self.u32max
        r.id, r.ref_obj_id, r.range, r.map = self.id, self.ref_obj_id, self.range, self.map
        r.mem_size, r.btf_name, r.subreg_def, r.precise, r.frameno = (
            self.mem_size, self.btf_name, self.subreg_def, self.precise, self.frameno)
        return r

    def same(self, o: "Reg") -> bool:
        """Every field equal (the map the very same object): a snapshot may share the older copy."""
        return (self.var_off == o.var_off and self.type is o.type and self.off == o.off and self.smin == o.smin
                and self.smax == o.smax and self.umin == o.umin and self.umax == o.umax and self.s32min == o.s32min
                and self.s32max == o.s32max and self.u32min == o.u32min and self.u32max == o.u32max
                and self.id == o.id and self.ref_obj_id == o.ref_obj_id and self.range == o.range and self.map is o.map
                and self.mem_size == o.mem_size and self.btf_name == o.btf_name and self.subreg_def == o.subreg_def
                and self.precise == o.precise and self.frameno == o.frameno)

    def assign(self, other: "Reg") -> None:
        """Become a copy of `other` (``copy_register_state``): every field of `Reg.__slots__`."""
        self.type, self.off, self.var_off = other.type, other.off, other.var_off
        self.smin, self.smax, self.umin, self.umax = other.smin, other.smax, other.umin, other.umax
        self.s32min, self.s32max, self.u32min, self.u32max = other.s32min, other.s32max, other.u32min, other.u32max
        self.id, self.ref_obj_id, self.range, self.map = other.id, other.ref_obj_id, other.range, other.map
        self.mem_size, self.btf_name, self.subreg_def, self.precise, self.frameno = (
            other.mem_size, other.btf_name, other.subreg_def, other.precise, other.frameno)

    # --- constructors ------------------------------------------------------------------

    @classmethod
    def known(cls, value: int) -> "Reg":
        """A scalar of one known 64-bit value."""
        r = cls(RegType.SCALAR)
        mark_known(r, value)
        return r

    @classmethod
    def unknown(cls) -> "Reg":
        """A scalar about which nothing is known."""
        return cls(RegType.SCALAR)

    @classmethod
    def pointer(cls, type: RegType, off: int = 0, **fields: object) -> "Reg":
        """A pointer of `type` with fixed offset `off` and a zero variable offset."""
        r = cls(type)
        mark_known(r, 0)
        r.off = off
        for name, value in fields.items():
            setattr(r, name, value)
        return r

    # --- queries -----------------------------------------------------------------------

    @property
    def is_scalar(self) -> bool:
        return self.type is RegType.SCALAR

    @property
    def is_pointer(self) -> bool:
        return self.type is not RegType.SCALAR and self.type is not RegType.NOT_INIT

    def is_const(self, is32: bool = False) -> bool:
        if self.type is not RegType.SCALAR:
            return False
        if is32:
            return (self.var_off[1] & U32) == 0
        return self.var_off[1] == 0

    def const_value(self, is32: bool = False) -> int:
        return self.var_off[0] & U32 if is32 else self.var_off[0]

    def __repr__(self) -> str:  # the log's form is `bpfpatch.analysis.vlog.format_reg` (vlog reads this module)
        return f"<Reg {self.type.name} off={self.off} var_off=({self.var_off[0]:#x}; {self.var_off[1]:#x})>"


# --- bounds (kernel/bpf/verifier.c) ---------------------------------------------------------


def mark_known(r: Reg, value: int) -> None:
    """``__mark_reg_known``: every bit and bound is `value`."""
    v = value & U64
    r.var_off = (v, 0)
    r.umin = r.umax = v
    if v <= S32_MAX:  # every bound is v: one int object for all eight (a pending branch keeps them all)
        r.smin = r.smax = r.s32min = r.s32max = r.u32min = r.u32max = v
        return
    r.smin = r.smax = s64(v)
    r.s32min = r.s32max = s32(v)
    r.u32min = r.u32max = v & U32


def mark_known32(r: Reg, value: int) -> None:
    """``__mark_reg32_known``: the low half is `value`."""
    v = value & U32
    r.var_off = (r.var_off[0] & ~U32 & U64 | v, r.var_off[1] & ~U32 & U64)
    r.s32min = r.s32max = s32(v)
    r.u32min = r.u32max = v


def mark_unbounded(r: Reg) -> None:
    r.smin, r.smax, r.umin, r.umax = S64_MIN, S64_MAX, 0, U64
    r.s32min, r.s32max, r.u32min, r.u32max = S32_MIN, S32_MAX, 0, U32


def mark_unbounded64(r: Reg) -> None:
    r.smin, r.smax, r.umin, r.umax = S64_MIN, S64_MAX, 0, U64


def mark_unbounded32(r: Reg) -> None:
    r.s32min, r.s32max, r.u32min, r.u32max = S32_MIN, S32_MAX, 0, U32


def mark_unknown(r: Reg) -> None:
    """``__mark_reg_unknown``: a scalar about which nothing is known."""
    r.type = RegType.SCALAR
    r.off = 0
    r.var_off = UNKNOWN
    mark_unbounded(r)
    r.id = r.ref_obj_id = r.range = r.mem_size = 0
    r.map = None
    r.btf_name = ""
    r.precise = False


def mark_not_init(r: Reg) -> None:
    mark_unknown(r)
    r.type = RegType.NOT_INIT


def update_bounds32(r: Reg) -> None:
    v, m = r.var_off[0] & U32, r.var_off[1] & U32
    r.s32min = max(r.s32min, s32(v | (m & 0x80000000)))
    r.s32max = min(r.s32max, s32(v | (m & 0x7FFFFFFF)))
    r.u32min = max(r.u32min, v)
    r.u32max = min(r.u32max, v | m)


def update_bounds64(r: Reg) -> None:
    """``__update_reg64_bounds``: the 64-bit ranges within var_off; where only one member of var_off is in
    [umin, umax], the register is that value (6.18: the running kernel's log prints ``R1=8`` for
    var_off=(0x0; 0x8) with umin=1; 6.12 kept the range)."""
    v, m = r.var_off
    r.smin = max(r.smin, s64(v | (m & (1 << 63))))
    r.smax = min(r.smax, s64(v | (m & S64_MAX)))
    umin = r.umin = max(r.umin, v)
    umax = r.umax = min(r.umax, v | m)
    if m == 0 or umax - umin >= m:
        return  # known, or the range spans every value of the unknown bits' width: two members or more
    nxt = tnum_step(r.var_off, umin)
    if (umin & ~m) == v:
        if nxt > umax:
            mark_known(r, umin)  # only umin
    elif nxt == v | m:
        mark_known(r, nxt)  # only the tnum's largest member
    elif nxt <= umax and tnum_step(r.var_off, nxt) > umax:
        mark_known(r, nxt)  # only one member between umin and umax


def update_bounds(r: Reg) -> None:
    update_bounds32(r)
    update_bounds64(r)


def deduce_bounds32(r: Reg) -> None:
    if (r.umin >> 32) == (r.umax >> 32):
        r.u32min = max(r.u32min, r.umin & U32)
        r.u32max = min(r.u32max, r.umax & U32)
        if s32(r.umin) <= s32(r.umax):
            r.s32min = max(r.s32min, s32(r.umin))
            r.s32max = min(r.s32max, s32(r.umax))
    if (r.smin >> 32) == (r.smax >> 32):
        if (r.smin & U32) <= (r.smax & U32):
            r.u32min = max(r.u32min, r.smin & U32)
            r.u32max = min(r.u32max, r.smax & U32)
        if s32(r.smin) <= s32(r.smax):
            r.s32min = max(r.s32min, s32(r.smin))
            r.s32max = min(r.s32max, s32(r.smax))
    if (((r.umin >> 32) + 1) & U32) == ((r.umax >> 32) & U32) and s32(r.umin) < 0 and s32(r.umax) >= 0:
        r.s32min = max(r.s32min, s32(r.umin))
        r.s32max = min(r.s32max, s32(r.umax))
    if ((((r.smin & U64) >> 32) + 1) & U32) == (((r.smax & U64) >> 32) & U32) and s32(r.smin) < 0 and s32(r.smax) >= 0:
        r.s32min = max(r.s32min, s32(r.smin))
        r.s32max = min(r.s32max, s32(r.smax))
    if s32(r.u32min) <= s32(r.u32max):
        r.s32min = max(r.s32min, s32(r.u32min))
        r.s32max = min(r.s32max, s32(r.u32max))
    if (r.s32min & U32) <= (r.s32max & U32):
        r.u32min = max(r.s32min & U32, r.u32min)
        r.u32max = min(r.s32max & U32, r.u32max)
    else:
        if r.u32max < (r.s32min & U32):
            r.s32min = s32(r.u32min)
            r.u32max = min(r.u32max, r.s32max & U32)
        elif (r.s32max & U32) < r.u32min:
            r.s32max = s32(r.u32max)
            r.u32min = max(r.u32min, r.s32min & U32)


def deduce_bounds64(r: Reg) -> None:
    if s64(r.umin) <= s64(r.umax):
        r.smin = max(r.smin, s64(r.umin))
        r.smax = min(r.smax, s64(r.umax))
    if (r.smin & U64) <= (r.smax & U64):
        r.umin = max(r.smin & U64, r.umin)
        r.umax = min(r.smax & U64, r.umax)
    else:
        if r.umax < (r.smin & U64):
            r.smin = s64(r.umin)
            r.umax = min(r.umax, r.smax & U64)
        elif (r.smax & U64) < r.umin:
            r.smax = s64(r.umax)
            r.umin = max(r.umin, r.smin & U64)


def deduce_mixed_bounds(r: Reg) -> None:
    hi = ~U32 & U64
    r.umin = max(r.umin, (r.umin & hi) | r.u32min)
    r.umax = min(r.umax, (r.umax & hi) | r.u32max)
    r.smin = max(r.smin, s64((r.smin & hi) | r.u32min))
    r.smax = min(r.smax, s64((r.smax & hi) | r.u32max))
    if (r.s32min & U32) <= (r.s32max & U32):
        r.umin = max(r.umin, (r.umin & hi) | (r.s32min & U32))
        r.umax = min(r.umax, (r.umax & hi) | (r.s32max & U32))
        r.smin = max(r.smin, s64((r.smin & hi) | (r.s32min & U32)))
        r.smax = min(r.smax, s64((r.smax & hi) | (r.s32max & U32)))
    if r.s32min >= 0 and r.smin >= S32_MIN and r.smax <= S32_MAX:
        r.smin, r.smax = r.s32min, r.s32max
        r.umin, r.umax = r.s32min, r.s32max
        r.var_off = tnum_intersect(r.var_off, tnum_range(r.smin & U64, r.smax & U64))


def deduce_bounds(r: Reg) -> None:
    deduce_bounds32(r)
    deduce_bounds64(r)
    deduce_mixed_bounds(r)


def bound_offset(r: Reg) -> None:
    """``__reg_bound_offset``: known bits from the unsigned ranges."""
    var64 = tnum_intersect(r.var_off, tnum_range(r.umin, r.umax))
    var32 = tnum_intersect(tnum_subreg(var64), tnum_range(r.u32min, r.u32max))
    r.var_off = tnum_or(tnum_clear_subreg(var64), var32)


#: reg_bounds_sync's results by its inputs (a pure function of the nine fields), in two generations: the
#: newer holds up to `synced_generation()` inputs; when it is full it becomes the older one and the older one
#: is dropped, and a hit in the older one is copied into the newer one.  Real programs repeat few inputs
#: (test_verif_scale1: 20 distinct in 170,952 calls, katran's balancer 195 in 32,076, strobemeta_nounroll1
#: 1,209 in 26,859) and hit as often as with 65,536 (0.955-1.000); a program whose ranges never repeat (a
#: bound moved by every branch) holds at most two generations (~150-330 B an input) instead of 65,536 inputs.
#: A generation's size follows its use: one that filled with fewer hits than inputs (the memo missed more
#: often than it answered) halves the next, down to `SYNCED_MIN_GENERATION`; one that hit more doubles it,
#: up to `SYNCED_GENERATION` (ranges that never repeat held 2,048 inputs, ~390 KB, 24 B an instruction of a
#: 16k program, for no hit).
_SYNCED: dict[tuple, tuple] = {}
_SYNCED_OLD: dict[tuple, tuple] = {}
SYNCED_GENERATION = 1 << 10
SYNCED_MIN_GENERATION = 1 << 7
_synced_size = SYNCED_GENERATION  # the newer generation's size now
_synced_hits = 0  # answers since the newer generation began


def reg_bounds_sync(r: Reg) -> None:
    """``reg_bounds_sync``: make var_off and the four ranges agree.

    The kernel runs ``__reg_deduce_bounds`` three times; a round that changes
    nothing is a fixed point, so later rounds are skipped (same result).  A
    known constant inside its ranges is already synced.  The result depends on
    the ranges and var_off alone and programs repeat them (an unknown u32 after
    every step of a hash): the results of the last 1,024 to 2,048 distinct
    inputs are remembered (`_SYNCED`, two generations; 128 to 256 while they
    are seldom asked again).
    """
    global _SYNCED, _SYNCED_OLD, _synced_size, _synced_hits
    key = (r.smin, r.smax, r.umin, r.umax, r.s32min, r.s32max, r.u32min, r.u32max, r.var_off)
    out = _SYNCED.get(key)
    if out is None:
        out = _SYNCED_OLD.get(key)
        if out is None:
            _bounds_sync(r)
            out = (r.smin, r.smax, r.umin, r.umax, r.s32min, r.s32max, r.u32min, r.u32max, r.var_off)
            if out == key:
                out = key  # synced already: the entry holds one tuple, not two equal ones
        else:
            _synced_hits += 1
            r.smin, r.smax, r.umin, r.umax, r.s32min, r.s32max, r.u32min, r.u32max, r.var_off = out
        if len(_SYNCED) >= _synced_size:
            if _synced_hits < _synced_size:
                _synced_size = max(SYNCED_MIN_GENERATION, _synced_size >> 1)
            else:
                _synced_size = min(SYNCED_GENERATION, _synced_size << 1)
            _synced_hits = 0
            _SYNCED_OLD = _SYNCED
            _SYNCED = {}
        _SYNCED[key] = out
    else:
        _synced_hits += 1
        r.smin, r.smax, r.umin, r.umax, r.s32min, r.s32max, r.u32min, r.u32max, r.var_off = out


def forget_synced() -> None:
    """Empty `reg_bounds_sync`'s memo and the kept-state codes `State.keep` shares (as a fresh process has
    them: for measurements; results do not change)."""
    global _SYNCED, _SYNCED_OLD, _synced_size, _synced_hits
    _SYNCED, _SYNCED_OLD = {}, {}
    _synced_size, _synced_hits = SYNCED_GENERATION, 0
    _CODES.clear()


def synced_generation() -> int:
    """The size of `reg_bounds_sync`'s newer generation now (`SYNCED_MIN_GENERATION` to `SYNCED_GENERATION`)."""
    return _synced_size


def synced_inputs() -> int:
    """How many inputs `reg_bounds_sync` remembers now (both generations; at most 2 x `SYNCED_GENERATION`)."""
    return len(_SYNCED) + len(_SYNCED_OLD)


def _bounds_sync(r: Reg) -> None:
    v, m = r.var_off
    if m == 0 and r.umin <= v <= r.umax and r.smin <= s64(v) <= r.smax and r.u32min <= (v & U32) <= r.u32max \
            and r.s32min <= s32(v) <= r.s32max:
        mark_known(r, v)
        return
    update_bounds(r)
    for _ in range(3):
        before = (r.smin, r.smax, r.umin, r.umax, r.s32min, r.s32max, r.u32min, r.u32max, r.var_off)
        deduce_bounds(r)
        if before == (r.smin, r.smax, r.umin, r.umax, r.s32min, r.s32max, r.u32min, r.u32max, r.var_off):
            break
    bound_offset(r)
    update_bounds(r)


def bounds_sane(r: Reg) -> bool:
    """``reg_bounds_sanity_check``: false when the ranges are empty (an impossible path)."""
    if r.umin > r.umax or r.smin > r.smax or r.u32min > r.u32max or r.s32min > r.s32max:
        return False
    v, m = r.var_off
    if r.umin < v or r.umax > (v | m):
        return False
    if r.u32min < (v & U32) or r.u32max > ((v | m) & U32):
        return False
    return True


def zext_32_to_64(r: Reg) -> None:
    """``zext_32_to_64``: a 32-bit result's upper half is zero."""
    r.var_off = tnum_subreg(r.var_off)
    r.umin, r.umax = r.u32min, r.u32max
    # __reg_assign_32_into_64
    if r.s32min >= 0 and r.s32max >= 0:
        r.smin, r.smax = r.s32min, r.s32max
    else:
        r.smin, r.smax = 0, U32


def coerce_to_size(r: Reg, size: int) -> None:
    """``coerce_reg_to_size``: keep the low `size` bytes (zero-extended)."""
    mask = (1 << (size * 8)) - 1
    r.var_off = (r.var_off[0] & mask, r.var_off[1] & mask)
    if (r.umin & ~mask & U64) == (r.umax & ~mask & U64):
        r.umin &= mask
        r.umax &= mask
    else:
        r.umin, r.umax = 0, mask
    r.smin, r.smax = r.umin, r.umax
    if size < 4:
        mark_unbounded32(r)
    reg_bounds_sync(r)


def _sext(v: int, size: int) -> int:
    bits = size * 8
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


_SMIN = {1: -128, 2: -32768, 4: S32_MIN}
_SMAX = {1: 127, 2: 32767, 4: S32_MAX}


def coerce_to_size_sx(r: Reg, size: int) -> None:
    """``coerce_reg_to_size_sx``: sign-extend the low `size` bytes to 64 bits."""
    if r.var_off[1] == 0:
        v = _sext(r.var_off[0], size)
        r.var_off = (v & U64, 0)
        r.smin = r.smax = s64(v)
        r.umin = r.umax = v & U64
        r.s32min = r.s32max = s32(v)
        r.u32min = r.u32max = v & U32
        return
    bits = size * 8
    if ((r.smax & U64) >> bits) == ((r.smin & U64) >> bits):
        a, b = _sext(r.smax, size), _sext(r.smin, size)
        hi, lo = max(a, b), min(a, b)
        if (hi >= 0) == (lo >= 0):
            r.s32min = r.smin = lo
            r.s32max = r.smax = hi
            r.u32min = lo & U32
            r.umin = lo & U64
            r.u32max = hi & U32
            r.umax = hi & U64
            r.var_off = tnum_range(lo & U64, hi & U64)
            return
    r.smin = r.s32min = _SMIN[size]
    r.smax = r.s32max = _SMAX[size]
    r.umin = r.u32min = 0
    r.umax, r.u32max = U64, U32
    r.var_off = UNKNOWN


def coerce_subreg_to_size_sx(r: Reg, size: int) -> None:
    """``coerce_subreg_to_size_sx``: sign-extend the low `size` bytes to 32 bits."""
    if r.var_off[1] == 0:
        v = _sext(r.var_off[0], size)
        r.var_off = (v & U64, 0)
        r.s32min = r.s32max = s32(v)
        r.u32min = r.u32max = v & U32
        return
    bits = size * 8
    if ((r.s32max & U32) >> bits) == ((r.s32min & U32) >> bits):
        a, b = _sext(r.s32max, size), _sext(r.s32min, size)
        hi, lo = max(a, b), min(a, b)
        if (lo >= 0) == (hi >= 0):
            r.s32min, r.s32max = lo, hi
            r.u32min, r.u32max = lo & U32, hi & U32
            r.var_off = tnum_subreg(tnum_range(lo & U64, hi & U64))
            return
    r.s32min, r.s32max = _SMIN[size], _SMAX[size]
    r.u32min, r.u32max = 0, U32
    r.var_off = (0, U32)


# --- stack ------------------------------------------------------------------------------------

STACK_INVALID, STACK_SPILL, STACK_MISC, STACK_ZERO = "?", "r", "m", "0"

#: ``enum bpf_iter_state``: an iterator that may still give an element, one that gave NULL (sticky).
ITER_ACTIVE, ITER_DRAINED = 1, 2


# An iterator's first stack slot holds its register (``spilled_ptr``) as the kernel's does, where the
# union ``iter`` overlays the other pointer fields: ``btf_name`` the iterator's kind ("num"),
# ``ref_obj_id`` its reference, ``range`` its ``iter.state`` and ``mem_size`` its ``iter.depth``
# (the iterations of its loop walked on this path).
def iter_state(info: Reg) -> int:
    """An iterator's ``iter.state`` (`ITER_ACTIVE` / `ITER_DRAINED`) from its slot's register."""
    return info.range


def iter_depth(info: Reg) -> int:
    """An iterator's ``iter.depth``: how many of its next calls gave an element on this path."""
    return info.mem_size


# A kernel-struct pointer (PTR_TO_BTF_ID) keeps the kernel's PTR_TRUSTED flag in ``range`` (unused by such
# pointers; the kernel's union overlays it too): a trusted pointer is never NULL (``is_trusted_reg``).
def btf_trusted(r: Reg) -> bool:
    """Does the kernel-struct pointer `r` carry PTR_TRUSTED?"""
    return r.range == 1


def mark_btf_trusted(r: Reg) -> None:
    """Give the kernel-struct pointer `r` the PTR_TRUSTED flag."""
    r.range = 1


def iter_reg(kind: str, ref: int, state: int, depth: int) -> Reg:
    """A new iterator's register (the slot's ``spilled_ptr``): `kind`, reference, state and depth."""
    info = Reg(RegType.SCALAR)
    info.ref_obj_id = ref
    info.btf_name = kind
    info.range = state
    info.mem_size = depth
    return info


class Slot:
    """One 8-byte stack slot (``struct bpf_stack_state``): a type per byte and, if spilled, the register."""

    __slots__ = ("types", "spilled")

    def __init__(self, types: str = STACK_INVALID * 8, spilled: Reg | None = None) -> None:
        self.types = types  # 8 characters, byte 0 = the slot's lowest address
        self.spilled = spilled

    def copy(self) -> "Slot":
        s = Slot.__new__(Slot)
        s.types = self.types
        sp = self.spilled
        s.spilled = sp.copy() if sp is not None else None
        return s

    @property
    def is_spill(self) -> bool:
        return self.types[7] == STACK_SPILL


#: The register snapshots share for every register not written yet (a callee's r6-r10, r1-r5 after a
#: call): never changed.
_NOT_INIT = Reg()

#: `record_frozen`'s log: every frozen register and slot with its fields when it was frozen (None: off).
FROZEN: "list[tuple[object, tuple]] | None" = None


def _reg_fields(r: Reg) -> tuple:
    return tuple(getattr(r, n) for n in Reg.__slots__)


def _slot_fields(s: "Slot") -> tuple:
    sp = s.spilled
    return (s.types, sp, None if sp is None else _reg_fields(sp))


def _record(f: "Frame") -> None:
    log = FROZEN
    for r in f.regs:
        log.append((r, _reg_fields(r)))
    for s in f.stack.values():
        log.append((s, _slot_fields(s)))


def record_frozen(on: bool = True) -> None:
    """Start (or stop) logging every register and slot frozen from now on, for `check_frozen` (tests: slow)."""
    global FROZEN
    FROZEN = [] if on else None


def check_frozen() -> int:
    """Raise AssertionError if a register or slot logged by `record_frozen` changed since it was frozen (copy on
    write broken: a write to one state would have leaked into another); the number of objects checked."""
    for obj, fields in FROZEN or ():
        now = _reg_fields(obj) if isinstance(obj, Reg) else _slot_fields(obj)
        if now != fields:
            raise AssertionError(f"a frozen {type(obj).__name__} changed: {fields} -> {now}")
    return len(FROZEN or ())


def _kept(r: Reg) -> Reg:
    """A copy of `r` to keep in a snapshot: the shared never-written register or frame pointer (`_fp`) when `r`
    is one."""
    t = r.type
    if t is RegType.NOT_INIT:
        if r.same(_NOT_INIT):
            return _NOT_INIT
    elif t is RegType.PTR_TO_STACK and r.frameno.__class__ is int and 0 <= r.frameno < 64:
        fp = _fp(r.frameno)
        if r.same(fp):
            return fp
    return r.copy()


class Frame:
    """One function's registers and stack (``struct bpf_func_state``)."""

    __slots__ = ("regs", "stack", "callsite", "frameno", "subprog", "callback_depth")

    def __init__(self, frameno: int = 0, callsite: int = -1, subprog: int = 0) -> None:
        self.regs = [Reg() for _ in range(11)]
        self.stack: dict[int, Slot] = {}  # slot number k: bytes [fp - 8(k+1), fp - 8k)
        self.callsite = callsite
        self.frameno = frameno
        self.subprog = subprog
        self.callback_depth = 0  # callbacks pushed from this frame at its current call (bpf_loop's bound)

    def copy(self) -> "Frame":
        f = Frame.__new__(Frame)
        f.regs = [r.copy() for r in self.regs]
        f.stack = {k: s.copy() for k, s in self.stack.items()}
        f.callsite, f.frameno, f.subprog = self.callsite, self.frameno, self.subprog
        f.callback_depth = self.callback_depth
        return f

    def shallow(self) -> "Frame":
        """A new frozen frame holding the same (frozen) registers, in a new tuple, and slots, in a new dict (one
        to take slots out of before it is shared: `_clean`'s)."""
        f = Frame.__new__(Frame)
        f.regs = tuple(self.regs)
        f.stack = dict(self.stack) if self.stack else _NO_STACK
        f.callsite, f.frameno, f.subprog = self.callsite, self.frameno, self.subprog
        f.callback_depth = self.callback_depth
        return f

    def pack(self, prev: "Frame | None", buf: bytearray, objs: list, via: "State | None" = None) -> None:
        """This frame frozen for a pending branch (`ParkedStack.push`; it is not used after), its bytes appended
        to `buf` and its objects to `objs`.  When `prev`, a frozen frame, is the same function's frame at the
        same call depth and is shared (no state may change it): `prev` and, if a slot differs, the slots (the
        equal ones `prev`'s) as objects, and in the bytes the registers that differ from `prev`, a plain scalar
        in 6 to 74 bytes (`_pack_reg`), any other register an object.  Otherwise the frame `snapshot` (move)
        makes.  `via`: a checkpoint whose frame of this frame's number is `prev` now, and whose marks may only
        make some of its registers precise while this branch waits (`ParkedStack.push`'s parent checkpoint):
        `via` is the object instead of `prev`, and the bytes say which of `prev`'s registers are precise, so
        `prev` is not kept alive beside the copy marks make of it (only when the slots are an object or none of
        `prev`'s is spilled: marks copy spilled registers too).  The bytes: flags (0: the frame `snapshot` made,
        else 1, | 2 when the slots are an object, | 4 when the base is `via`'s frame), the number of registers,
        with 4 the mask of `prev`'s precise registers (2 bytes), the registers.  `ParkedStack.pop` makes the live
        frame again."""
        if prev is None or not _same_head(self, prev):
            objs.append(self.snapshot(prev, True))
            buf += _WHOLE_FRAME
            return
        fref_at = len(objs)
        objs.append(prev)
        cstack = self.stack
        pstack = prev.stack
        stack = None
        if cstack or pstack:
            stack = {}
            same = len(cstack) == len(pstack)
            for k, sl in cstack.items():
                ps = pstack.get(k)
                if ps is not None and _same_slot(sl, ps):
                    stack[k] = ps
                else:
                    stack[k] = sl
                    same = False
            if same:
                stack = None
            else:
                objs.append(stack)
                if FROZEN is not None:
                    for sl in stack.values():
                        FROZEN.append((sl, _slot_fields(sl)))
        flags = 1 if stack is None else 3
        at = len(buf)
        buf += _WHOLE_FRAME  # the flags and the count, set below
        pregs = prev.regs
        if via is not None and (stack is not None or not pstack or _no_spill(pstack)):
            objs[fref_at] = via
            flags |= 4
            pm = 0
            if any(map(_PRECISE, pregs)):
                for k, p in enumerate(pregs):
                    if p.precise:
                        pm |= 1 << k
            buf.append(pm & 0xFF)
            buf.append(pm >> 8)
        n = 0
        for k, r in enumerate(self.regs):
            p = pregs[k]
            if r is not p and not r.same(p):
                n += 1
                if not _pack_reg(k, r, buf):
                    buf.append(k)
                    buf.append(_KIND_OBJECT)
                    if r.type is _NOT_INIT_T and r.same(_NOT_INIT):
                        r = _NOT_INIT
                    elif FROZEN is not None:
                        FROZEN.append((r, _reg_fields(r)))
                    objs.append(r)
        buf[at] = flags
        buf[at + 1] = n

    def snapshot(self, prev: "Frame | None", move: bool = False, hint: "Frame | None" = None) -> "Frame":
        """A frozen copy, sharing with `prev` (a frozen frame) what is equal to it (`prev` itself when all is).

        A frozen frame's registers are a tuple and an empty stack is one shared read-only mapping.
        `move`: this frame is not used after (a pending branch frozen): its registers and slots
        become the copy's instead of being copied.  `hint`, a frozen frame (the caller's, for a callee that
        has no `prev`): without `prev`, a register equal to the hint's register of the same number is shared
        with it (a callee's R1-R5 are the caller's)."""
        if prev is None or prev.callsite != self.callsite or prev.frameno != self.frameno or prev.subprog != self.subprog:
            f = Frame.__new__(Frame)
            if move:
                f.regs = tuple([_NOT_INIT if r.type is _NOT_INIT_T and r.same(_NOT_INIT) else r for r in self.regs])
                f.stack = dict(self.stack) if self.stack else _NO_STACK
            else:
                if hint is None:
                    f.regs = tuple([_kept(r) for r in self.regs])
                else:
                    f.regs = tuple([h if r.same(h) else _kept(r) for r, h in zip(self.regs, hint.regs)])
                f.stack = {k: s.copy() for k, s in self.stack.items()} if self.stack else _NO_STACK
            f.callsite, f.frameno, f.subprog = self.callsite, self.frameno, self.subprog
            f.callback_depth = self.callback_depth
            if FROZEN is not None:
                _record(f)
            return f
        same = prev.callback_depth == self.callback_depth
        pregs = prev.regs
        regs = tuple([p if r.same(p) else r if move and r.type is not _NOT_INIT_T else _kept(r)
                      for r, p in zip(self.regs, pregs)])
        if same:
            for a, b in zip(regs, pregs):
                if a is not b:
                    same = False
                    break
        cstack = self.stack
        pstack = prev.stack
        if not cstack:
            stack = _NO_STACK
            if pstack:
                same = False
        else:
            stack = {}
            for k, sl in cstack.items():
                ps = pstack.get(k)
                if ps is not None and _same_slot(sl, ps):
                    stack[k] = ps
                else:
                    stack[k] = sl if move else sl.copy()
                    same = False
            if len(stack) != len(pstack):
                same = False
        if same:
            return prev
        f = Frame.__new__(Frame)
        f.regs, f.stack = regs, stack
        f.callsite, f.frameno, f.subprog = self.callsite, self.frameno, self.subprog
        f.callback_depth = self.callback_depth
        if FROZEN is not None:
            _record(f)
        return f


_SCALAR_T = RegType.SCALAR
_B64, _B32 = 1 << 63, 1 << 31


#: A parked register's bytes (`_pack_reg`): its number, its kind, then for a known value the value (4 bytes when
#: `_KIND_VALUE32`, else 8), for a scalar's ranges var_off, the 64-bit and the 32-bit bounds (64 bytes), then the
#: id when `_KIND_ID` and subreg_def when `_KIND_SUBREG` (4 bytes each; 0 when left out).  The kind's bits:
#: `_KIND_KNOWN` (else the ranges), bit 1 precise, `_KIND_OBJECT` (no more bytes: the register is an object).
_KIND_KNOWN, _KIND_OBJECT, _KIND_VALUE32, _KIND_ID, _KIND_SUBREG = 1, 4, 8, 16, 32
#: The Struct of a parked register, by its kind without the precise bit (None: an object or no such kind).
_REG_FORMS: "list[Struct | None]" = [
    None if k & (_KIND_OBJECT | 2) or (k & _KIND_VALUE32 and not k & _KIND_KNOWN) else Struct(
        "<BB" + (("I" if k & _KIND_VALUE32 else "Q") if k & _KIND_KNOWN else "QQqqQQiiII")
        + ("I" if k & _KIND_ID else "") + ("I" if k & _KIND_SUBREG else ""))
    for k in range(64)]
_WHOLE_FRAME = bytes(2)  # a parked frame that is a frozen frame of its own (no registers in the bytes)


_PLAIN_KNOWN, _PLAIN_RANGE = 1, 2


def _plain_scalar(r: Reg) -> int:
    """How `pack_reg` and a parked frame's bytes (`_pack_reg`) can hold `r`: `_PLAIN_KNOWN` (a plain scalar
    whose bounds are those `mark_known` sets), `_PLAIN_RANGE` (a plain scalar: no pointer fields, no fixed
    offset, an id and a 32-bit definition below 2**32, ints in range), 0 (an object: anything else)."""
    if (r.type is not _SCALAR_T or r.off != 0 or r.ref_obj_id != 0 or r.range != 0 or r.map is not None
            or r.mem_size != 0 or r.btf_name != "" or r.frameno != 0):
        return 0
    i, sd, p = r.id, r.subreg_def, r.precise
    if i.__class__ is not int or sd.__class__ is not int or p.__class__ is not bool or not 0 <= i <= U32 \
            or not 0 <= sd <= U32:
        return 0
    v, m = r.var_off
    if v.__class__ is not int or m.__class__ is not int or not 0 <= v <= U64 or not 0 <= m <= U64:
        return 0
    smin, smax, umin, umax = r.smin, r.smax, r.umin, r.umax
    s32min, s32max, u32min, u32max = r.s32min, r.s32max, r.u32min, r.u32max
    if m == 0 and umin == v and umax == v and smin == smax == s64(v) and s32min == s32max == s32(v) \
            and u32min == u32max == (v & U32):
        return _PLAIN_KNOWN
    if not (S64_MIN <= smin <= S64_MAX and S64_MIN <= smax <= S64_MAX and 0 <= umin <= U64 and 0 <= umax <= U64
            and S32_MIN <= s32min <= S32_MAX and S32_MIN <= s32max <= S32_MAX and 0 <= u32min <= U32
            and 0 <= u32max <= U32):
        return 0
    for x in (smin, smax, umin, umax, s32min, s32max, u32min, u32max):
        if x.__class__ is not int:
            return 0
    return _PLAIN_RANGE


def _pack_reg(regno: int, r: Reg, buf: bytearray) -> bool:
    """Append `r`, register `regno`, to `buf` in a parked frame's bytes when it is a plain scalar (`_plain_scalar`):
    6 to 18 bytes a known value, 66 to 74 a scalar's ranges.  False (nothing appended) for any other register."""
    kind = _plain_scalar(r)
    if not kind:
        return False
    v, m = r.var_off
    i, sd = r.id, r.subreg_def
    k = r.precise << 1 | (_KIND_ID if i else 0) | (_KIND_SUBREG if sd else 0)
    if kind == _PLAIN_KNOWN:
        k |= _KIND_KNOWN if v >> 32 else _KIND_KNOWN | _KIND_VALUE32
        head = (regno, k, v)
    else:
        head = (regno, k, v, m, r.smin, r.smax, r.umin, r.umax, r.s32min, r.s32max, r.u32min, r.u32max)
    form = _REG_FORMS[k & ~2]
    if i:
        buf += form.pack(*head, i, sd) if sd else form.pack(*head, i)
    else:
        buf += form.pack(*head, sd) if sd else form.pack(*head)
    return True


def _new_plain_scalar() -> Reg:
    """A new scalar whose pointer-only fields are unset (what `_plain_scalar` accepts), its ranges and id left for
    the unpacker (`_unpack_reg`, `unpack_reg`, `_get_scalar`) to set."""
    r = Reg.__new__(Reg)
    r.type = _SCALAR_T
    r.off = r.ref_obj_id = r.range = r.mem_size = r.frameno = 0
    r.map = None
    r.btf_name = ""
    return r


def _unpack_reg(buf: bytearray, at: int) -> "tuple[Reg, int]":
    """The register `_pack_reg` packed at offset `at` of `buf` (a new one) and the offset after it."""
    r = _new_plain_scalar()
    kind = buf[at + 1]
    r.precise = bool(kind & 2)
    form = _REG_FORMS[kind & ~2]
    t = form.unpack_from(buf, at)
    if kind & _KIND_KNOWN:
        mark_known(r, t[2])
        j = 3
    else:
        v, m, r.smin, r.smax, r.umin, r.umax, r.s32min, r.s32max, r.u32min, r.u32max = t[2:12]
        r.var_off = UNKNOWN if v == 0 and m == U64 else (v, m)
        j = 12
    if kind & _KIND_ID:
        r.id = t[j]
        j += 1
    else:
        r.id = 0
    r.subreg_def = t[j] if kind & _KIND_SUBREG else 0
    return r, at + form.size


def pack_reg(r: Reg) -> "Reg | int":
    """`r` as one int when it is a plain scalar (no pointer fields, no fixed offset, an id and a 32-bit
    definition below 2**32), else `r` itself; `unpack_reg` gives back a register with every field equal.
    Bit 0 says which form: 1, a known value (its bounds those `mark_known` sets): precise, subreg_def, id,
    the value; 0: precise, subreg_def, id, the 32-bit bounds, the 64-bit bounds and var_off (signed bounds
    offset to be unsigned).  About 44 or 104 bytes where a register with its var_off takes 248 and more."""
    kind = _plain_scalar(r)
    if not kind:
        return r
    i, sd, p = r.id, r.subreg_def, r.precise
    v, m = r.var_off
    if kind == _PLAIN_KNOWN:
        return (((((v << 32) | i) << 32) | sd) << 2) | (p << 1) | 1
    smin, smax, umin, umax = r.smin, r.smax, r.umin, r.umax
    s32min, s32max, u32min, u32max = r.s32min, r.s32max, r.u32min, r.u32max
    x = (((((((v << 64) | m) << 64 | (smin + _B64)) << 64 | (smax + _B64)) << 64 | umin) << 64 | umax) << 32
         | (s32min + _B32)) << 32 | (s32max + _B32)
    return (((((((x << 32) | u32min) << 32 | u32max) << 32 | i) << 32) | sd) << 2) | (p << 1)


def unpack_reg(x: int) -> Reg:
    """The register `pack_reg` made `x` from: a new one, every field equal to the packed register's."""
    r = _new_plain_scalar()
    r.precise = bool(x & 2)
    known = x & 1
    x >>= 2
    r.subreg_def = x & U32
    x >>= 32
    r.id = x & U32
    x >>= 32
    if known:
        mark_known(r, x)
        return r
    r.u32max = x & U32
    x >>= 32
    r.u32min = x & U32
    x >>= 32
    r.s32max = (x & U32) - _B32
    x >>= 32
    r.s32min = (x & U32) - _B32
    x >>= 32
    r.umax = x & U64
    x >>= 64
    r.umin = x & U64
    x >>= 64
    r.smax = (x & U64) - _B64
    x >>= 64
    r.smin = (x & U64) - _B64
    x >>= 64
    m = x & U64
    v = x >> 64
    r.var_off = UNKNOWN if v == 0 and m == U64 else (v, m)
    return r


#: A frozen frame's empty stack: one read-only mapping for all (a write to it raises).
_NO_STACK = MappingProxyType({})
_NOT_INIT_T = RegType.NOT_INIT


#: `Snapshot.pmask`'s layout: each frame's registers in 16 bits (R0-R10 in the low 11).
_MARK_SHIFT, _MARK_FRAME = 4, 0xFFFF


class Snapshot:
    """A state kept and never changed (`State.snapshot`, ``InsnAux.states``): the call chain's frames (a tuple),
    the acquired references and ``may_goto_depth``, three slots where a `State` has ten.  The walk's bookkeeping
    reads as none (no parent checkpoint, history, branches, jump history or counters) and cannot be set."""

    __slots__ = ("frames", "refs", "may_goto_depth")

    parent: "Checkpoint | None" = None
    hist: tuple = ()
    branches = first_idx = jhist = hit = miss = 0
    #: The registers marked precise since the state was made, not in their objects (a `Checkpoint`'s marks):
    #: bit ``regno`` of frame ``frame`` is bit ``frame << _MARK_SHIFT | regno``.  Read `marks` or
    #: `reg_precise`, not only a register's own ``precise``, in a checkpoint.
    pmask = 0

    def marks(self, frame: int) -> int:
        """The registers of frame `frame` marked precise since the state was made (`pmask`): bit ``regno``."""
        return self.pmask >> (frame << _MARK_SHIFT) & _MARK_FRAME

    def reg_precise(self, frame: int, regno: int) -> bool:
        """Register `regno` of frame `frame` is precise: its own mark or one made since (`marks`)."""
        return self.frames[frame].regs[regno].precise or bool(self.marks(frame) >> regno & 1)

    @property
    def cur(self) -> Frame:
        return self.frames[-1]

    @property
    def regs(self) -> list[Reg]:
        return self.frames[-1].regs

    def copy(self) -> "State":
        """A live state with owned copies of everything (the walk's bookkeeping as this state has it)."""
        s = State([f.copy() for f in self.frames])
        s.refs = list(self.refs)
        s.parent = self.parent
        s.hist = array("q", self.hist)
        s.first_idx = self.first_idx
        s.jhist = self.jhist
        s.may_goto_depth = self.may_goto_depth
        return s

    def snapshot(self, prev: "Snapshot | State | None" = None) -> "Snapshot":
        """A copy to keep and never change (``InsnAux.states``): the abstract state alone -- its frames (a
        tuple), references and ``may_goto_depth`` -- without the walk's bookkeeping (a `Snapshot`).  Registers,
        stack slots and frames equal to those of `prev`, an older snapshot, are shared with it, and `prev`
        itself is returned when all is equal (the state after an instruction is the one before the next, even
        across a checkpoint); a frame past `prev`'s (a callee) shares what equals `prev`'s last frame."""
        pf = prev.frames if prev is not None else ()
        n = len(pf)
        frames = tuple([f.snapshot(pf[k]) if k < n else f.snapshot(None, hint=pf[k - 1] if k == n and k else None)
                        for k, f in enumerate(self.frames)])
        if pf.__class__ is tuple and len(pf) == len(frames) and all(a is b for a, b in zip(frames, pf)):
            if prev.refs == self.refs and prev.may_goto_depth == self.may_goto_depth:
                return prev
            frames = pf
        s = Snapshot.__new__(Snapshot)
        s.frames = frames
        s.refs = prev.refs if prev is not None and prev.refs == self.refs else list(self.refs)
        s.may_goto_depth = self.may_goto_depth
        return s


#: The most registers (never-written ones and copies of one before aside) a `KeptState` holds: a kept state
#: that differs from its key frame in more is a new key frame.
KEPT_REGS = 3
#: The most codes `State.keep` shares (`_CODES`): a program's kept states repeat few of them (86 distinct in
#: 18,014 on the unknown-branches generator at 16k), each else an int object of its own (32 bytes or more).
KEPT_CODES = 1024
_CODES: "dict[int, int]" = {}


def _same_slot(sl: Slot, ps: Slot) -> bool:
    """The slots `sl` and `ps` equal: the same byte types and spilled registers (what frozen frames share a slot on)."""
    a, b = sl.spilled, ps.spilled
    return ps.types == sl.types and (a is b is None or (a is not None and b is not None and a.same(b)))


def _same_stack(cs: "dict[int, Slot]", ps: "dict[int, Slot]") -> bool:
    """Every slot of the stacks `cs` and `ps` equal (`_same_slot`)."""
    if len(cs) != len(ps):
        return False
    for k, sl in cs.items():
        q = ps.get(k)
        if q is None or not _same_slot(sl, q):
            return False
    return True


_PRECISE = attrgetter("precise")


def _no_spill(stack: "dict[int, Slot]") -> bool:
    """No slot of `stack` holds a spilled register."""
    for sl in stack.values():
        if sl.spilled is not None:
            return False
    return True


def _same_head(f: Frame, p: Frame) -> bool:
    return (p.callsite == f.callsite and p.frameno == f.frameno and p.subprog == f.subprog
            and p.callback_depth == f.callback_depth)


def _same_frame(f: Frame, p: Frame) -> bool:
    """The live frame `f` equal to the frozen frame `p` in every field, register and slot."""
    if not _same_head(f, p):
        return False
    for r, q in zip(f.regs, p.regs):
        if not r.same(q):
            return False
    return _same_stack(f.stack, p.stack)


class KeptState(PackedState):
    """A kept state (``InsnAux.states``) packed against a key frame, a frozen `Snapshot`: `key`, `code` and the
    register objects `objs` (most have none: two slots, 48 bytes, where the tuple ``(key, code)`` took 64).

    The state's frames are the key's first frames and, in one of three shapes, frame ``p`` the key's frame ``p``
    with some registers replaced: as many frames as the key (``p`` the last), one fewer (a return: the key's
    last frame dropped) or one more (a call: ``p`` the key's last frame, and after it a callee frame made from
    it, `_callee_regs`, with some registers replaced).  Every other field -- the other frames, the stacks,
    references, ``may_goto_depth`` -- is the key's.  ``code`` is one int (`_put_regs`): the shape, the callee's
    call site and subprogram, and per frame described the registers that differ from its base (at most
    `KEPT_REGS` of them other than never-written ones), each a never-written register, the same as one before
    it, a plain scalar as the fields that differ from the base register's (`_put_scalar`), or the next of the
    `objs` after ``code`` (a frozen copy).  `State.keep` makes them; `unpack` gives the `Snapshot`
    that `State.snapshot` would have kept, equal in every field (its registers new objects where packed)."""

    __slots__ = ("key", "_rest")  # _rest: the code alone, or (code, *objs) when there are objects

    def __init__(self, key: Snapshot, code: int, objs: "tuple[Reg, ...] | list[Reg]" = ()) -> None:
        self.key = key
        self._rest = (code, *objs) if objs else code

    @property
    def code(self) -> int:
        """The int that describes the registers that differ from the key's (`_put_regs`)."""
        r = self._rest
        return r[0] if r.__class__ is tuple else r

    @property
    def objs(self) -> "tuple[Reg, ...]":
        """The register objects the code refers to, in order (frozen copies)."""
        r = self._rest
        return r[1:] if r.__class__ is tuple else ()

    def unpack(self) -> Snapshot:
        """The kept state as a `Snapshot`: the key's frames, frame ``p``'s (and a callee's) registers replaced."""
        key = self.key
        x = self.code
        kf = key.frames
        shape = x & 3
        x >>= 2
        p = len(kf) - 2 if shape == _RETURN else len(kf) - 1
        base = kf[p]
        objs = iter(self.objs)
        regs, x = _get_regs(x, base.regs, objs)
        frames = [*kf[:p], _frozen_frame(regs, base.stack, base.callsite, base.frameno, base.subprog, base.callback_depth)]
        if shape == _CALL:
            callsite, x = _get_field(x, 0)
            subprog, x = _get_field(x, 0)
            cregs, x = _get_regs(x, _callee_regs(base.regs, p + 1), objs)
            frames.append(_frozen_frame(cregs, _NO_STACK, callsite, p + 1, subprog, 0))
        s = Snapshot.__new__(Snapshot)
        s.frames = tuple(frames)
        s.refs = key.refs
        s.may_goto_depth = key.may_goto_depth
        return s


#: A `KeptState`'s shapes: as many frames as its key, one fewer (a return), one more (a call).
_SAME, _RETURN, _CALL = 0, 1, 2
#: A `KeptState` register's kinds: never written (`_NOT_INIT`), the next object, a plain scalar, the same as
#: a register before it in the same frame.
_K_NOT_INIT, _K_OBJECT, _K_SCALAR, _K_AS = 0, 1, 2, 3
#: A plain scalar's fields in a `KeptState` (`_put_scalar`), and the base of a register that is not one.
_UNKNOWN_FIELDS = (0, U64, S64_MIN, S64_MAX, 0, U64, S32_MIN, S32_MAX, 0, U32, 0, 0)
#: The frame pointer of each frame number, frozen (shared by the snapshots and kept states whose R10 it equals).
_FP: "dict[int, Reg]" = {}


def _fp(frameno: int) -> Reg:
    r = _FP.get(frameno)
    if r is None:
        r = _FP[frameno] = Reg.pointer(RegType.PTR_TO_STACK, frameno=frameno)
    return r


def _callee_regs(caller: "tuple[Reg, ...] | list[Reg]", frameno: int) -> list[Reg]:
    """The registers a call gives a callee frame numbered `frameno` from the caller's `caller` before it
    (``setup_func_entry``): R1-R5 the caller's, R10 its frame pointer, the others never written."""
    return [_NOT_INIT, *caller[1:6], _NOT_INIT, _NOT_INIT, _NOT_INIT, _NOT_INIT, _fp(frameno)]


def _frozen_frame(regs: list, stack: "dict[int, Slot]", callsite: int, frameno: int, subprog: int,
                  callback_depth: int) -> Frame:
    """A frozen frame of `regs` (made a tuple), `stack` and the head given."""
    f = Frame.__new__(Frame)
    f.regs = tuple(regs)
    f.stack = stack
    f.callsite, f.frameno, f.subprog, f.callback_depth = callsite, frameno, subprog, callback_depth
    return f


def _fields(r: Reg) -> tuple:
    """The fields `_put_scalar` writes of a scalar `r`, the base of a register packed against it;
    `_UNKNOWN_FIELDS` for any other register."""
    if r.type is not _SCALAR_T:
        return _UNKNOWN_FIELDS
    v, m = r.var_off
    return (v, m, r.smin, r.smax, r.umin, r.umax, r.s32min, r.s32max, r.u32min, r.u32max, r.id, r.subreg_def)


def _put_field(x: int, pos: int, d: int) -> "tuple[int, int]":
    """`x` with the difference `d` written at bit `pos`: bit 0 when zero, else 1, its zigzag's width (7 bits)
    and the zigzag; and the next position."""
    if not d:
        return x, pos + 1
    z = d << 1 if d > 0 else (-d << 1) - 1
    w = z.bit_length()
    return x | (1 | w << 1 | z << 8) << pos, pos + 8 + w


def _get_field(x: int, base: int) -> "tuple[int, int]":
    """The value `_put_field` wrote at bit 0 of `x` (plus `base`) and `x` past it."""
    if not x & 1:
        return base, x >> 1
    w = (x >> 1) & 127
    z = (x >> 8) & ((1 << w) - 1)
    return base + (-((z + 1) >> 1) if z & 1 else z >> 1), x >> (8 + w)


def _put_scalar(x: int, pos: int, r: Reg, kind: int, b: tuple) -> "tuple[int, int]":
    """The plain scalar `r` (`_plain_scalar` said `kind`) written at bit `pos` of `x` against the fields `b`
    (`_fields` of the base register): known or not, precise, then each field's difference (a known value's
    value, id and subreg_def; any other's twelve)."""
    v, m = r.var_off
    if kind == _PLAIN_KNOWN:
        x |= (1 | r.precise << 1) << pos
        x, pos = _put_field(x, pos + 2, v - b[0])
        x, pos = _put_field(x, pos, r.id - b[10])
        return _put_field(x, pos, r.subreg_def - b[11])
    x |= r.precise << (pos + 1)
    pos += 2
    for d in (v - b[0], m - b[1], r.smin - b[2], r.smax - b[3], r.umin - b[4], r.umax - b[5], r.s32min - b[6],
              r.s32max - b[7], r.u32min - b[8], r.u32max - b[9], r.id - b[10], r.subreg_def - b[11]):
        if d:  # `_put_field`, inline
            z = d << 1 if d > 0 else (-d << 1) - 1
            w = z.bit_length()
            x |= (1 | w << 1 | z << 8) << pos
            pos += 8 + w
        else:
            pos += 1
    return x, pos


def _get_scalar(x: int, b: tuple) -> "tuple[Reg, int]":
    """The register `_put_scalar` wrote at bit 0 of `x` against `b` (a new one) and `x` past it."""
    r = _new_plain_scalar()
    r.precise = bool(x & 2)
    if x & 1:
        v, x = _get_field(x >> 2, b[0])
        r.id, x = _get_field(x, b[10])
        r.subreg_def, x = _get_field(x, b[11])
        mark_known(r, v)
        return r, x
    x >>= 2
    f = []
    for bf in b:
        y, x = _get_field(x, bf)
        f.append(y)
    v, m, r.smin, r.smax, r.umin, r.umax, r.s32min, r.s32max, r.u32min, r.u32max, r.id, r.subreg_def = f
    r.var_off = UNKNOWN if v == 0 and m == U64 else (v, m)
    return r, x


def _put_regs(x: int, pos: int, regs: list, base: "tuple[Reg, ...] | list[Reg]", objs: list,
              old: "tuple | None", heavy: int = 0) -> "tuple[int, int, int] | None":
    """The registers of `regs` that differ from `base` written at bit `pos` of `x` (their count in 4 bits,
    then each: its number in 4 bits, its kind in 2 and what the kind says), the objects appended to `objs`
    (a frozen copy, `old`'s own where it is the same); the new `x`, position and the number of registers
    other than never-written ones or the same as one before (counted on from `heavy`), or None past
    `KEPT_REGS` of them."""
    at = pos
    pos += 4
    count = 0
    done: list = []
    for n, r in enumerate(regs):
        b = base[n]
        if r is b or r.same(b):
            continue
        count += 1
        t = r.type
        if t is _NOT_INIT_T and r.same(_NOT_INIT):
            x |= n << pos  # _K_NOT_INIT
            pos += 6
            continue
        for q, s in done:
            if s.same(r):
                x |= (n | _K_AS << 4 | q << 6) << pos
                pos += 10
                break
        else:
            heavy += 1
            if heavy > KEPT_REGS:
                return None
            kind = _plain_scalar(r) if t is _SCALAR_T else 0
            if kind:
                x |= (n | _K_SCALAR << 4) << pos
                x, pos = _put_scalar(x, pos + 6, r, kind, _fields(b))
            else:
                x |= (n | _K_OBJECT << 4) << pos
                pos += 6
                k = len(objs)
                o = old[k] if old is not None and k < len(old) else None
                if o is None or o.__class__ is not Reg or not o.same(r):
                    o = r.copy()
                    if FROZEN is not None:
                        FROZEN.append((o, _reg_fields(o)))
                objs.append(o)
            done.append((n, r))
    return x | count << at, pos, heavy


def _get_regs(x: int, base: "tuple[Reg, ...] | list[Reg]", objs) -> "tuple[list[Reg], int]":
    """The registers `_put_regs` wrote at bit 0 of `x` over `base` (objects taken from the iterator `objs`)
    and `x` past them."""
    regs = list(base)
    count = x & 15
    x >>= 4
    for _ in range(count):
        n = x & 15
        kind = (x >> 4) & 3
        x >>= 6
        if kind == _K_NOT_INIT:
            regs[n] = _NOT_INIT
        elif kind == _K_OBJECT:
            regs[n] = next(objs)
        elif kind == _K_SCALAR:
            regs[n], x = _get_scalar(x, _fields(base[n]))
        else:
            regs[n] = regs[x & 15].copy()
            x >>= 4
    return regs, x


class State(Snapshot):
    """A verifier state (``struct bpf_verifier_state``): the call chain's frames.

    ``parent`` is the checkpoint (a `Checkpoint`) this path continues from, ``hist`` the
    instructions executed since (index, frame, extra: the stack slot a spill or
    fill touched, the registers a branch linked; each entry one int, see the verifier's
    ``_hist_entry``), ``branches`` the paths still
    being explored below a checkpoint (only finished checkpoints prune).
    """

    __slots__ = ("parent", "hist", "branches", "first_idx", "jhist", "hit", "miss")  # and `Snapshot`'s three

    def __init__(self, frames: list[Frame]) -> None:
        self.frames = frames
        self.refs: list[int] = []  # acquired reference ids (sockets, ringbuf records)
        self.parent: Checkpoint | None = None
        self.hist = array("q")  # one int an entry (the verifier's `_hist_entry`): no object per entry
        self.branches = 0
        self.first_idx = 0
        self.jhist = 0  # entries the kernel's jump history would hold since the last checkpoint
        self.hit = 0
        self.miss = 0
        self.may_goto_depth = 0  # may_goto loop bodies entered on this path

    def keep(self, key: "Snapshot | None", rec: "Snapshot | KeptState | None") -> "tuple[Snapshot, Snapshot | KeptState]":
        """This state kept (``InsnAux.states``): ``(key, kept)``.  `key` is the current key frame (a frozen
        `Snapshot`, the newest one made from a live state) and `rec` the last state kept.  When the state differs
        from `key` in at most `KEPT_REGS` registers (never-written ones aside) of its last frame and nothing else,
        or is `key` one call deeper or one return up with the same few changes, it is kept packed against it (a
        `KeptState`; `rec` itself when equal to it, `key` when equal to the key); otherwise it is a new key
        frame (`snapshot`, sharing with `key`), returned twice.  Unpacked, what it keeps is what `snapshot` keeps."""
        kept = None if key is None else self._packed(key, rec)
        if kept is None:
            k = self.snapshot(key)
            return k, k
        return kept

    def _packed(self, key: Snapshot, rec: "Snapshot | KeptState | None") -> "tuple[Snapshot, Snapshot | KeptState] | None":
        """`keep`'s ``(key, kept)`` when this state packs against `key` (`KeptState`), else None (a new key frame
        is due)."""
        frames = self.frames
        kf = key.frames
        n, m = len(frames), len(kf)
        if n == m:
            shape, p = _SAME, n - 1
        elif n == m - 1:
            shape, p = _RETURN, n - 1
        elif n == m + 1:
            shape, p = _CALL, m - 1
        else:
            return None
        if p < 0 or key.may_goto_depth != self.may_goto_depth or key.refs != self.refs:
            return None
        for i in range(p):
            if not _same_frame(frames[i], kf[i]):
                return None
        lf, kl = frames[p], kf[p]
        if not _same_head(lf, kl) or not _same_stack(lf.stack, kl.stack):
            return None
        old = rec.objs if rec.__class__ is KeptState and rec.key is key else None
        objs: list = []
        out = _put_regs(shape, 2, lf.regs, kl.regs, objs, old)
        if out is None:
            return None
        x, pos, heavy = out
        if shape == _CALL:
            cf = frames[m]
            if cf.stack or cf.callback_depth or cf.frameno != m:
                return None
            x, pos = _put_field(x, pos, cf.callsite)
            x, pos = _put_field(x, pos, cf.subprog)
            out = _put_regs(x, pos, cf.regs, _callee_regs(kl.regs, m), objs, old, heavy)
            if out is None:
                return None
            x = out[0]
        elif not x:
            return key, key
        if old is not None and rec.code == x and len(old) == len(objs):
            for a, b in zip(objs, old):
                if a is not b:
                    break
            else:
                return key, rec
        c = _CODES.get(x)
        if c is None:
            if len(_CODES) >= KEPT_CODES:
                _CODES.clear()
            c = _CODES[x] = x
        return key, KeptState(key, c, objs)

    def set_precise(self, items: "list[tuple[str, int, int]]", memo: "dict | None" = None) -> dict:
        """Mark the scalars `items` (("r", frame, regno) or ("s", frame, slot)) precise in this frozen state,
        replacing what changes (copy on write: the old objects may be shared with other states): each frame
        marked a new frozen frame (registers a tuple, ``own`` None), each register and slot marked a new copy,
        the frames a new tuple.  What it replaced, by id, with its copy: the memo it returns.  Given the memo
        of the child checkpoint marked just before (`_mark_precise` walks a path up), it shares its copies: a
        register or slot the child had replaced by a copy is replaced by the same copy, a frame given the same
        marks by the same new frame (a checkpoint shares its equal registers and frames with its parent's).
        Only a step's memo lives: what a long walk replaced is not kept alive."""
        out: dict = {}
        if memo is None:
            memo = out
        frames = list(self.frames)
        marks: dict[int, list] = {}
        for kind, fi, n in items:
            marks.setdefault(fi, []).append((kind, n))
        for fi, fm in marks.items():
            fr = frames[fi]
            fm.sort()
            key = (id(fr), *fm)
            hit = memo.get(key)
            if hit is not None:
                frames[fi] = hit[1]
                out[key] = hit
                continue
            regs = list(fr.regs)
            stack = fr.stack
            for kind, n in fm:
                if kind == "r":
                    regs[n] = _precise_copy(regs[n], memo, out)
                    continue
                if stack is fr.stack:
                    stack = dict(stack)
                old = stack[n]
                got = memo.get(id(old))
                if got is None:
                    got = (old, Slot(old.types, _precise_copy(old.spilled, memo, out)))
                    if FROZEN is not None:
                        FROZEN.append((got[1], _slot_fields(got[1])))
                out[id(old)] = got
                stack[n] = got[1]
            f = Frame.__new__(Frame)
            f.regs = tuple(regs)
            f.stack = stack
            f.callsite, f.frameno, f.subprog = fr.callsite, fr.frameno, fr.subprog
            f.callback_depth = fr.callback_depth
            out[key] = (fr, f)
            frames[fi] = f
        self.frames = tuple(frames)
        return out


class Checkpoint(Snapshot):
    """A checkpoint (an explored state, ``struct bpf_verifier_state`` in ``explored_states``): a frozen state
    with what the walk asks of it after -- the checkpoint it continues from (``parent``), the history from
    there (``hist``), the paths still being explored below it (``branches``), its prune counters (``hit``,
    ``miss``) and its marks (``pmask``) -- nine slots where a live `State` has ten (a checkpoint's
    ``first_idx`` and ``jhist`` are never read after it is made: they read as 0).  Precision marks on its
    registers are bits of ``pmask`` (`set_precise`; read them with `reg_precise`), on its stack slots they
    replace its frames (as `State.set_precise`), and so does forgetting its dead slots."""

    __slots__ = ("parent", "hist", "branches", "hit", "miss", "pmask")  # and `Snapshot`'s three

    def set_precise(self, items: "list[tuple[str, int, int]]", memo: "dict | None" = None) -> dict:
        """Mark the scalars `items` precise, as `State.set_precise`, but a register by a bit of `pmask`: its
        frame and register objects stay as they are (shared with the kept states, snapshots and pending
        branches made from them, which keep the marks they had); a stack slot as `State.set_precise`, a new
        copy.  The memo `State.set_precise` returns for the slots, else `memo` (or a new one) as it is."""
        pm = self.pmask
        for kind, fi, n in items:
            if kind == "r":
                pm |= 1 << (fi << _MARK_SHIFT | n)
        self.pmask = pm
        slots = [item for item in items if item[0] != "r"]
        if slots:
            return State.set_precise(self, slots, memo)
        return {} if memo is None else memo

    def copy(self) -> "State":
        """A live state with owned copies of everything, the registers `pmask` marks precise."""
        s = Snapshot.copy(self)
        if self.pmask:
            for fi, f in enumerate(s.frames):
                m = self.marks(fi)
                for n, r in enumerate(f.regs):
                    if m >> n & 1:
                        r.precise = True
        return s


def _precise_copy(r: Reg, memo: dict, out: dict) -> Reg:
    """`r` marked precise: the copy `memo` holds of it (`State.set_precise`'s), else a new frozen copy; in `out`."""
    got = memo.get(id(r))
    if got is None:
        c = r.copy()
        c.precise = True
        got = (r, c)
        if FROZEN is not None:
            FROZEN.append((c, _reg_fields(c)))
    out[id(r)] = got
    return got[1]


#: A `ParkedStack` record's head, by width (0: every number below 2**16, 1: below 2**32, 2: any int64): idx, prev,
#: jhist, first_idx, may_goto_depth, the history's length, the frames' bytes, the objects, then the form byte
#: (`_PARK_FRAMES` frames | width << 4 | `_PARK_REFS` | `_PARK_SHARED`).
_PARK_HEADS = (Struct("<HHHHHHHBB"), Struct("<IIIIIIHBB"), Struct("<qqqqqqHBB"))
_PARK_FRAMES, _PARK_REFS, _PARK_SHARED = 0x0F, 0x40, 0x80


class ParkedStack:
    """The pending branches of one walk that wait packed (past the verifier's first ``FREEZE_AFTER``), as one stack.

    The walk's stack is strictly last in, first out, and so is this one: `push` packs a branch as the newest
    record and gives the entry the walk's stack holds for it (this `ParkedStack` itself, a shared marker), `pop`
    takes the newest record up again.  A record is no object of its own: its bytes are appended to `buf`, one
    bytearray, and its objects to `objs`, one list, both used as stacks, so a waiting branch costs its bytes and
    a pointer per object.  A record's bytes: each frame's (`Frame.pack`: the registers that differ from its
    frame in the reference state, a plain scalar in 6 to 74 bytes), then the head (`_PARK_HEADS`, 16 bytes when
    every number is below 2**16), whose last byte, the record's last, gives its width.  Its objects: the parent
    checkpoint, the references (when any), the history (an array only ever appended to: the live path's,
    shared), each frame's objects; none of its own when they are the last ones in `objs`, the same objects one
    by one (`_PARK_SHARED`: branches pushed from one path between two checkpoints share all of them) -- what is
    pushed after a record is popped before it, so `objs` ends as it did when the record was pushed, whenever
    it is popped.  A state with walk counters of a checkpoint (branches, hits, misses) is not
    packed: its entry is ``(state, idx, prev)``, what `pop` gives back as it is.  `record_frozen` logs what the
    records share (`check_frozen`)."""

    __slots__ = ("buf", "objs", "count")

    def __init__(self) -> None:
        self.buf = bytearray()  # the records' bytes, back to back
        self.objs: list = []  # the records' objects, back to back
        self.count = 0  # records

    def __len__(self) -> int:
        return self.count

    def push(self, st: State, ref: "Snapshot | None", idx: int, prev: int,
             hist: "array | None" = None) -> "ParkedStack | tuple[State, int, int]":
        """Pack `st`, a pending branch to `idx` (jumped to from `prev`), as the newest record: the entry for the
        walk's stack, this `ParkedStack` (or ``(st, idx, prev)``, a checkpoint's counters: not packed).  Its
        frames are packed against those of `ref`, a frozen state; its history is `hist` (default: its own), an
        array only ever appended to whose first entries are the state's.  `st` is not used after."""
        if hist is None:
            hist = st.hist
        if st.branches or st.hit or st.miss:
            if hist is not st.hist:
                st.hist = array("q", hist)
            return (st, idx, prev)
        buf, objs = self.buf, self.objs
        start, first = len(buf), len(objs)
        objs.append(st.parent)
        refs = st.refs
        form = len(st.frames)
        if refs:
            form |= _PARK_REFS
            objs.append(ref.refs if ref is not None and ref.refs == refs else refs)
        objs.append(hist)
        pf = ref.frames if ref is not None else ()
        # the parent checkpoint holds `ref`'s frames (the snapshot it was made from) until a stack slot marked
        # precise or forgotten replaces them (register marks are bits of its `pmask`):
        # its frames then, not `ref`'s, are the base (`Frame.pack`'s `via`): it keeps no frame alive of its own
        via = st.parent
        if via is not None and via.frames is not pf:
            via = None
        for k, f in enumerate(st.frames):
            f.pack(pf[k] if k < len(pf) else None, buf, objs, via)
        nobj = len(objs) - first
        below = first - nobj
        if below >= 0:
            for k in range(nobj):
                if objs[below + k] is not objs[first + k]:
                    break
            else:  # the objects `objs` ends with, one by one: not stored twice
                del objs[first:]
                form |= _PARK_SHARED
        jhist, first_idx, depth, hlen = st.jhist, st.first_idx, st.may_goto_depth, len(hist)
        wide = idx | prev | jhist | first_idx | depth | hlen
        form |= 0 if wide >> 16 == 0 else 0x10 if wide >> 32 == 0 else 0x20
        buf += _PARK_HEADS[form >> 4 & 3].pack(idx, prev, jhist, first_idx, depth, hlen, len(buf) - start, nobj,
                                               form)
        self.count += 1
        return self

    def pop(self, entry: "ParkedStack | tuple[State, int, int]") -> "tuple[State, int, int]":
        """(live state, index, jumped from) of `entry`, popped from the walk's stack: when it is this
        `ParkedStack`, the newest record taken off, its frames owned copies; a ``(state, idx, prev)`` as it is."""
        if entry is not self:
            return entry
        buf, objs = self.buf, self.objs
        head = _PARK_HEADS[buf[-1] >> 4 & 3]
        end = len(buf) - head.size
        idx, prev, jhist, first_idx, depth, hlen, size, nobj, form = head.unpack_from(buf, end)
        at = end - size
        start = at
        item = len(objs) - nobj
        first = item
        parent = objs[item]
        if form & _PARK_REFS:
            refs = list(objs[item + 1])
            item += 3
        else:
            refs = []
            item += 2
        hist = objs[item - 1][:hlen]
        frames = []
        for _ in range(form & _PARK_FRAMES):
            flags, n = buf[at], buf[at + 1]
            at += 2
            fref = objs[item]
            item += 1
            if not flags:
                frames.append(fref.copy())
                continue
            if flags & 4:  # the parent checkpoint's frame, which marks may have made some registers precise in
                fref = fref.frames[len(frames)]
                pm = buf[at] | buf[at + 1] << 8
                at += 2
            if flags & 2:
                stack = objs[item]
                item += 1
            else:
                stack = fref.stack
            f = Frame.__new__(Frame)
            regs = f.regs = [r.copy() for r in fref.regs]
            if flags & 4 and any(map(_PRECISE, regs)):
                for k, r in enumerate(regs):
                    if r.precise and not pm >> k & 1:
                        r.precise = False
            for _ in range(n):
                if buf[at + 1] & _KIND_OBJECT:
                    regs[buf[at]] = objs[item].copy()
                    item += 1
                    at += 2
                else:
                    regs[buf[at]], at = _unpack_reg(buf, at)
            f.stack = {k: sl.copy() for k, sl in stack.items()}
            f.callsite, f.frameno, f.subprog = fref.callsite, fref.frameno, fref.subprog
            f.callback_depth = fref.callback_depth
            frames.append(f)
        del buf[start:]
        if not form & _PARK_SHARED:
            del objs[first:]
        self.count -= 1
        s = State.__new__(State)
        s.frames = frames
        s.refs = refs
        s.parent = parent
        s.hist = hist
        s.branches = s.hit = s.miss = 0
        s.jhist, s.first_idx, s.may_goto_depth = jhist, first_idx, depth
        return s, idx, prev


__all__ = ["Reg", "Slot", "Frame", "Snapshot", "State", "Checkpoint", "KeptState", "KEPT_REGS", "ParkedStack", "pack_reg", "unpack_reg", "check_frozen", "record_frozen", "reg_bounds_sync", "forget_synced", "synced_inputs", "synced_generation", "SYNCED_GENERATION", "SYNCED_MIN_GENERATION", "mark_known", "mark_unknown", "s32", "s64",
           "S64_MIN", "S64_MAX", "S32_MIN", "S32_MAX", "BEYOND_PKT_END", "AT_PKT_END", "MAX_PACKET_OFF",
           "ITER_ACTIVE", "ITER_DRAINED", "iter_state", "iter_depth", "iter_reg", "btf_trusted", "mark_btf_trusted"]

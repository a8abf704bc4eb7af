"""validate_slots' screen: one gather and an AND per slot picks the slots the detailed rules look at."""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bpfpatch.errors import DecodeError
from bpfpatch.isa import SLOT_DTYPE, validate_slots
from bpfpatch.isa import rules

# A field is mostly 0 (where the rules want it so) and sometimes anything.
_field = lambda bits: st.one_of(st.just(0), st.just(1), st.integers(0, (1 << bits) - 1))  # noqa: E731
_slot = st.tuples(st.integers(0, 255), _field(4), _field(4), _field(16), _field(32))


def _outcome(slots: np.ndarray) -> str:
    try:
        validate_slots(slots)
    except DecodeError as e:
        return str(e)
    return "ok"


@settings(max_examples=1500, deadline=None)
@given(st.lists(_slot, min_size=1, max_size=6))
@example([(0, 0, 0, 0, 0)])  # an all-zero slot: opcode 0, its word 0
@example([(0x18, 1, 0, 0, 0)])  # a truncated ld_imm64
def test_the_screen_hides_no_invalid_instruction(rows):
    """Every slot through the detailed rules (a screen that looks at everything) gives the same verdict,
    the same first error, as the screen's choice: every opcode, fields zero, one or anything."""
    slots = np.zeros(len(rows), dtype=SLOT_DTYPE)
    for i, (code, dst, src, off, imm) in enumerate(rows):
        slots[i] = (code, dst | src << 4, off - (1 << 16) if off >> 15 else off, imm - (1 << 32) if imm >> 31 else imm)
    screened = _outcome(slots)
    saved = rules.needs_close_look
    rules.needs_close_look = lambda words, code, max_reg: np.ones(len(words), dtype=bool)
    try:
        everything = _outcome(slots)
    finally:
        rules.needs_close_look = saved
    assert screened == everything

"""The `kernel` pass's may_goto rewrite (6.18's timed form on x86-64) against this kernel's xlated output."""

from __future__ import annotations

import struct

import pytest

from bpfpatch import Program
from bpfpatch.isa import decode_slots, slot_rows
from bpfpatch.passes import PassContext, run_passes
from kernel_selftests import comparable_rows


def _ins(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, dst | src << 4, off, imm)


MAY_GOTO = {  # may_goto is JMP | JCOND (0xe5) with src 0
    "one": [(0xB7, 0, 0, 0, 0), (0xE5, 0, 0, 1, 0), (0xB7, 0, 0, 0, 1), (0x95,)],
    "below a 4-byte slot": [(0x62, 10, 0, -4, 0), (0xB7, 0, 0, 0, 0), (0xE5, 0, 0, 1, 0), (0xB7, 0, 0, 0, 1), (0x95,)],
    "two share the count": [(0xB7, 0, 0, 0, 0), (0xE5, 0, 0, 1, 0), (0xB7, 0, 0, 0, 1), (0xE5, 0, 0, 1, 0),
                            (0xB7, 0, 0, 0, 1), (0x95,)],
    "in a subprogram": [(0xB7, 1, 0, 0, 0), (0x85, 0, 1, 0, 1), (0x95,), (0x7A, 10, 0, -8, 0), (0xB7, 0, 0, 0, 0),
                        (0xE5, 0, 0, 1, 0), (0xB7, 0, 0, 0, 1), (0x95,)],
}


@pytest.mark.kernel
@pytest.mark.parametrize("name", list(MAY_GOTO))
def test_may_goto_matches_the_kernel(name):
    from bpfpatch.kernel import load_program

    raw = b"".join(_ins(*i) for i in MAY_GOTO[name])
    with load_program(raw, "socket_filter") as lp:
        theirs = comparable_rows(slot_rows(decode_slots(lp.xlated())))
    prog = Program(decode_slots(raw))
    ours = comparable_rows(slot_rows(run_passes(prog, ["kernel"], PassContext(prog_type="socket_filter")).slots),
                           xlated=False)
    assert ours == theirs
    assert len(theirs) > len(MAY_GOTO[name]) + 6  # the count's initialisation and the countdown are there

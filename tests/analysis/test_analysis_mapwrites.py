"""`map_writes`: which maps a program may write, read off the verifier's states (what `check` must list)."""

from __future__ import annotations

import pytest

from bpfpatch import Program
from bpfpatch.analysis.facts import MapRef
from bpfpatch.analysis.mapwrites import map_writes
from bpfpatch.analysis.verifier import analyze
from bpfpatch.isa import Size
from bpfpatch.isa import build as b

ARRAY, RINGBUF = 2, 27
MAPS = {1: MapRef(0, "a", 1, ARRAY, 4, 8, 16), 2: MapRef(1, "b", 2, ARRAY, 4, 8, 16),
        3: MapRef(2, "rb", 3, RINGBUF, 0, 0, 4096)}


def _lookup(fd: int, done: int) -> list:
    """r0 = lookup(map fd, key 0 at fp-4); if r0 == 0 goto +done (past what follows)."""
    return [b.st_mem(Size.W, 10, -4, 0), b.ld_map_fd(1, fd), b.mov64_reg(2, 10), b.add64_imm(2, -4),
            b.call_helper("map_lookup_elem"), b.jeq_imm(0, 0, done)]


def _writes(insns: list, prog_type: str = "socket_filter"):
    prog = Program.from_insns(insns + [b.mov64_imm(0, 0), b.exit_insn()])
    return map_writes(analyze(prog, prog_type, maps=MAPS, keep_states=True))


def test_a_store_into_a_value_writes_its_map_and_a_lookup_alone_does_not():
    w = _writes(_lookup(1, 1) + [b.st_mem(Size.DW, 0, 0, 7)] + _lookup(2, 1) + [b.ldx_mem(Size.DW, 3, 0, 0)])
    assert w.written == {"a"} and w.referenced == {"a", "b"} and w.unwritten() == {"b"}


def test_an_atomic_add_is_a_write():
    w = _writes(_lookup(2, 2) + [b.mov64_imm(1, 1), b.atomic_add(Size.DW, 0, 1, 0)])
    assert w.written == {"b"}


def test_update_writes_the_map_it_is_given_not_the_value_it_copies():
    # r6 = a's value; update(b, key fp-4, value r6): b is written, a only read
    insns = _lookup(1, 6) + [b.mov64_reg(6, 0), b.ld_map_fd(1, 2), b.mov64_reg(2, 10), b.add64_imm(2, -4),
                             b.mov64_reg(3, 6), b.mov64_imm(4, 0), b.call_helper("map_update_elem")]
    w = _writes(insns)
    assert w.written == {"b"} and w.unwritten() == {"a"}


def test_a_helper_given_a_value_as_memory_writes_its_map():
    # skb_load_bytes(ctx, 0, a's value, 4): the helper writes the value
    insns = [b.mov64_reg(6, 1)] + _lookup(1, 5) + [b.mov64_reg(1, 6), b.mov64_imm(2, 0), b.mov64_reg(3, 0),
                                                   b.mov64_imm(4, 4), b.call_helper("skb_load_bytes")]
    assert _writes(insns).written == {"a"}


def test_a_store_through_memory_of_no_known_map_gives_no_answer():
    # ringbuf_reserve gives PTR_TO_MEM: the rule cannot tell what it aliases in general
    insns = [b.ld_map_fd(1, 3), b.mov64_imm(2, 8), b.mov64_imm(3, 0), b.call_helper("ringbuf_reserve"),
             b.jeq_imm(0, 0, 4), b.st_mem(Size.DW, 0, 0, 1), b.mov64_reg(1, 0), b.mov64_imm(2, 0),
             b.call_helper("ringbuf_submit")]
    assert _writes(insns) is None


def test_code_no_path_reaches_writes_nothing():
    # the store into b's value sits behind a jump over it
    w = _writes(_lookup(1, 9) + [b.ja(8)] + _lookup(2, 1) + [b.st_mem(Size.DW, 0, 0, 7), b.mov64_imm(0, 0)])
    assert "b" not in w.written


def test_the_states_are_needed():
    prog = Program.from_insns(_lookup(1, 1) + [b.st_mem(Size.DW, 0, 0, 7), b.mov64_imm(0, 0), b.exit_insn()])
    with pytest.raises(ValueError, match="keep_states=True"):
        map_writes(analyze(prog, "socket_filter", maps=MAPS, keep_states=False))

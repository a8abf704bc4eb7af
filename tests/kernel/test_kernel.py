"""The kernel as oracle: load, run, read xlated, map errors; clang-built programs of several types."""

from __future__ import annotations

import os
import struct

import pytest

from bpfpatch import Insn, Program
from bpfpatch.elf import read_object
from bpfpatch.errors import NotPrivilegedError, VerifierError
from bpfpatch.isa import decode_slots, slot_rows
from bpfpatch.kernel import ProgType, check_equivalence, load_program
from conftest import PROGS, compile_bpf

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def filters(objdir):
    return read_object(compile_bpf(PROGS / "kernel" / "filters.c", objdir))


def _pkt(first: int, size: int = 64) -> bytes:
    return bytes([first]) + bytes(size - 1)


def test_socket_filter_divides(filters):
    # For socket filters the kernel strips the 14-byte Ethernet header: skb->len and
    # offset 0 of bpf_skb_load_bytes start after it.
    prog = filters.linked_program("socket")
    with load_program(prog, "socket_filter") as p:
        for first, size in ((0, 64), (3, 64), (9, 100)):
            pkt = bytes(14) + _pkt(first, size - 14)
            assert p.test_run(pkt).retval == (size - 14) // (first + 1)


def test_tc_with_map_counts(filters):
    from bpfpatch.kernel.equiv import with_fresh_maps

    raw, maps = with_fresh_maps(filters.linked_program("tc"))
    try:
        with load_program(raw, ProgType.SCHED_CLS) as p:
            assert [p.test_run(_pkt(0)).retval for _ in range(3)] == [1, 2, 3]
        (counts,) = maps.values()
        assert struct.unpack("<Q", counts.lookup(b"\0\0\0\0"))[0] == 3
    finally:
        for m in maps.values():
            m.close()


def test_xdp_verdicts(filters):
    with load_program(filters.linked_program("xdp"), "xdp") as p:
        assert p.test_run(_pkt(1)).retval == 1  # XDP_DROP
        assert p.test_run(_pkt(2)).retval == 2  # XDP_PASS


# The NOTES.md table: `r0 = 7; r1 = 2; <op>; exit` and the kernel's exact guard.
NOTES_ROWS = [
    ((0x3F, 0, 1, 0, 0), [(0x55, 1, 0, 2, 0), (0xAC, 0, 0, 0, 0), (0x05, 0, 0, 1, 0), (0x3F, 0, 1, 0, 0)]),
    ((0x3C, 0, 1, 0, 0), [(0x56, 1, 0, 2, 0), (0xAC, 0, 0, 0, 0), (0x05, 0, 0, 1, 0), (0x3C, 0, 1, 0, 0)]),
    ((0x9F, 0, 1, 0, 0), [(0x15, 1, 0, 1, 0), (0x9F, 0, 1, 0, 0)]),
    ((0x9C, 0, 1, 0, 0), [(0x16, 1, 0, 2, 0), (0x9C, 0, 1, 0, 0), (0x05, 0, 0, 1, 0), (0xBC, 0, 0, 0, 0)]),
    ((0x3F, 0, 1, 1, 0), [(0xBF, 11, 1, 0, 0), (0x07, 11, 0, 0, 1), (0x25, 11, 0, 4, 1), (0x15, 11, 0, 1, 0),
                          (0xB7, 0, 0, 0, 0), (0x87, 0, 0, 0, 0), (0x05, 0, 0, 1, 0), (0x3F, 0, 1, 1, 0)]),
    ((0x9C, 0, 1, 1, 0), [(0xBF, 11, 1, 0, 0), (0x04, 11, 0, 0, 1), (0x26, 11, 0, 3, 1), (0x16, 11, 0, 4, 1),
                          (0xB4, 0, 0, 0, 0), (0x05, 0, 0, 1, 0), (0x9C, 0, 1, 1, 0), (0x05, 0, 0, 1, 0),
                          (0xBC, 0, 0, 0, 0)]),
]


@pytest.mark.parametrize("op, guard", NOTES_ROWS, ids=[hex(r[0][0]) + ("s" if r[0][3] else "") for r in NOTES_ROWS])
def test_xlated_division_guards_match_notes(op, guard):
    prog = Program.from_insns([Insn(0xB7, 0, 0, 0, 7), Insn(0xB7, 1, 0, 0, 2), Insn(*op), Insn(0x95)])
    with load_program(prog) as p:
        xlated = slot_rows(decode_slots(p.xlated()))
    assert xlated == [(0xB7, 0, 0, 0, 7), (0xB7, 1, 0, 0, 2), *guard, (0x95, 0, 0, 0, 0)]


def test_verifier_rejection_carries_the_log():
    with pytest.raises(VerifierError) as info:
        load_program(Program.from_insns([Insn(0xBF, 0, 2), Insn(0x95)]))
    assert "R2 !read_ok" in info.value.log
    assert info.value.errno == 13


def test_eperm_means_privilege(monkeypatch):
    import bpfpatch.kernel.loader as L

    def refuse(cmd, attr):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(L, "bpf", refuse)
    with pytest.raises(NotPrivilegedError, match="root or CAP_BPF"):
        load_program(Program.from_insns([Insn(0xB7), Insn(0x95)]))


def test_no_fd_leak():
    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    good = Program.from_insns([Insn(0xB7), Insn(0x95)])
    bad = Program.from_insns([Insn(0xBF, 0, 2), Insn(0x95)])
    before = fds()
    for _ in range(50):
        with load_program(good) as p:
            p.test_run(bytes(64))
        with pytest.raises(VerifierError):
            load_program(bad)
    assert fds() == before


def test_equivalence_verdicts():
    a = Program.from_insns([Insn(0xB7, 0, 0, 0, 1), Insn(0x95)])
    b = Program.from_insns([Insn(0xB7, 0, 0, 0, 2), Insn(0x95)])
    assert check_equivalence(a, a, inputs=8).verdict.value == "equivalent"
    r = check_equivalence(a, b, inputs=8)
    assert r.verdict.value == "different" and "retval 1 vs 2" in r.reason
    assert check_equivalence(a, a, "kprobe").verdict.value == "undecided"


@pytest.mark.parametrize("name, want", [("socket1", "SOCKET_FILTER"), ("xdp.frags", "XDP"), ("tc/ingress", "SCHED_CLS"),
                                        ("classifier", "SCHED_CLS"), ("sched_cls", "SCHED_CLS"), ("cgroup/skb", "CGROUP_SKB")])
def test_program_types_from_section_names(name, want):
    from bpfpatch.kernel import prog_type_of

    assert prog_type_of(name).name == want


def test_several_programs_in_one_section(tmp_path, capsys):
    """libbpf's rule: every global function of a section is a program of its own."""
    from bpfpatch.cli import main

    src = PROGS / "kernel/multi.c"
    obj = compile_bpf(src, tmp_path)
    parsed = read_object(obj)
    for name, want in (("tc", 129), ("tc:second", 130), ("second", 130)):
        with load_program(parsed.linked_program(name), "sched_cls") as p:
            assert p.test_run(bytes(64)).retval == want
    assert main(["check", str(obj), str(obj), "--section", "tc:second", "--inputs", "4"]) == 0

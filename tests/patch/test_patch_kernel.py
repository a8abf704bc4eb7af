"""The patch list through the kernel: no-op insertions keep programs accepted and their
results unchanged; deleting them gives the original bytes back; relaxed long jumps load."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfpatch import Insn, PatchList, Program
from bpfpatch.elf import read_object
from bpfpatch.errors import RelocationError
from bpfpatch.kernel import check_equivalence, load_program
from conftest import PROGS, compile_bpf
from progtools import accepted_retvals, kernel_programs, kernel_retvals

pytestmark = pytest.mark.kernel


def _retvals(prog):
    return kernel_retvals(prog, (0, 1, 200))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kernel_programs(), st.data())
def test_nop_insertion_round_trip(prog, data):
    expected = accepted_retvals(prog, (0, 1, 200))
    pl = PatchList(prog)
    for node in list(pl):
        if data.draw(st.integers(0, 2)) == 0:
            # Kernel semantics: the nop takes over as the landing point, so it is reachable
            # wherever the instruction was (retarget=False could strand it after an exit).
            pl.prepend(node, [Insn(0x05)])
    padded = pl.linearize()
    assert _retvals(padded) == expected
    # Delete them again: the original bytes come back.
    pl2 = PatchList(padded)
    originals = set(padded.insn_map.tolist())
    for node in list(pl2):
        if node.orig_idx not in originals:
            assert node.insn == Insn(0x05)
            pl2.delete(node)
    assert pl2.linearize().to_bytes() == prog.to_bytes()


def test_clang_programs_with_nops_stay_equivalent(objdir):
    obj = read_object(compile_bpf(PROGS / "kernel" / "filters.c", objdir))
    for section, ptype in (("socket", "socket_filter"), ("tc", "sched_cls"), ("xdp", "xdp")):
        prog = obj.linked_program(section)
        pl = PatchList(prog)
        for i, node in enumerate(list(pl)):
            if i % 2:
                pl.prepend(node, [Insn(0x05)])
        assert check_equivalence(prog, pl.linearize(), ptype, inputs=8).verdict.value == "equivalent"


@pytest.mark.parametrize("cond", [False, True])
def test_relaxed_long_jumps_load(cond):
    """A program > 32K instructions whose jump no longer fits 16 bits after a patch."""
    n = 32767
    jump = Insn(0x15, 1, 0, n, 0) if cond else Insn(0x05, 0, 0, n, 0)
    body = [Insn(0x07, 0, 0, 0, 1)] * n
    # `if r1 == 5` keeps the body reachable in the CFG for the unconditional variant.
    prog = Program.from_insns([Insn(0xB7, 0), Insn(0xB7, 1), Insn(0x15, 1, 0, 1, 5), jump] + body + [Insn(0x95)])
    pl = PatchList(prog)
    pl.prepend(pl.node_at(4), [Insn(0x07, 0, 0, 0, 1)])
    with pytest.raises(RelocationError):
        pl.linearize()
    out = pl.linearize(relax_long_jumps=True)
    assert len(out.slots) > 32768
    with load_program(out) as p:
        assert p.test_run(bytes(64)).retval == 0  # r1 == 0: the jump skips the whole body

"""dce on call chains: dead chains go entirely, live ones stay, and a called subprogram keeps its code."""

from __future__ import annotations

import pytest

from bpfpatch import Insn, PatchList, Program
from bpfpatch.errors import PatchError
from bpfpatch.passes import run_passes


def dead_subprogram_chain(n: int) -> Program:
    """main: r0 = 0; exit.  Then n subprograms nobody calls: `call next; exit`, the last `r0 = 0; exit`."""
    insns = [Insn(0xB7, 0, 0, 0, 0), Insn(0x95)]
    for k in range(n):
        insns += [Insn(0x85, 0, 1, 0, 1) if k < n - 1 else Insn(0xB7, 0, 0, 0, 0), Insn(0x95)]
    return Program.from_insns(insns)


def live_call_chain(n: int) -> Program:
    """main calls subprogram 0, which calls 1, ..., the last returns 0."""
    insns = [Insn(0x85, 0, 1, 0, 1), Insn(0x95)]
    for k in range(n):
        insns += [Insn(0x85, 0, 1, 0, 1) if k < n - 1 else Insn(0xB7, 0, 0, 0, 0), Insn(0x95)]
    return Program.from_insns(insns)


def test_a_dead_chain_of_subprograms_goes_entirely():
    out = run_passes(dead_subprogram_chain(500), ["dce"])
    assert [tuple(i) for i in out.insns] == [(0xB7, 0, 0, 0, 0), (0x95, 0, 0, 0, 0)]
    assert out.subprogs == [0]


def test_a_live_chain_stays():
    prog = live_call_chain(300)
    out = run_passes(prog, ["dce"])
    assert out.to_bytes() == prog.to_bytes()
    assert len(out.subprogs) == 301


def test_deleting_a_called_subprogram_is_still_refused():
    pl = PatchList(live_call_chain(3))
    nodes = list(pl)
    pl.delete(nodes[4])  # subprogram 1's call: subprogram 2 is called by nobody now
    pl.delete(nodes[6])  # subprogram 2 loses `r0 = 0`, keeps its exit
    pl.delete(nodes[7])  # and its exit: allowed, nothing calls it any more
    with pytest.raises(PatchError, match="a call still targets"):
        pl.delete(nodes[5])  # subprogram 1 is still called by subprogram 0

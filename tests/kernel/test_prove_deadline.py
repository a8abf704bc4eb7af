"""`check --prove` keeps its time bound inside one instruction too: a load or store at a variable offset
builds terms for every byte of its region, and a big region (bcc execsnoop's 7.7 KB event, 16 stores of
a probe_read_user_str) outlasted the encoding deadline by minutes when only `Encoder.run` asked for it.
A clock that moves a second per reading makes the deadline pass in the middle of such a store."""

from __future__ import annotations

import pytest
import z3

from conftest import PROGS, compile_bpf
from bpfpatch.elf import read_object
from bpfpatch.isa import build as b
from bpfpatch.program import Program
from bpfpatch.progtype import ProgType
from bpfpatch.prove import ProofVerdict, prove_equivalent
from bpfpatch.prove import model
from progtools import mutant, slot_insns

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def bigvar(tmp_path_factory) -> Program:
    obj = read_object(compile_bpf(PROGS / "prove" / "bigvar.c", tmp_path_factory.mktemp("prove_deadline")))
    return obj.linked_program("xdp")


def test_the_deadline_stops_a_store_at_a_variable_offset_in_the_middle(bigvar, monkeypatch):
    at = slot_insns(bigvar)
    stores = [s for s, x in at.items() if x.code == 0x73]  # *(u8 *)(rX + 0) = rY, rX + a packet's length
    assert len(stores) == 2, at
    one = next(s for s, x in at.items() if x == b.mov32_imm(x.dst, 1))
    same = mutant(bigvar, {one: b.mov64_imm(at[one].dst, 1)})  # the same value: only the solver can say so
    first = min(s for s in stores if s > one)
    # The clock stands still until the encoder starts that store, then jumps past every deadline: only a
    # check inside the store can name it (the next node's check names the next instruction).
    now = [0.0]
    store1 = model.Encoder.store1

    def store1_then_late(self, st, val, off, size, value, slot):
        if slot == first and not z3.is_bv_value(z3.simplify(val[0])):  # (the probes run it on constants first)
            now[0] = 1e12
        return store1(self, st, val, off, size, value, slot)

    monkeypatch.setattr(model.time, "perf_counter", lambda: now[0])
    monkeypatch.setattr(model.Encoder, "store1", store1_then_late)
    res = prove_equivalent(bigvar, same, ProgType.XDP, timeout=30, use_region=False)  # the whole program encoded
    monkeypatch.undo()
    assert now[0] == 1e12, "the encoder stored at the variable offset"
    assert res.verdict is ProofVerdict.UNDECIDED, res
    assert f"the time ran out while encoding instruction {first} " in res.reason, (first, res.reason)


def test_without_a_deadline_passing_the_same_rewrite_is_proved(bigvar):
    at = slot_insns(bigvar)
    one = next(s for s, x in at.items() if x == b.mov32_imm(x.dst, 1))
    same = mutant(bigvar, {one: b.mov64_imm(at[one].dst, 1)})
    res = prove_equivalent(bigvar, same, ProgType.XDP, timeout=60, use_region=False)
    assert res.verdict is ProofVerdict.PROVED, res

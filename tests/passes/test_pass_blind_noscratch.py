"""blind where every register is live: constant loads blinded in their own destination, spills sharing
one slot per subprogram, and a stack depth that follows the control flow."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpfpatch import Insn, PatchError, Program
from bpfpatch.passes import PassContext, run_passes
from bpfpatch.passes.blind import self_blind
from bpfpatch.passes.liveness import stack_depths, subprogram_starts
from bpfpatch.patch import PatchList

M64 = (1 << 64) - 1


def _sext(v: int) -> int:
    v &= 0xFFFFFFFF
    return v | (0xFFFFFFFF << 32) if v >> 31 else v


def _value(insns: list[Insn]) -> int:
    """The register the sequence leaves (mov, xor and lsh by an immediate, 32 and 64 bits), from the ISA's rules."""
    r = 0xDEAD_BEEF_DEAD_BEEF  # whatever was there before: every form overwrites it first
    for x in insns:
        if x.code == 0xB7:
            r = _sext(x.imm)
        elif x.code == 0xB4:
            r = x.imm & 0xFFFFFFFF
        elif x.code == 0xA7:
            r ^= _sext(x.imm)
        elif x.code == 0xA4:
            r = (r ^ x.imm) & 0xFFFFFFFF  # 32-bit ALU: the upper half is cleared
        elif x.code == 0x67:
            r = (r << x.imm) & M64
        else:
            raise AssertionError(f"unexpected {x}")
    return r & M64


s32 = st.integers(-(1 << 31), (1 << 31) - 1)


@settings(max_examples=300, deadline=None)
@given(imm=s32, wide=st.booleans(), seed=st.integers(0, 1 << 30))
def test_self_blinded_mov_is_the_same_value(imm, wide, seed):
    insn = Insn(0xB7 if wide else 0xB4, 3, 0, 0, imm)
    seq = self_blind(insn, random.Random(seed))
    if imm == 0:
        assert seq is None  # `rX = 0` plants nothing and stays
        return
    want = _sext(imm) if wide else imm & 0xFFFFFFFF
    assert _value(seq) == want and {x.dst for x in seq} == {3} and len(seq) == 2


@settings(max_examples=300, deadline=None)
@given(value=st.integers(0, M64), seed=st.integers(0, 1 << 30))
def test_self_blinded_ld_imm64_is_the_same_value(value, seed):
    imm = value - (1 << 64) if value >> 63 else value
    seq = self_blind(Insn(0x18, 5, 0, 0, imm), random.Random(seed))
    assert _value(seq) == value and {x.dst for x in seq} == {5}
    # neither half is planted as it is (the random halves are drawn; a collision has odds 2^-32)
    lo, hi = value & 0xFFFFFFFF, value >> 32
    assert not any(x.imm & 0xFFFFFFFF in (lo, hi) and x.code != 0x67 for x in seq if lo > 1 and hi > 1)


def test_pseudo_loads_and_reads_have_no_self_form():
    rng = random.Random(0)
    assert self_blind(Insn(0x18, 1, 1, 0, 3), rng) is None  # a map load: the loader fills it in
    assert self_blind(Insn(0x07, 1, 0, 0, 3), rng) is None  # `r1 += 3` reads r1: it needs a second register


def _full_frame_all_live(site: list[Insn]) -> Program:
    """r0-r9 live across `site`, and the frame already 512 bytes deep: no free register, no free slot."""
    body = [Insn(0xB7, r, 0, 0, 3 * r + 1) for r in (0, 2, 3, 4, 5, 6, 7, 8, 9)]
    body += [Insn(0x7B, 10, 2, -512)]  # *(u64 *)(r10 - 512) = r2
    body += site
    for r in (2, 3, 4, 5, 6, 7, 8, 9):  # r0 += rX; rX >>= 32; r0 ^= rX: both halves of every register count
        body += [Insn(0x0F, 0, r), Insn(0x77, r, 0, 0, 32), Insn(0xAF, 0, r)]
    body += [Insn(0x61, 1, 1, 0), Insn(0x0F, 0, 1), Insn(0x79, 1, 10, -512), Insn(0x0F, 0, 1), Insn(0x95)]
    return Program.from_insns(body)


SITES = {
    "mov32": [Insn(0xB4, 3, 0, 0, 0x12345678)],
    "mov64-negative": [Insn(0xB7, 4, 0, 0, -5)],
    "ld_imm64-lo-bit31": [Insn(0x18, 5, 0, 0, 0x7FFFFFFE_80000001)],  # the low half flips the upper one
    "ld_imm64": [Insn(0x18, 6, 0, 0, 0x1122334455667788)],
}


@pytest.mark.parametrize("name", SITES)
def test_constant_loads_blind_with_no_register_and_no_slot(name):
    prog = _full_frame_all_live(SITES[name])
    out = run_passes(prog, ["blind"], PassContext(seed=9, aux_reg="auto"))
    insns = out.insns
    assert not any(x.code == 0x7B and x.dst == 10 and x.off != -512 for x in insns)  # no spill
    assert 11 not in {x.dst for x in insns} | {x.src for x in insns}
    planted = {i.imm for i in SITES[name] if i.code != 0x18}
    assert not planted & {x.imm for x in insns}


@pytest.mark.kernel
@pytest.mark.parametrize("name", SITES)
def test_constant_loads_blinded_in_place_load_and_return_the_same(name):
    from bpfpatch.kernel import load_program

    prog = _full_frame_all_live(SITES[name])
    out = run_passes(prog, ["blind"], PassContext(seed=9, aux_reg="auto"))
    with load_program(prog, "socket_filter") as a, load_program(out, "socket_filter") as b:
        data = bytes(64)
        assert a.test_run(data).retval == b.test_run(data).retval


def test_an_add_with_no_register_and_no_slot_is_refused_by_name():
    prog = _full_frame_all_live([Insn(0xB7, 3, 0, 0, 0), Insn(0x07, 3, 0, 0, 0x1234)])  # r3 += 0x1234
    with pytest.raises(PatchError, match="stack is full"):
        run_passes(prog, ["blind"], PassContext(seed=9, aux_reg="auto"))


def _all_live_sites(n: int) -> Program:
    """n blinded adds, each with r0-r9 live across it, and a frame of 40 bytes."""
    body = [Insn(0xB7, r, 0, 0, r + 1) for r in (0, 2, 3, 4, 5, 6, 7, 8, 9)] + [Insn(0x7B, 10, 2, -40)]
    for k in range(n):
        body += [Insn(0x07, 2 + k % 8, 0, 0, 0x1000 + k)]
    body += [Insn(0x0F, 0, r) for r in (2, 3, 4, 5, 6, 7, 8, 9)] + [Insn(0x61, 1, 1, 0), Insn(0x0F, 0, 1), Insn(0x95)]
    return Program.from_insns(body)


def test_spills_of_one_subprogram_share_one_slot():
    out = run_passes(_all_live_sites(70), ["blind"], PassContext(seed=1, aux_reg="auto"))  # 70 * 8 > 512 bytes
    slots = {x.off for x in out.insns if x.code == 0x7B and x.dst == 10} - {-40}
    assert slots == {-48}


@pytest.mark.kernel
def test_many_spilled_sites_load_and_return_the_same():
    from bpfpatch.kernel import load_program

    prog = _all_live_sites(70)
    out = run_passes(prog, ["blind"], PassContext(seed=1, aux_reg="auto"))
    with load_program(prog, "socket_filter") as a, load_program(out, "socket_filter") as b:
        assert a.test_run(bytes(64)).retval == b.test_run(bytes(64)).retval


def _depths(insns: list[Insn]) -> list[int | None]:
    pl = PatchList(Program.from_insns(insns))
    nodes = list(pl)
    return stack_depths(pl, nodes, subprogram_starts(pl, nodes))


def test_stack_depth_follows_the_control_flow():
    # r8 is a stack pointer on one path and a scalar on the other; the scalar is moved by a register
    assert _depths([
        Insn(0xB7, 0), Insn(0x61, 8, 1, 0), Insn(0x15, 1, 0, 3, 0),  # r8 = skb->len; if r1 == 0 goto +3
        Insn(0xBF, 8, 10), Insn(0x07, 8, 0, 0, -8), Insn(0x95),  # r8 = r10 - 8; exit
        Insn(0x0F, 8, 0), Insn(0x95),  # r8 += r0 (a scalar here): no stack pointer moves
    ]) == [8]


def test_stack_depth_follows_spilled_pointers():
    # a stack pointer spilled, the register reused, the pointer filled back and written below itself
    assert _depths([
        Insn(0xBF, 1, 10), Insn(0x07, 1, 0, 0, -40), Insn(0x7B, 10, 1, -8), Insn(0xB7, 1, 0, 0, 0),
        Insn(0x79, 2, 10, -8), Insn(0x7A, 2, 0, -16, 7), Insn(0xB7, 0), Insn(0x95),  # *(u64 *)(r2 - 16) = 7
    ]) == [56]


def test_stack_depth_of_a_pointer_moved_by_a_register_is_unknown():
    assert _depths([Insn(0xBF, 1, 10), Insn(0x07, 1, 0, 0, -40), Insn(0x0F, 1, 2), Insn(0x72, 1, 0, 0, 1),
                    Insn(0xB7, 0), Insn(0x95)]) == [None]
    # one stepped in a loop takes too many offsets
    assert _depths([Insn(0xBF, 1, 10), Insn(0x07, 1, 0, 0, -8), Insn(0x72, 1, 0, 0, 1), Insn(0x07, 1, 0, 0, -8),
                    Insn(0x05, 0, 0, -3, 0)]) == [None]

"""The abstract interpreter on hand-written programs, checked against the kernel's own log_level 2 states."""

from __future__ import annotations

import pytest

from bpfpatch.analysis.facts import RegType
from bpfpatch.analysis.verifier import AnalysisRejected, BudgetExceeded, analyze
from bpfpatch.analysis.vlog import compare, parse_log
from bpfpatch.asm import assemble
from bpfpatch.errors import BpfPatchError, VerifierError
from bpfpatch.program import Program

PKT = """
r2 = *(u32 *)(r1 + 76)
r3 = *(u32 *)(r1 + 80)
r4 = r2
r4 += 14
if r4 > r3 goto +3
r5 = *(u8 *)(r2 + 0)
w5 &= 15
r5 <<= 2
r0 = 0
*(u64 *)(r10 - 8) = r0
w0 = 5
exit
"""

XDP = """
r2 = *(u32 *)(r1 + 0)
r3 = *(u32 *)(r1 + 4)
r0 = 1
r4 = r2
r4 += 34
if r4 > r3 goto +9
r5 = *(u16 *)(r2 + 12)
if r5 != 8 goto +7
r6 = *(u8 *)(r2 + 23)
r6 &= 0xf
*(u32 *)(r10 - 4) = r6
r7 = *(u32 *)(r10 - 4)
*(u64 *)(r10 - 16) = r2
r8 = *(u64 *)(r10 - 16)
r0 = 2
exit
"""

LOOP = """
r0 = 0
r1 = 0
r0 += r1
r1 += 1
if r1 < 10 goto -3
exit
"""

BRANCHES = """
r0 = 1
if r0 == 1 goto +1
r0 = 2
r2 = r10
r2 += -8
r3 = 7
*(u64 *)(r2 + 0) = r3
r4 = *(u64 *)(r10 - 8)
if r4 > 6 goto +1
r0 = 3
w0 += 1
exit
"""

SIGNED = """
r0 = *(u32 *)(r1 + 0)
r0 <<= 32
r0 s>>= 40
r1 = r0
r1 &= 0xffff
r1 |= 0x10
w2 = w1
w2 *= 3
r2 ^= 5
r3 = -7
r3 s/= 2
r2 -= r3
r2 = -r2
r0 = 0
exit
"""

CASES = {"pkt": (PKT, "sched_cls"), "xdp": (XDP, "xdp"), "loop": (LOOP, "socket_filter"),
         "branches": (BRANCHES, "socket_filter"), "signed": (SIGNED, "socket_filter")}


def prog(text: str) -> Program:
    return Program.from_insns(assemble(text))


def test_pkt_facts():
    a = analyze(prog(PKT), "sched_cls")
    assert a.aux[0].ptr_type is RegType.PTR_TO_CTX and a.aux[0].ctx_field_size == 4
    assert a.aux[5].ptr_type is RegType.PTR_TO_PACKET
    assert a.aux[9].ptr_type is RegType.PTR_TO_STACK
    assert all(x.seen for x in a.aux)


def test_decided_branch_leaves_other_side_unseen():
    a = analyze(prog(BRANCHES), "socket_filter")
    seen = [x.seen for x in a.aux]
    assert seen[2] is False and seen[9] is False  # r0 == 1 and r4 == 7 > 6 are decided
    assert seen[0] and seen[3] and seen[10]


def test_bounded_loop_terminates():
    a = analyze(prog(LOOP), "socket_filter")
    assert all(x.seen for x in a.aux)
    assert 10 < a.processed < 200


@pytest.mark.parametrize(
    "text, ptype, message, index",
    [
        ("r0 = 0\nr2 = 5\nr0 = *(u8 *)(r2 + 0)\nexit", "socket_filter", "R2 invalid mem access 'scalar'", 2),
        ("exit", "socket_filter", "R0 !read_ok", 0),
        ("r2 = *(u32 *)(r1 + 0)\nr0 = *(u8 *)(r2 + 0)\nexit", "xdp", "invalid access to packet", 1),
        ("r0 = *(u32 *)(r1 + 76)\nexit", "socket_filter", "invalid bpf_context access off=76 size=4", 0),
        ("r0 = 1\nr0 /= 0\nexit", "socket_filter", "div by zero", 1),
        ("r0 = r3\nexit", "socket_filter", "R3 !read_ok", 0),
    ],
)
def test_refusals_name_instruction_and_message(text, ptype, message, index):
    with pytest.raises(AnalysisRejected) as info:
        analyze(prog(text), ptype)
    assert isinstance(info.value, BpfPatchError)
    assert message in info.value.message
    assert info.value.index == index


def test_budget():
    with pytest.raises(BudgetExceeded):
        analyze(prog(LOOP), "socket_filter", budget=20)


@pytest.mark.kernel
@pytest.mark.parametrize("name", sorted(CASES))
def test_states_agree_with_kernel_log(name):
    from bpfpatch.kernel import load_program

    text, ptype = CASES[name]
    p = prog(text)
    a = analyze(p, ptype)
    with load_program(p, ptype, log_level=2) as lp:
        log = parse_log(lp.verifier_log)
    cmp = compare(a.aux, log)
    assert cmp.steps > 0
    assert cmp.type_mismatches == []
    assert cmp.exact_mismatches == []


@pytest.mark.kernel
@pytest.mark.parametrize(
    "text, ptype, message",
    [
        ("r0 = 0\nr2 = 5\nr0 = *(u8 *)(r2 + 0)\nexit", "socket_filter", "R2 invalid mem access 'scalar'"),
        ("exit", "socket_filter", "R0 !read_ok"),
        ("r2 = *(u32 *)(r1 + 0)\nr0 = *(u8 *)(r2 + 0)\nexit", "xdp", "invalid access to packet"),
    ],
)
def test_refusal_messages_are_the_kernels(text, ptype, message):
    from bpfpatch.kernel import load_program

    p = prog(text)
    with pytest.raises(VerifierError) as kinfo:
        load_program(p, ptype, log_level=1)
    with pytest.raises(AnalysisRejected) as ours:
        analyze(p, ptype)
    assert message in kinfo.value.log
    assert ours.value.message.split(",")[0] in kinfo.value.log

"""The privileged rules (root loads: ``allow_ptr_leaks``) and the models the kernel's log showed missing.

Each assembled program is checked against the running kernel's log_level 2 log; the
selftest objects (the programs the kernel accepted and we refused, or whose types
differed) against theirs, every program the kernel accepts.
"""

from __future__ import annotations

import pytest
from conftest import PROGS, compile_bpf

from analysis_kernel import assert_selftest_agrees, check_object
from bpfpatch.analysis.facts import RegType
from bpfpatch.analysis.verifier import AnalysisRejected, analyze
from bpfpatch.analysis.vlog import compare, parse_log
from bpfpatch.asm import assemble
from bpfpatch.elf import read_object
from bpfpatch.elf.link import link_program
from bpfpatch.program import Program

# A pointer copied to a 32-bit register, negated, byte-swapped or sign-extended: with allow_ptr_leaks
# is_pointer_value() is false, so no "partial copy of pointer", an unknown scalar (the 32-bit ones
# zero-extended).
POINTER_TO_SCALAR = """
r1 = r10
w2 = w1
r3 = r10
r3 = -r3
r4 = r10
r4 = be16 r4
r5 = r10
r5 = (s8)r5
r6 = r10
w6 = (s16)w6
r0 = 0
exit
"""

# 32-bit subtraction with a packet pointer on either side (verifier_value_ptr_arith's "32bit pkt_ptr -=
# scalar" and "32bit scalar -= pkt_ptr"): a meaningless scalar when privileged.
SUB32_PTR = """
r8 = *(u32 *)(r1 + 80)
r7 = *(u32 *)(r1 + 76)
r6 = r7
r6 += 40
if r6 > r8 goto +6
w4 = w7
w6 -= w4
w5 = w6
w5 -= w7
r0 = 0
exit
r0 = 0
exit
"""

# A range holding one member of the known bits is that value (6.18's __update_reg64_bounds): r2 in {0, 4,
# 8, 12} and in [5, 8] is 8, in [9, 12] it is 12; r3's [2, 17] holds 2, 3, 16 and 17 and stays a range.
ONE_MEMBER = """
r2 = *(u32 *)(r1 + 0)
r2 &= 12
if r2 < 5 goto +2
if r2 > 8 goto +1
r0 = r2
r3 = *(u32 *)(r1 + 0)
r3 &= 0x13
if r3 < 2 goto +2
if r3 > 0x11 goto +1
r0 = r3
r0 = 0
exit
"""

# bpf_get_smp_processor_id's result is below nr_cpu_ids (do_refine_retval_range).
CPU_ID = """
call 8
r1 = r0
r0 = 0
exit
"""

CASES = {"pointer_to_scalar": (POINTER_TO_SCALAR, "socket_filter"), "sub32_ptr": (SUB32_PTR, "sched_cls"),
         "one_member": (ONE_MEMBER, "socket_filter"), "cpu_id": (CPU_ID, "socket_filter")}


def prog(text: str) -> Program:
    return Program.from_insns(assemble(text))


def test_pointer_to_scalar_is_unknown():
    a = analyze(prog(POINTER_TO_SCALAR), "socket_filter")
    after = {i: a.aux[i].extra["after"][0].cur.regs for i in (1, 3, 5, 7, 9)}
    for i, regno in ((1, 2), (3, 3), (5, 4), (7, 5), (9, 6)):
        r = after[i][regno]
        assert r.type is RegType.SCALAR, (i, r.type)
    assert after[1][2].umax == 0xFFFFFFFF and after[3][3].umax == (1 << 64) - 1  # w2: zero-extended


def test_sub32_ptr_is_unknown_other_ops_refused():
    a = analyze(prog(SUB32_PTR), "sched_cls")
    assert a.aux[6].extra["after"][0].cur.regs[6].type is RegType.SCALAR
    assert a.aux[8].extra["after"][0].cur.regs[5].type is RegType.SCALAR
    with pytest.raises(AnalysisRejected) as info:  # only subtraction: adjust_ptr_min_max_vals
        analyze(prog(SUB32_PTR.replace("w6 -= w4", "w6 += w4")), "sched_cls")
    assert info.value.message == "R6 32-bit pointer arithmetic prohibited" and info.value.index == 6


@pytest.mark.kernel
@pytest.mark.parametrize("name", sorted(CASES))
def test_states_agree_with_kernel_log(name):
    from bpfpatch.kernel import load_program

    text, ptype = CASES[name]
    p = prog(text)
    a = analyze(p, ptype)
    with load_program(p, ptype, log_level=2) as lp:
        cmp = compare(a.aux, parse_log(lp.verifier_log))
    assert cmp.steps >= 3
    assert cmp.type_mismatches == []
    assert cmp.exact_mismatches == []


@pytest.mark.kernel
def test_add32_ptr_refused_like_the_kernel():
    from bpfpatch.errors import VerifierError
    from bpfpatch.kernel import load_program

    p = prog(SUB32_PTR.replace("w6 -= w4", "w6 += w4"))
    with pytest.raises(VerifierError) as kinfo:
        load_program(p, "sched_cls", log_level=1)
    assert "R6 32-bit pointer arithmetic prohibited" in kinfo.value.log


@pytest.fixture(scope="module")
def mapinmap(objdir):
    return compile_bpf(PROGS / "analysis" / "mapinmap.c", objdir)


def test_inner_map_from_btf(mapinmap):
    """The inner map an ELF object's BTF declares reaches the analysis (bpfpatch analyze): its value size,
    and a constant in-bounds key of the inner array is never NULL."""
    elf = read_object(str(mapinmap))
    assert elf.maps["outer"]["inner"] == {"map_type": 2, "key_size": 4, "value_size": 8, "max_entries": 4,
                                          "flags": 0}
    p = link_program(elf, "socket")
    a = analyze(p, "socket_filter")
    lookups = [i for i, x in enumerate(a.aux) if x is not None and x.call_helper == 1]
    r0 = a.aux[lookups[1]].extra["after"][0].cur.regs[0]
    assert r0.type is RegType.PTR_TO_MAP_VALUE and r0.map.value_size == 8 and r0.map.key_size == 4


@pytest.mark.kernel
def test_inner_map_agrees_with_kernel(mapinmap):
    results = check_object(str(mapinmap))
    assert [r.name for r in results] == ["inner_lookup"]
    r = results[0]
    assert not r.kernel_error and not r.our_error
    assert r.cmp.type_mismatches == [] and r.cmp.exact_mismatches == []


# Selftest objects with programs the kernel (6.18, root) accepts that we refused or typed differently:
# 32-bit pointer copies and subtraction (xdp_synproxy_kern, test_pkt_access, verifier_value_ptr_arith),
# a referenced BTF pointer is never NULL (rbtree: rbtree_add_and_remove_array), a packet dynptr's slice
# dies with the packet pointers (test_cls_redirect_dynptr), inner maps' sizes (verifier_map_in_map).
PRIVILEGED_OBJECTS = ["xdp_synproxy_kern", "test_pkt_access", "verifier_value_ptr_arith", "rbtree",
                      "test_cls_redirect_dynptr", "verifier_map_in_map"]


@pytest.mark.slow
@pytest.mark.kernel
@pytest.mark.parametrize("name", PRIVILEGED_OBJECTS)
def test_selftests_accepted_and_agree(name, tmp_path_factory):
    assert_selftest_agrees(name, tmp_path_factory.getbasetemp() / "privileged")

"""zext: the linear liveness against a plain fixed-point reference, context loads, verifier facts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from bpfpatch import Insn, PatchList, Program
from bpfpatch.asm import assemble
from bpfpatch.analysis.facts import InsnAux, RegType
from bpfpatch.kernel import load_program
from bpfpatch.passes import PassContext, run_passes
from bpfpatch.passes.zext import Zext, needs_zext, uses_defs
from progtools import programs, reference_successors


def reference_needs_zext(pl: PatchList) -> list[int]:
    """The textbook algorithm: sweep backwards over all nodes until nothing changes."""
    nodes = list(pl)
    succ = reference_successors(nodes)
    info = [uses_defs(n.insn) for n in nodes]
    live = [frozenset()] * len(nodes)
    changed = True
    while changed:
        changed = False
        for i in range(len(nodes) - 1, -1, -1):
            out = frozenset().union(*(live[s] for s in succ[i]))
            new = (out - info[i][1]) | info[i][0]
            if new != live[i]:
                live[i], changed = new, True
    return [nodes[i].orig_idx for i in range(len(nodes)) if info[i][2] is not None
            and info[i][2] in frozenset().union(*(live[s] for s in succ[i]))]


def backward_goto_chain(n: int) -> Program:
    """w0 = 0; goto the last block; block k: r2 = 1; goto block k-1; ...; block 0 goes to exit."""
    insns = [Insn(0xB4, 0, 0, 0, 0), Insn(0x05, 0, 0, 2 * n - 2, 0)]
    for k in range(n):
        here = 2 + 2 * k + 1  # index of this block's goto
        dest = 2 + 2 * (k - 1) if k else 2 + 2 * n
        insns += [Insn(0xB7, 2, 0, 0, 1), Insn(0x05, 0, 0, dest - here - 1, 0)]
    return Program.from_insns(insns + [Insn(0x95)])


@settings(max_examples=150, deadline=None)
@given(programs(max_subprogs=3, max_body=14, metadata=False))
def test_liveness_equals_the_fixed_point_reference(prog):
    pl = PatchList(prog)
    assert [n.orig_idx for n in needs_zext(pl)] == reference_needs_zext(pl)


def test_backward_goto_chain_is_decided_like_the_reference():
    pl = PatchList(backward_goto_chain(60))
    got = [n.orig_idx for n in needs_zext(pl)]
    assert got == reference_needs_zext(pl) == [0]  # exit reads r0: the w0 = 0 at the top needs it


# A tc program reading packet pointers from __sk_buff with 32-bit loads (data 76, data_end 80):
# the kernel turns both into 64-bit pointer loads, so `w2 = w2` after them would break it.
PKT = [Insn(0x61, 2, 1, 76, 0), Insn(0x61, 3, 1, 80, 0), Insn(0xBF, 4, 2), Insn(0x07, 4, 0, 0, 8),
       Insn(0x2D, 4, 3, 1, 0), Insn(0x71, 0, 2, 0, 0), Insn(0xB7, 0, 0, 0, 0), Insn(0x95)]


def test_no_zero_extension_after_context_loads_without_facts():
    out = run_passes(Program.from_insns(PKT), ["zext"])
    assert out.to_bytes() == Program.from_insns(PKT).to_bytes()


def test_context_loads_through_a_spill_are_recognised():
    insns = [Insn(0x7B, 10, 1, -8, 0), Insn(0x79, 6, 10, -8, 0), Insn(0x61, 2, 6, 76, 0)] + PKT[1:]
    assert run_passes(Program.from_insns(insns), ["zext"]).to_bytes() == Program.from_insns(insns).to_bytes()


@pytest.mark.kernel
def test_zext_output_of_a_packet_program_loads_where_the_original_does():
    prog = Program.from_insns(PKT)
    for ptype in ("sched_cls", "cgroup_skb"):
        with load_program(prog, ptype):
            pass
        with load_program(run_passes(prog, ["zext"]), ptype):
            pass


# The context reaches the loads only as a subprogram's argument (as clang's static functions
# taking `struct __sk_buff *` do): the tracking must not assume it knows nothing there.
SUBPROG_PKT = """\
call pc+2
r0 = 0
exit
r2 = *(u32 *)(r1 + 76)
r3 = *(u32 *)(r1 + 80)
r4 = r2
r4 += 8
if r4 > r3 goto +1
r0 = *(u8 *)(r2 + 0)
r0 = 0
exit
"""


def test_no_zero_extension_after_context_loads_in_a_subprogram():
    prog = Program.from_insns(assemble(SUBPROG_PKT))
    assert run_passes(prog, ["zext"]).to_bytes() == prog.to_bytes()


@pytest.mark.kernel
def test_zext_of_a_subprogram_reading_packet_pointers_loads():
    prog = Program.from_insns(assemble(SUBPROG_PKT))
    with load_program(prog, "sched_cls"):
        pass
    with load_program(run_passes(prog, ["zext"]), "sched_cls"):
        pass


# The context stored in a struct on the stack through another register (bpf_loop's callback
# context, test_cls_redirect's `buf->skb`) and loaded back: any 8-byte load may give it back.
CTX_IN_STRUCT = """\
r6 = r10
r6 += -16
*(u64 *)(r6 + 0) = r1
r3 = *(u64 *)(r6 + 0)
r2 = *(u32 *)(r3 + 76)
r4 = *(u32 *)(r3 + 80)
r5 = r2
r5 += 14
r0 = 0
if r5 > r4 goto +1
r0 = *(u8 *)(r2 + 0)
exit
"""


def test_no_zero_extension_of_a_context_loaded_back_from_memory():
    prog = Program.from_insns(assemble(CTX_IN_STRUCT))
    out = run_passes(prog, ["zext"], PassContext(prog_type="sched_cls")).insns
    moves = [x for x in out if x.code == 0xBC and x.dst == x.src]
    assert moves == [Insn(0xBC, 0, 0)]  # only the byte load's r0 (read by exit), never data / data_end


@pytest.mark.kernel
def test_zext_of_a_context_loaded_back_from_memory_loads():
    prog = Program.from_insns(assemble(CTX_IN_STRUCT))
    with load_program(prog, "sched_cls"):
        pass
    with load_program(run_passes(prog, ["zext"], PassContext(prog_type="sched_cls")), "sched_cls"):
        pass


def test_context_fields_that_stay_scalars_are_zero_extended():
    """skb->len (offset 0) read as 64 bits: zero-extended; xdp_md's offset 0 (data) is not, for an XDP program."""
    insns = assemble("r2 = *(u32 *)(r1 + 0)\nr0 = r2\nexit")
    out = run_passes(Program.from_insns(insns), ["zext"], PassContext(prog_type="sched_cls")).insns
    assert out[1] == Insn(0xBC, 2, 2)
    for ptype in ("xdp", None):  # no type known: any type's pointer fields count
        assert run_passes(Program.from_insns(insns), ["zext"], PassContext(prog_type=ptype)).insns == insns


@pytest.mark.kernel
def test_zero_extended_scalar_context_field_loads():
    prog = Program.from_insns(assemble("r2 = *(u32 *)(r1 + 0)\nr0 = r2\nexit"))
    out = run_passes(prog, ["zext"], PassContext(prog_type="sched_cls"))
    assert len(out.insns) == 4
    with load_program(out, "sched_cls") as a, load_program(prog, "sched_cls") as b:
        assert a.test_run(bytes(64)).retval == b.test_run(bytes(64)).retval == 64  # skb->len


def test_with_facts_zext_follows_zext_dst_exactly():
    insns = [Insn(0xB4, 1, 0, 0, 5), Insn(0xB4, 2, 0, 0, 6), Insn(0xBC, 0, 1), Insn(0x95)]
    pl = PatchList(Program.from_insns(insns))
    decided = [True, False, False, False]  # as if the verifier proved only w1's upper half read
    for node, z in zip(list(pl), decided):
        node.aux = InsnAux(seen=True, zext_dst=z, ptr_type=None)
    Zext().run(pl, PassContext())
    out = pl.linearize()
    assert [tuple(i) for i in out.insns] == [tuple(insns[0]), (0xBC, 1, 1, 0, 0)] + [tuple(i) for i in insns[1:]]


def test_facts_mark_context_loads():
    pl = PatchList(Program.from_insns(PKT))
    for node in pl:
        node.aux = InsnAux(seen=True, ptr_type=RegType.PTR_TO_CTX if node.insn.code == 0x61 else None)
    Zext().run(pl, PassContext())
    assert pl.linearize().to_bytes() == Program.from_insns(PKT).to_bytes()

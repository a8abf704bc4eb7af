"""The `kernel` pass: the verifier's rewrites from its facts, against this kernel's xlated output.

The corpus is the kernel's own verifier test programs (tools/testing/selftests/bpf/verifier/*.c,
see kernel_selftests.py): every one that needs no map fixups and that this kernel accepts is
loaded, its xlated instructions read, and `--pass kernel` must give the same instructions
(helper addresses and subprogram numbering aside).  The match rate and the classes of
mismatch are printed; the test holds the rate at what this pass reaches.
"""

from __future__ import annotations

import collections

import pytest

from bpfpatch import Insn, PatchList, Program
from bpfpatch.analysis.facts import InsnAux, RegType
from bpfpatch.errors import BpfPatchError, PatchError
from bpfpatch.isa import decode_slots, slot_rows
from bpfpatch.kernel import load_program
from bpfpatch.passes import PassContext, run_passes
from bpfpatch.passes.ctx_layout import member
from bpfpatch.passes.kernel import KernelPipeline
from kernel_selftests import comparable_rows, kernel_cases, linux_source

#: The share of rewritten kernel test programs `--pass kernel` must reproduce exactly.
MIN_MATCH_RATE = 0.99


def _xlated(prog: Program, ptype: str) -> list:
    with load_program(prog, ptype) as p:
        return slot_rows(decode_slots(p.xlated()))


def _ours(prog: Program, ptype: str) -> list:
    return comparable_rows(slot_rows(run_passes(prog, ["kernel"], PassContext(prog_type=ptype)).slots), xlated=False)


@pytest.mark.kernel
def test_kernel_selftest_programs_match_the_kernels_xlated_output(tmp_path_factory):
    if linux_source() is None:
        pytest.skip("no kernel source tree with tools/testing/selftests/bpf/verifier (apt-get install linux-source)")
    cases, left_out = kernel_cases(str(tmp_path_factory.mktemp("selftests")))
    rewritten = [c for c in cases if c.rewritten]
    assert len(rewritten) > 100, left_out
    outcome: collections.Counter = collections.Counter()
    for c in rewritten:
        try:
            ctx = PassContext(prog_type=c.test.prog_type, options={"kernel": {"analysis": {"maps": c.maps}}})
            got = comparable_rows(slot_rows(run_passes(c.program(), ["kernel"], ctx).slots), xlated=False)
        except BpfPatchError as exc:
            outcome[f"refused: {type(exc).__name__}: {str(exc).split('(')[0][:70]}"] += 1
            continue
        outcome["match" if got == comparable_rows(c.xlated) else f"differs ({c.test.file})"] += 1
    rate = outcome["match"] / len(rewritten)
    with_maps = [c for c in rewritten if c.maps]
    print(f"\nkernel test programs: {len(cases)} accepted, {len(rewritten)} rewritten by the kernel "
          f"({len(with_maps)} with maps), {outcome['match']} reproduced exactly ({rate:.1%}); left out: {left_out}")
    for what, n in outcome.most_common():
        print(f"  {n:4d}  {what}")
    assert rate >= MIN_MATCH_RATE, outcome


# Hand-made facts: the pass reads only what the verifier records.
def _with_facts(insns: list[Insn], ctx_at=(), field_size=None) -> PatchList:
    pl = PatchList(Program.from_insns(insns))
    for i, node in enumerate(pl):
        node.aux = InsnAux(seen=True, ptr_type=RegType.PTR_TO_CTX if i in ctx_at else None,
                           ctx_field_size=(field_size or {}).get(i))
    return pl


def test_sk_buff_len_becomes_the_kernels_field():
    pl = _with_facts([Insn(0x61, 0, 1, 0, 0), Insn(0x95)], ctx_at={0}, field_size={0: 4})
    KernelPipeline().run(pl, PassContext(prog_type="socket_filter"))
    off, _ = member("sk_buff.len")
    assert [tuple(i) for i in pl.linearize().insns] == [(0x61, 0, 1, off, 0), (0x95, 0, 0, 0, 0)]


def test_a_narrow_load_is_widened_shifted_and_masked():
    # u8 load of byte 1 of __sk_buff.mark (offset 9): load the word, >> 8, & 0xff.
    pl = _with_facts([Insn(0x71, 0, 1, 9, 0), Insn(0x95)], ctx_at={0}, field_size={0: 4})
    KernelPipeline().run(pl, PassContext(prog_type="sched_cls"))
    off, _ = member("sk_buff.mark")
    assert [tuple(i) for i in pl.linearize().insns] == [
        (0x61, 0, 1, off, 0), (0x74, 0, 0, 0, 8), (0x54, 0, 0, 0, 0xFF), (0x95, 0, 0, 0, 0)]


def test_xdp_data_is_a_64_bit_pointer_load():
    pl = _with_facts([Insn(0x61, 2, 1, 0, 0), Insn(0xB7, 0, 0, 0, 2), Insn(0x95)], ctx_at={0})
    KernelPipeline().run(pl, PassContext(prog_type="xdp"))
    assert tuple(pl.linearize().insns[0]) == (0x79, 2, 1, member("xdp_buff.data")[0], 0)


def test_unseen_code_goes_and_decided_branches_are_hard_wired():
    insns = [Insn(0xB7, 0, 0, 0, 1), Insn(0x15, 0, 0, 1, 1), Insn(0xB7, 0, 0, 0, 2), Insn(0x95)]
    pl = PatchList(Program.from_insns(insns))
    for node, seen in zip(pl, (True, True, False, True)):
        node.aux = InsnAux(seen=seen)
    KernelPipeline().run(pl, PassContext(prog_type="socket_filter"))
    assert [tuple(i) for i in pl.linearize().insns] == [(0xB7, 0, 0, 0, 1), (0x95, 0, 0, 0, 0)]


def test_the_pass_needs_a_program_type_and_refuses_unsupported_ones():
    prog = Program.from_insns([Insn(0xB7, 0, 0, 0, 0), Insn(0x95)])
    with pytest.raises(PatchError, match="program type"):
        run_passes(prog, ["kernel"])
    with pytest.raises(PatchError, match="not supported"):
        run_passes(prog, ["kernel"], PassContext(prog_type=0))


SKB_READS = [  # (name, __sk_buff offset, load size)
    ("len", 0, 4), ("pkt_type", 4, 4), ("mark", 8, 4), ("queue_mapping", 12, 4), ("protocol", 16, 4),
    ("vlan_present", 20, 4), ("vlan_tci", 24, 4), ("vlan_proto", 28, 4), ("priority", 32, 4),
    ("ingress_ifindex", 36, 4), ("ifindex", 40, 4), ("tc_index", 44, 4), ("cb[1]", 52, 4), ("hash", 68, 4),
    ("tc_classid", 72, 4), ("napi_id", 84, 4), ("wire_len", 160, 4), ("gso_segs", 164, 4), ("gso_size", 176, 4),
    ("tstamp", 152, 8), ("hwtstamp", 184, 8), ("mark byte 2", 10, 1), ("len half 1", 2, 2),
]
_SIZE = {1: 0x10, 2: 0x08, 4: 0x00, 8: 0x18}


@pytest.mark.kernel
@pytest.mark.parametrize("ptype", ["socket_filter", "sched_cls", "cgroup_skb"])
@pytest.mark.parametrize("name, off, size", SKB_READS, ids=[r[0] for r in SKB_READS])
def test_every_sk_buff_read_matches_the_kernel(ptype, name, off, size):
    for dst, src in ((0, 1), (2, 1), (1, 1)):
        prog = Program.from_insns([Insn(0xBF, 6, 1), Insn(0x61 | _SIZE[size] if size != 8 else 0x79, dst, src, off, 0),
                                   Insn(0xB7, 0, 0, 0, 0), Insn(0x95)])
        try:
            want = comparable_rows(_xlated(prog, ptype))
        except BpfPatchError:
            continue  # this program type may not read that field
        assert _ours(prog, ptype) == want, (name, dst, src)


SKB_WRITES = [("mark", 8), ("priority", 32), ("tc_index", 44), ("cb[0]", 48), ("tc_classid", 72),
              ("queue_mapping", 12), ("tstamp", 152)]


@pytest.mark.kernel
@pytest.mark.parametrize("name, off", SKB_WRITES, ids=[w[0] for w in SKB_WRITES])
def test_sk_buff_writes_match_the_kernel(name, off):
    for store in (Insn(0x63 if off != 152 else 0x7B, 1, 2, off, 0), Insn(0x62 if off != 152 else 0x7A, 1, 0, off, 7)):
        prog = Program.from_insns([Insn(0xB7, 2, 0, 0, 3), store, Insn(0xB7, 0, 0, 0, 0), Insn(0x95)])
        assert _ours(prog, "sched_cls") == comparable_rows(_xlated(prog, "sched_cls")), (name, store)


XDP_READS = [("data", 0), ("data_end", 4), ("data_meta", 8), ("ingress_ifindex", 12), ("rx_queue_index", 16)]


@pytest.mark.kernel
@pytest.mark.parametrize("name, off", XDP_READS, ids=[r[0] for r in XDP_READS])
def test_xdp_md_reads_match_the_kernel(name, off):
    prog = Program.from_insns([Insn(0x61, 2, 1, off, 0), Insn(0xB7, 0, 0, 0, 2), Insn(0x95)])
    assert _ours(prog, "xdp") == comparable_rows(_xlated(prog, "xdp"))


@pytest.mark.kernel
def test_direct_packet_write_in_tc_gets_the_unclone_prologue():
    prog = Program.from_insns([
        Insn(0x61, 2, 1, 76, 0), Insn(0x61, 3, 1, 80, 0), Insn(0xBF, 4, 2), Insn(0x07, 4, 0, 0, 8),
        Insn(0x2D, 4, 3, 1, 0), Insn(0x72, 2, 0, 0, 1), Insn(0xB7, 0, 0, 0, 0), Insn(0x95)])
    assert _ours(prog, "sched_cls") == comparable_rows(_xlated(prog, "sched_cls"))


@pytest.mark.kernel
def test_ld_abs_and_division_in_one_program():
    prog = Program.from_insns([Insn(0xBF, 6, 1), Insn(0x30, 0, 0, 0, 12), Insn(0xBF, 7, 0), Insn(0xB7, 3, 0, 0, 2),
                               Insn(0x50, 0, 3, 0, 0),
                               Insn(0x3F, 0, 7), Insn(0x9C, 0, 7), Insn(0x95)])
    for ptype in ("socket_filter", "sched_cls"):
        assert _ours(prog, ptype) == comparable_rows(_xlated(prog, ptype))


@pytest.mark.kernel
@pytest.mark.parametrize("size, off", [(1, 168), (2, 170), (4, 172), (8, 168), (8, 176), (8, 16)])
def test_perf_event_reads_match_the_kernel(size, off):
    """bpf_perf_event_data: sample_period narrow loads (a 4-byte mask is imm -1), addr, regs."""
    prog = Program.from_insns([Insn(0x61 | _SIZE[size] if size != 8 else 0x79, 0, 1, off, 0),
                               Insn(0xB7, 0, 0, 0, 0), Insn(0x95)])
    assert _ours(prog, "perf_event") == comparable_rows(_xlated(prog, "perf_event"))


@pytest.mark.parametrize("gen", ["live call chain", "dead-subprogram chain", "nested loops", "many subprograms"])
def test_the_analysis_run_before_the_list_changes_nothing(gen):
    # run_passes lets the first pass `prepare` on the program alone (the kernel pass analyzes it there,
    # before the list's columns exist); the program or the error is the one the list-first run gives
    from bpfpatch.adversarial import GENERATORS

    prog = GENERATORS[gen](60)
    opts = {"kernel": {"analysis": {"budget": 2_000}}}

    def outcome(first_prepare: bool):
        ctx = PassContext(prog_type="socket_filter", options=opts)
        try:
            if first_prepare:
                return run_passes(prog, ["kernel"], ctx).to_bytes()
            pl = PatchList(prog, kernel_internal=True)
            KernelPipeline().run(pl, ctx)
            return pl.linearize().to_bytes()
        except BpfPatchError as exc:
            return type(exc), str(exc)

    assert outcome(True) == outcome(False)
    if gen == "live call chain":  # 29 frames deep: refused, from `run` as before
        refused = outcome(True)
        assert isinstance(refused, tuple) and issubclass(refused[0], BpfPatchError) and "call" in refused[1], refused

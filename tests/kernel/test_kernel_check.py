"""`bpfpatch.kernel.check`: everything a test run shows is compared; verdicts say what was shown."""

from __future__ import annotations

import struct

import pytest

from bpfpatch import Program
from bpfpatch.errors import BpfPatchError
from bpfpatch.kernel.check import Relocated, Verdict, check
from bpfpatch.kernel.ctxlayout import layout_of
from bpfpatch.kernel.cover import Coverage, basic_blocks, live_in
from bpfpatch.kernel.libbpf import load_object
from bpfpatch.kernel.packets import harvest, shapes
from bpfpatch.passes import PassContext, available_passes, run_passes
from bpfpatch.progtype import ProgType
from check_mutants import JA_0, mutants
from conftest import PROGS, compile_bpf

pytestmark = pytest.mark.kernel

PROGRAMS = ("parse", "rewrite", "funcs", "maps", "ctx")


@pytest.fixture(scope="module")
def objs(objdir):
    return {name: compile_bpf(PROGS / "check" / f"{name}.c", objdir) for name in PROGRAMS + ("others", "refused")}


def _relocated(path, program=None) -> Relocated:
    with load_object(path) as obj:
        return Relocated.of(obj, program)


def _store_slot(raw: bytes, base_reg: int, off: int) -> int:
    for i in range(len(raw) // 8):
        code, regs, o, _ = struct.unpack_from("<BBhi", raw, 8 * i)
        if code & 7 in (2, 3) and regs & 0x0F == base_reg and o == off:
            return i
    raise AssertionError(f"no store to r{base_reg}+{off}")


def _drop(raw: bytes, slot: int) -> bytes:
    return raw[: 8 * slot] + JA_0 + raw[8 * slot + 8:]


@pytest.mark.parametrize("name", PROGRAMS)
def test_identity_no_difference_and_full_coverage(objs, name):
    # the default inputs whatever the load: the default 10 s ran 248 on a machine at load 12
    report = check(objs[name], objs[name], seconds=600)
    assert report.verdict is Verdict.NO_DIFFERENCE and report.exit_code == 0, report.lines()
    for r in report.results:
        assert r.inputs_run >= 1000
        assert r.blocks_total and r.blocks_covered >= r.blocks_total - 1, r.line()
        assert f"covering {r.blocks_covered} of {r.blocks_total} blocks" in r.line()


def test_dropped_ctx_store_is_a_ctx_out_difference(objs):
    rel = _relocated(objs["ctx"], "tc_ctx_writes")
    mark = _store_slot(rel.insns, 1, 8)  # skb->mark
    r = check(objs["ctx"], Relocated(_drop(rel.insns, mark), rel.maps), program="tc_ctx_writes").results[0]
    assert r.verdict is Verdict.DIFFERENT
    assert "ctx_out field mark (offset 8)" in r.difference["what"]
    assert r.difference["input"].startswith("#1 ")  # every input shows it: the first is named


def test_unreported_ctx_fields_are_not_differences(objs):
    # tc_index is written by the program but this kernel never reports it back: no difference
    # can be shown, and --help says so.
    rel = _relocated(objs["ctx"], "tc_ctx_writes")
    slot = _store_slot(rel.insns, 1, 44)
    r = check(objs["ctx"], Relocated(_drop(rel.insns, slot), rel.maps), program="tc_ctx_writes").results[0]
    assert r.verdict is Verdict.NO_DIFFERENCE
    assert "tc_index" in layout_of(ProgType.SCHED_CLS).describe()


def test_changed_map_key_and_per_cpu_values(objs):
    rel = _relocated(objs["parse"])
    # proto_count keys are stored to the stack before the lookup: change each one.
    found = []
    for m in mutants(rel.insns):
        if m.kind == "changed map key":
            r = check(objs["parse"], Relocated(m.insns, rel.maps)).results[0]
            found.append(r)
    # A key address moved to an unaligned slot is refused; every other changed key is seen.
    assert found and all(r.verdict in (Verdict.DIFFERENT, Verdict.REJECTED) for r in found), [r.line() for r in found]
    assert sum(r.verdict is Verdict.DIFFERENT for r in found) >= len(found) - 2
    assert any("map proto_count key" in r.difference["what"] and "cpu 0" in r.difference["what"] for r in found)


def test_global_data_and_hash_map_contents(objs):
    rel = _relocated(objs["maps"])
    bss = _store_slot(rel.insns, 1, 0)  # first store through a map value pointer: the counters
    r = check(objs["maps"], Relocated(_drop(rel.insns, bss), rel.maps)).results[0]
    assert r.verdict is Verdict.DIFFERENT and "map " in r.difference["what"]


def test_rodata_is_frozen_so_dead_settings_drop_code(objs):
    # rewrite.c compares with `const volatile` ports: libbpf freezes .rodata, the verifier folds
    # them, and harvesting reads them, so the port branch is reached.
    r = check(objs["rewrite"], objs["rewrite"]).results[0]
    assert r.verdict is Verdict.NO_DIFFERENCE and r.blocks_covered == r.blocks_total


def test_rejected_is_its_own_verdict(objs):
    report = check(objs["refused"], objs["refused"])
    assert report.verdict is Verdict.REJECTED and report.exit_code == 3
    assert "outside of the packet" in report.results[0].line()
    rel = _relocated(objs["parse"])
    bad = rel.insns[:8] + struct.pack("<BBhi", 0x71, 0x11, 4000, 0) + rel.insns[16:]  # r1 = *(u8 *)(r1 + 4000)
    r = check(objs["parse"], Relocated(bad, rel.maps)).results[0]
    assert r.verdict is Verdict.REJECTED and r.reason.startswith("the rewritten was refused")


def test_other_types_undecided_or_run_with_context(objs):
    report = check(objs["others"], objs["others"])
    by = {r.program: r for r in report.results}
    assert by["probe_open"].verdict is Verdict.UNDECIDED and "both load" in by["probe_open"].reason
    assert by["coin"].verdict is Verdict.UNDECIDED and "original itself" in by["coin"].reason
    assert by["raw_args"].verdict is Verdict.NO_DIFFERENCE and by["raw_args"].blocks_covered == by["raw_args"].blocks_total
    rel = _relocated(objs["others"], "raw_args")
    results = [check(objs["others"], Relocated(m.insns, rel.maps), program="raw_args").results[0]
               for m in mutants(rel.insns) if m.kind in ("flipped condition", "changed immediate")]
    assert results and all(r.verdict is Verdict.DIFFERENT for r in results), [r.line() for r in results]
    # `id == 59` changed to 60: only an input with arg1 = 59 or 60 shows it, and it is named.
    assert any("arg1=0x3b" in r.difference["decoded"] or "arg1=0x3c" in r.difference["decoded"] for r in results)


def test_flow_dissector_keys_and_syscall_context_are_compared(objs):
    report = check(objs["others"], objs["others"], program="dissect")
    assert report.verdict is Verdict.NO_DIFFERENCE, report.lines()
    rel = _relocated(objs["others"], "dissect")
    kinds = {}
    for m in mutants(rel.insns):
        if m.kind == "dropped store":
            kinds[m.slot] = check(objs["others"], Relocated(m.insns, rel.maps), program="dissect").results[0]
    assert kinds and all(r.verdict is Verdict.DIFFERENT for r in kinds.values())
    assert any("flow keys out differs at field thoff" in r.difference["what"] for r in kinds.values())
    # syscall programs: loaded sleepable (as libbpf does), the context written back is compared.
    assert check(objs["others"], objs["others"], program="sys_prog").verdict is Verdict.NO_DIFFERENCE
    rel = _relocated(objs["others"], "sys_prog")
    (drop,) = [m for m in mutants(rel.insns) if m.kind == "dropped store"]
    r = check(objs["others"], Relocated(drop.insns, rel.maps), program="sys_prog").results[0]
    assert r.verdict is Verdict.DIFFERENT and "ctx_out field ctx[1]" in r.difference["what"]


def test_user_inputs_and_skipped_runs(objs):
    pkts = [("short", bytes(5)), ("ok", dict(shapes())["eth/ipv4/udp"])]
    r = check(objs["parse"], objs["parse"], inputs=pkts).results[0]
    assert r.verdict is Verdict.NO_DIFFERENCE and r.inputs_run == 1 and r.inputs_skipped == 1
    assert "1 inputs refused by the kernel, skipped" in r.line()


@pytest.mark.parametrize("name", PROGRAMS)
def test_no_false_alarm_on_any_pass(objs, name):
    with load_object(objs[name]) as obj:
        progs = {p: (Relocated.of(obj, p), obj.programs[p].prog_type) for p in obj.programs}
    for pname, (rel, ptype) in progs.items():
        for names in [[p] for p in available_passes()] + [["div-guard", "dce", "blind"]]:
            try:
                ctx = PassContext(seed=1, aux_reg="auto", prog_type=ptype)
            except TypeError:  # a PassContext without prog_type
                ctx = PassContext(seed=1, aux_reg="auto")
            try:
                out = run_passes(Program.from_bytes(rel.insns, validate=False), names, ctx)
            except BpfPatchError:
                continue  # a pass that refuses the program (its type, say) wrote nothing to check
            r = check(objs[name], Relocated(out.to_bytes(), rel.maps), program=pname, seconds=3).results[0]
            # A pass whose output the kernel refuses is "rejected" (the pass's bug), never "different".
            assert r.verdict in (Verdict.NO_DIFFERENCE, Verdict.REJECTED), (pname, names, r.line())


def test_coverage_counters_follow_the_blocks(objs):
    with load_object(objs["parse"]) as obj:
        prog = obj.program()
        raw = prog.insns()
        leaders = basic_blocks(raw)
        assert leaders[0] == 0 and len(leaders) > 10
        live = live_in(raw)
        assert live[0] & 0b10 and not live[0] & 0b1100  # r1 (ctx) live at entry, r2/r3 not
        with Coverage.instrument(raw, lambda code: obj.load_insns(code, prog)) as cov:
            assert cov.counts and cov.blocks == len(leaders)
            cov.program.test_run(dict(shapes())["eth/ipv4/tcp"], struct.pack("<6I", 0, 62, 0, 0, 0, 0))
            once = cov.counts_now().copy()
            cov.program.test_run(dict(shapes())["eth/ipv4/tcp"], struct.pack("<6I", 0, 62, 0, 0, 0, 0))
            again = cov.counts_now()
            # The entry block ran twice; the second run found the port in the map, so its
            # path differs after that (the insert block ran once).
            assert once[0] == 1 and again[0] == 2 and (again >= once).all() and cov.hit() == set(again.nonzero()[0].tolist())


def test_harvest_finds_constants_and_reads(objs):
    with load_object(objs["parse"]) as obj:
        h = harvest(obj.program().insns())
    assert 53 in h.values and 22 in h.values  # the ports parse.c compares with
    assert (12, 1) in h.reads or (12, 2) in h.reads  # the ethertype


XDPFILT = "/usr/lib/x86_64-linux-gnu/bpf/xdpfilt_alw_tcp.o"  # xdp-tools' build, not written here


@pytest.mark.kernel
def test_explore_hands_out_the_inputs_check_runs():
    """`explore` is the check's own search, on the original alone: same inputs, same blocks reached."""
    import os

    from bpfpatch.kernel.check import explore

    if not os.path.exists(XDPFILT):
        pytest.skip("xdp-tools objects are not installed (Debian xdp-tools)")
    report = check(XDPFILT, XDPFILT, budget=600, seconds=120)
    found = explore(XDPFILT, budget=600, seconds=120)
    assert [(f.program, f.section) for f in found] == [(r.program, r.section) for r in report.results]
    for f, r in zip(found, report.results):
        assert len(f.inputs) == r.inputs_run + r.inputs_skipped == 600
        assert (f.blocks_covered, f.blocks_total) == (r.blocks_covered, r.blocks_total)
        assert f.blocks_covered > f.blocks_total // 2  # the search gets past the packet parser
    with pytest.raises(BpfPatchError, match="at least 1"):
        explore(XDPFILT, budget=0)


# --- maps neither program writes ------------------------------------------------------------------


@pytest.fixture(scope="module")
def bigmap(tmp_path_factory):
    """bigmap.c as it is, and storing 1 or 2 into the table entry it looks up."""
    out = {}
    for label, flags in (("reads", ()), ("writes1", ("-DWRITE_TABLE=1",)), ("writes2", ("-DWRITE_TABLE=2",))):
        out[label] = compile_bpf(PROGS / "check" / "bigmap.c", tmp_path_factory.mktemp(label), extra=flags)
    return out


@pytest.fixture
def analyzed_maps(monkeypatch):
    """Big maps from 128 KB on are worth the analysis (the table is 256 KB; the default is 16 MB)."""
    import bpfpatch.kernel.check as check_module

    monkeypatch.setattr(check_module, "ANALYZE_MAPS_BYTES", 1 << 17)


def test_a_big_map_neither_program_writes_is_not_listed(bigmap, analyzed_maps):
    r = check(bigmap["reads"], bigmap["reads"], budget=600).results[0]
    assert r.verdict is Verdict.NO_DIFFERENCE, r.line()
    assert "map table is not compared: neither program writes it (the verifier's analysis of both)" in r.not_compared
    assert not any("hits" in n for n in r.not_compared)  # the counter it writes is compared


@pytest.mark.parametrize("original, rewritten", [("reads", "writes1"), ("writes1", "reads"), ("writes1", "writes2")])
def test_a_big_map_either_program_writes_is_compared(bigmap, analyzed_maps, original, rewritten):
    # the packets' first word picks the entry; a store into it shows in the table (and in the verdict of
    # writes1 vs writes2 only through the table: both return XDP_DROP after their first store)
    r = check(bigmap[original], bigmap[rewritten], budget=600).results[0]
    assert r.verdict is Verdict.DIFFERENT, r.line()
    assert not any(n.startswith("map table") for n in r.not_compared)
    if original == "writes1" and rewritten == "writes2":
        assert "map table" in r.difference["what"]


def test_without_the_analysis_every_map_is_compared(bigmap):
    r = check(bigmap["reads"], bigmap["reads"], budget=300).results[0]  # 256 KB: below the default 16 MB
    assert r.verdict is Verdict.NO_DIFFERENCE and not any(n.startswith("map table") for n in r.not_compared)


@pytest.fixture(scope="module")
def queue_progs(tmp_path_factory):
    """queue.c as it is, and pushing the packet's first byte plus one onto its stack."""
    return {label: compile_bpf(PROGS / "check" / "queue.c", tmp_path_factory.mktemp(label), extra=flags)
            for label, flags in (("same", ()), ("plus1", ("-DPUSH_PLUS=1",)))}


def test_queue_and_stack_maps_are_compared_and_left_as_they_were(queue_progs):
    # get_next_key is EINVAL on a queue: check stopped at "map fifo: get_next_key" (bpf-examples nat64)
    r = check(queue_progs["same"], queue_progs["same"], budget=200).results[0]
    assert r.verdict is Verdict.NO_DIFFERENCE, r.line()
    assert not any(n.startswith(("map fifo", "map lifo")) for n in r.not_compared), r.not_compared
    assert any(n.startswith("map seen (bloom_filter) is not compared") for n in r.not_compared), r.not_compared
    with load_object(queue_progs["same"]) as obj:
        fifo, lifo = obj.map("fifo"), obj.map("lifo")
        for v in (7, 8, 9):
            fifo.update(b"", struct.pack("<I", v))
            lifo.update(b"", struct.pack("<I", v))
        assert fifo.dump() == (struct.pack("<3I", 0, 1, 2), struct.pack("<3I", 7, 8, 9), 3)
        assert lifo.dump() == (struct.pack("<3I", 0, 1, 2), struct.pack("<3I", 9, 8, 7), 3)
        assert fifo.popped() == [struct.pack("<I", v) for v in (7, 8, 9)]  # dumping left them in place


def test_a_difference_only_in_a_stack_is_found(queue_progs):
    r = check(queue_progs["same"], queue_progs["plus1"], budget=200).results[0]
    assert r.verdict is Verdict.DIFFERENT, r.line()
    assert "map lifo" in r.difference["what"], r.difference

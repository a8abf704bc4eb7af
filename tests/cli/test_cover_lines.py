"""`bpfpatch cover` line semantics: a line is hit iff an instruction of it ran, copies add up, tail calls cut blocks."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import PROGS, compile_bpf

from bpfpatch.cover.instrument import instrument_object
from bpfpatch.cover.report import line_coverage
from bpfpatch.cover.run import packet_inputs, run_coverage
from bpfpatch.elf.dwarfline import dwarf_lines, inline_copies

INLINED = PROGS / "cover" / "inlined.c"
TAILCALL = PROGS / "cover" / "tailcall.c"
XDPFILT = Path("/usr/lib/x86_64-linux-gnu/bpf/xdpfilt_alw_all.o")
pytestmark = pytest.mark.kernel


def _marks(src: Path) -> dict[str, int]:
    return {m.group(1): n for n, line in enumerate(src.read_text().splitlines(), 1)
            for m in [re.search(r"MARK (\w+)", line)] if m}


def _lines(obj: Path, packets: list[bytes], **kw) -> dict[int, int]:
    data, cmap = instrument_object(obj, **kw)
    res = run_coverage(obj, data, cmap, [(f"p{i}", p) for i, p in enumerate(packets)])
    assert res.differences == []
    files = line_coverage(cmap, res.counters)
    (fc,) = [f for name, f in files.items() if name.endswith(obj.stem.split("-")[0] + ".c")]
    return fc.lines


@pytest.fixture(scope="module")
def inlined(tmp_path_factory) -> Path:
    return compile_bpf(INLINED, tmp_path_factory.mktemp("inlined"))


def _pkt(a: int, b: int) -> bytes:
    return bytes([a, b]) + bytes(60)


def test_inlined_function_two_sites_only_one_runs(inlined):
    """weigh() is inlined at site_a and site_b; only site_a runs, never with w > 100."""
    m = _marks(INLINED)
    k = 3
    lines = _lines(inlined, [_pkt(1, 5)] * k + [_pkt(7, 5)] * 2)
    assert lines[m["site_a"]] == k and lines[m["weigh"]] == k
    assert lines[m["site_b"]] == 0
    # BTF line info gives the block after 'big += 1' (reached by the jump around it too) big's line:
    # with it, 'big' showed as hit 3 times; it never ran
    assert lines[m["big"]] == 0


def test_copies_of_an_inlined_line_add_up(inlined):
    """Both sites run: weigh's line counts every execution, whichever copy ran (gcov and llvm-cov do)."""
    m = _marks(INLINED)
    lines = _lines(inlined, [_pkt(1, 5)] * 3 + [_pkt(1, 99)] + [_pkt(2, 0xFF)] * 2)
    assert lines[m["site_a"]] == 4 and lines[m["site_b"]] == 2 and lines[m["big"]] == 1
    assert lines[m["weigh"]] == 4 + 2      # the old largest-copy rule said 4
    copies = inline_copies(inlined.read_bytes())["xdp"]
    assert len({c[3] for c in copies}) == 2  # two DW_TAG_inlined_subroutine copies of weigh


def _dwarfdump() -> str:
    exe = shutil.which("llvm-dwarfdump-19") or shutil.which("llvm-dwarfdump")
    if exe is None:
        pytest.skip("llvm-dwarfdump is not installed")
    return exe


def test_dwarf_lines_match_llvm_dwarfdump(inlined):
    """Our reading of .debug_line agrees with llvm-dwarfdump's on every instruction (line 0 included)."""
    exe = _dwarfdump()
    from bpfpatch.elf.dwarfline import slot_lines

    for obj in (inlined, XDPFILT):
        if not obj.is_file():
            continue
        theirs = _dwarfdump_lines(exe, obj)
        per = slot_lines(dwarf_lines(obj.read_bytes())["xdp"], max(theirs) + 1)
        assert {s: (w[1] if w else 0) for s, w in enumerate(per)} == theirs


def _dwarfdump_lines(exe: str, obj: Path) -> dict[int, int]:
    """Slot -> line (0: none) from ``llvm-dwarfdump --debug-line`` (objects with one code section)."""
    out = subprocess.run([exe, "--debug-line", str(obj)], capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        m = re.match(r"0x([0-9a-f]{16})\s+(\d+)\s+\d+\s+\d+\s+\d+\s+\d+\s+\d+\s*(.*)$", line)
        if m:
            rows.append((int(m.group(1), 16) // 8, int(m.group(2)), "end_sequence" in m.group(3)))
    got: dict[int, int] = {}
    for k, (slot, ln, end) in enumerate(rows):
        if end:
            continue
        for s in range(slot, rows[k + 1][0] if k + 1 < len(rows) else slot + 1):
            got[s] = ln
    return got


def test_xdpfilt_hit_lines_are_the_lines_of_instructions_that_ran():
    """xdp-tools' xdpfilt (not written here): hit lines = lines of instructions in blocks that ran.

    50 of its 124 blocks run on generated packets, yet all its lines are hit:
    the blocks that never run are the later copies of unrolled loops (VLAN
    tags, IPv6 extension headers) and the rest of macro lines whose first
    part ran, so every line of theirs has an instruction that ran elsewhere.
    """
    if not XDPFILT.is_file():
        pytest.skip("xdp-tools objects are not installed")
    exe = _dwarfdump()
    data, cmap = instrument_object(XDPFILT)
    res = run_coverage(XDPFILT, data, cmap, packet_inputs(256, 0))
    assert res.differences == []
    files = line_coverage(cmap, res.counters)
    starts = sorted([(c.slot, res.counters[c.index]) for c in cmap.counters if c.kind != "fallthrough"]
                    + [(d["slot"], 0) for d in cmap.unreachable])
    per_line = _dwarfdump_lines(exe, XDPFILT)
    ran_lines, idle_lines = set(), set()
    for k, (slot, n) in enumerate(starts):
        end = starts[k + 1][0] if k + 1 < len(starts) else max(per_line) + 1
        for s in range(slot, end):
            if per_line.get(s):
                (ran_lines if n else idle_lines).add(per_line[s])
    hit = {ln for f in files.values() for ln, n in f.lines.items() if n}
    unhit = {ln for f in files.values() for ln, n in f.lines.items() if not n}
    ran_blocks = sum(1 for c in cmap.counters if c.kind == "block" and res.counters[c.index])
    assert 0 < ran_blocks < len([c for c in cmap.counters if c.kind == "block"])
    assert hit == ran_lines  # line numbers of three files, compared as numbers: none collide here
    assert unhit == idle_lines - ran_lines == set()
    assert idle_lines  # lines with blocks that never ran exist; they ran in another block


@pytest.fixture(scope="module")
def tailcall(tmp_path_factory) -> Path:
    return compile_bpf(TAILCALL, tmp_path_factory.mktemp("tailcall"))


def test_tail_call_that_succeeds_does_not_fall_through(tailcall):
    """Packets with p[0] == 1 tail-call away (it succeeds, control never returns); the rest fall through.

    The block holding the tail call also holds the branch after it: its
    taken count was 'block count - fall-through', counting the packets that
    left through the tail call as taken.
    """
    from bpfpatch.kernel.libbpf import load_object

    m = _marks(TAILCALL)
    data, cmap = instrument_object(tailcall, edges=True)
    packets = [_pkt(1, 0)] * 4 + [_pkt(0, 1)] * 3 + [_pkt(0, 0)] * 2
    with load_object(data, name="inst") as obj:
        jmp = obj.map("jmp_table")
        target = obj.programs["target"]
        jmp.update((0).to_bytes(4, "little"), target.fd.to_bytes(4, "little"))
        prog = obj.programs["entry"]
        rets = [prog.test_run(p).retval for p in packets]
        raw = obj.map(".data.__bpfcover").lookup(bytes(4))
    assert rets == [7] * 4 + [2] * 3 + [1] * 2   # target returns 7
    import struct

    counters = list(struct.unpack_from(f"<{len(cmap.counters)}Q", raw))
    files = line_coverage(cmap, counters)
    (fc,) = [f for name, f in files.items() if name.endswith("tailcall.c")]
    assert fc.lines[m["call"]] == 4 + 3 + 2 and fc.lines[m["after"]] == 3 + 2
    assert fc.lines[m["odd"]] == 3
    (branch,) = [b for b in fc.branches if b[0] == m["after"]][:1] or [None]
    taken_fall = sorted(b[3] for b in fc.branches if b[0] == m["after"])
    assert branch is not None and taken_fall == [2, 3]   # 4 successful tail calls are in neither
    assert any(c.kind == "after_tail_call" for c in cmap.counters)


@pytest.mark.slow
def test_selftest_tc_and_xdp_corpus_sample_loads_and_behaves_the_same():
    """A seeded sample of the selftest tc/XDP objects (not written here): instrumented with --edges, every
    object whose original loads loads too and behaves the same (`tests/covercorpus.py` runs them all)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from covercorpus import CORPUS, cover_one, packet_objects, sample

    objs = sample(packet_objects(sorted(CORPUS.glob("*.o"))), 12, 17)
    if not objs:
        pytest.skip(f"no selftest objects under {CORPUS} (tests/objcorpus.py builds them)")
    rows = [cover_one(p, packets=32) for p in objs]
    loaded = [r for r in rows if r.original_loads]
    assert loaded, [r.error for r in rows]
    assert [r.name for r in loaded if not (r.instrumented_loads and r.same)] == []

"""The four examples in examples/ (a coverage instrumenter, a peephole optimizer, an object
rewrite, a big-program rewrite) run against the kernel."""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import pytest

from conftest import PROGS, compile_bpf

from bpfpatch import PatchList, Program
from bpfpatch.isa import build as b

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
pytestmark = pytest.mark.kernel


def _example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def branchy(tmp_path_factory) -> Path:
    return compile_bpf(PROGS / "cover" / "branchy.c", tmp_path_factory.mktemp("examples"))


def _runs(obj_bytes_or_path, packets):
    from bpfpatch.kernel.libbpf import load_object

    with load_object(obj_bytes_or_path) as obj:
        prog = obj.program("cover_me")
        return [prog.test_run(p).retval for p in packets], {n: m.lookup(bytes(4)) for n, m in obj.maps.items()}


PACKETS = [bytes([0x42, 0]) + bytes(60), bytes([0, 3]) + bytes(60), bytes([0, 4]) + bytes(60), bytes([0, 0xFF]) + bytes(12)]


def test_coverage_example_counts_blocks(branchy):
    data, n = _example("coverage").instrument(str(branchy), "xdp")
    retvals, maps = _runs(data, PACKETS * 5)
    assert retvals == _runs(branchy, PACKETS * 5)[0]
    counts = struct.unpack(f"<{n}Q", maps[".data.counts"])
    assert counts[0] == 20                                # the entry block: once per run
    assert sorted(counts, reverse=True)[:1] == [20] and 0 < min(c for c in counts if c) <= 5


def test_peephole_example_deletes_and_keeps_behaviour():
    from bpfpatch.kernel import Verdict, check_equivalence

    peep = _example("peephole").Peephole()
    prog = Program.from_insns([b.mov64_imm(0, 1), b.mov64_reg(1, 1), b.jeq_imm(0, 1, 1), b.add64_imm(0, 0),
                               b.ja(0), b.sub64_imm(0, 0), b.add64_imm(0, 4), b.exit_insn()])
    pl = PatchList(prog)
    peep.run(pl, None)
    out = pl.linearize()
    assert peep.deleted == 4 and len(out.slots) == 4
    assert check_equivalence(prog, out, "socket_filter", inputs=4).verdict is Verdict.EQUIVALENT


def test_peephole_runs_from_the_command_line(branchy, tmp_path, monkeypatch):
    from bpfpatch.cli import main

    monkeypatch.syspath_prepend(str(EXAMPLES))
    out = tmp_path / "p.o"
    assert main(["patch", str(branchy), "-o", str(out), "--pass", "peephole:Peephole"]) == 0
    assert _runs(out, PACKETS)[0] == _runs(branchy, PACKETS)[0]


def test_rewrite_object_example_adds_a_helper_call(branchy, tmp_path):
    from bpfpatch.elf import read_object

    ex = _example("rewrite_object")
    out = tmp_path / "r.o"
    ex.rewrite_object(str(branchy), str(out), [ex.CallAtEntry()])
    prog = read_object(out).programs["xdp"]
    assert b.call_helper("get_prandom_u32") in prog.insns[:4]
    assert _runs(out, PACKETS)[0] == _runs(branchy, PACKETS)[0]


def test_big_program_example_loads_and_computes():
    from bpfpatch.kernel import load_program

    ex = _example("big_program")
    n = 20_000
    out = ex.guard(ex.build(n))
    assert len(out.slots) == 3 + n + 3 * (n // 2)
    r0 = 1 << 20
    for k in range(n):
        r0 = r0 // 2 if k % 2 else r0 + 3
    with load_program(out, "socket_filter") as p:
        assert p.test_run(bytes(64)).retval == r0 & 0xFFFFFFFF

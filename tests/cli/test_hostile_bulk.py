"""`bpfpatch patch` takes the bulk form of a first pass that has one: same program, maps and object."""

from __future__ import annotations

import glob

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpfpatch import Insn, Program
from bpfpatch.cli import main
from bpfpatch.cli.demo_cmd import sample_path
from bpfpatch.cli.patch_cmd import rewrite
from bpfpatch.elf import read_object
from bpfpatch.passes import PassContext, run_passes

OBJECTS = [str(sample_path())] + sorted(glob.glob("/usr/lib/x86_64-linux-gnu/bpf/*.o"))[:8]


def maps(p: Program, n: int) -> tuple:
    """(idx_map, insn_map); None means identity (a program nothing changed)."""
    ident = np.arange(n)
    return (ident if p.idx_map is None else p.idx_map), (ident if p.insn_map is None else p.insn_map)


def same(a: Program, b: Program, source: Program) -> None:
    assert a == b
    for x, y in zip(maps(a, len(source.slots)), maps(b, len(source.slots))):
        assert np.array_equal(x, y)


@pytest.mark.parametrize("path", OBJECTS)
@pytest.mark.parametrize("names", [["div-guard"], ["div-guard", "dce"], ["div-guard", "blind"]])
def test_bulk_first_pass_gives_what_the_list_gives(path, names):
    for sec, prog in read_object(path).programs.items():
        ctx = dict(seed=3, aux_reg=11)
        same(rewrite(prog, names, PassContext(**ctx)), run_passes(prog, names, PassContext(**ctx)), prog)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([
    Insn(0x3F, 0, 1), Insn(0x3C, 2, 3), Insn(0x9F, 4, 1), Insn(0x9C, 0, 1), Insn(0x3F, 0, 1, 1),
    Insn(0x9C, 3, 2, 1), Insn(0x37, 0, 0, 1, -1), Insn(0xB7, 1, 0, 0, 5), Insn(0x05, 0, 0, 0),
    Insn(0x15, 1, 0, 0, 0)]), min_size=1, max_size=40), st.data())
def test_bulk_matches_the_list_on_generated_programs(body, data):
    # A conditional jump in front lands inside the body (on a division, often): its target must move too.
    target = data.draw(st.integers(0, len(body)))
    prog = Program.from_insns([Insn(0x15, 1, 0, target, 0)] + body + [Insn(0x95)])
    for aux in (11, "auto"):
        same(rewrite(prog, ["div-guard"], PassContext(aux_reg=aux)), run_passes(prog, ["div-guard"], PassContext(aux_reg=aux)), prog)


def test_cli_object_output_is_the_same_either_way(tmp_path, monkeypatch):
    import bpfpatch.cli.patch_cmd as patch_cmd

    out_bulk, out_list = tmp_path / "bulk.o", tmp_path / "list.o"
    assert main(["patch", str(sample_path()), "-o", str(out_bulk), "--pass", "div-guard,dce"]) == 0
    monkeypatch.setattr(patch_cmd, "BULK_FORMS", {})
    assert main(["patch", str(sample_path()), "-o", str(out_list), "--pass", "div-guard,dce"]) == 0
    assert out_bulk.read_bytes() == out_list.read_bytes()

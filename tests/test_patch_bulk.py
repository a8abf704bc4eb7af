"""The bulk form gives exactly what the one-node API gives for the same patches."""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bpfpatch import Insn, PatchError, PatchInsn, PatchList, Program
from bpfpatch.patch import SITE, Row, S, replace_sites
from progtools import programs, slots_rows

# A guard-shaped template: test the site's dst, a local jump over one row, then the site.
TEMPLATE = [Row(0x55, dst=S.dst, off=1), Row(0xB7, dst=S.dst, imm=lambda s: s["imm"] + 1), SITE]


def _node_api(prog: Program, sites: list[int]) -> Program:
    pl = PatchList(prog)
    for node in list(pl):
        if node.orig_idx in sites:
            i = node.insn
            # A SITE row keeps the site's jump target; in the node API that is an explicit reference.
            last = PatchInsn(i, target=node.target) if node.target is not None else i
            pl.replace(node, [Insn(0x55, i.dst, 0, 1, 0), Insn(0xB7, i.dst, 0, 0, i.imm + 1), last])
    return pl.linearize()


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_bulk_equals_node_api(data):
    prog = data.draw(programs())
    starts = prog.insn_slots().tolist()
    single = [s for s in starts if prog.slots["code"][s] != 0x18]
    sites = sorted(set(data.draw(st.lists(st.sampled_from(single), max_size=len(single)))))
    pl = PatchList(prog)
    assume(not any(n.target == n for n in pl if n.orig_idx in sites))  # self-loops: see replace_sites doc
    bulk = replace_sites(prog, [(np.array(sites, dtype=np.int64), TEMPLATE)])
    node = _node_api(prog, sites)
    assert slots_rows(bulk) == slots_rows(node)
    assert bulk.subprogs == node.subprogs
    assert bulk.func_info == node.func_info
    assert bulk.line_info == node.line_info
    assert bulk.aux == node.aux
    assert bulk.idx_map.tolist() == node.idx_map.tolist()
    assert bulk.insn_map.tolist() == node.insn_map.tolist()


def test_bulk_rejects_ld_imm64_sites_and_duplicates():
    prog = Program.from_insns([Insn(0x18, 1, 0, 0, 5), Insn(0xB7), Insn(0x95)])
    try:
        replace_sites(prog, [(np.array([0]), TEMPLATE)])
    except PatchError as e:
        assert "single-slot" in str(e)
    else:
        raise AssertionError("ld_imm64 site accepted")
    try:
        replace_sites(prog, [(np.array([2]), TEMPLATE), (np.array([2]), TEMPLATE)])
    except PatchError as e:
        assert "twice" in str(e)
    else:
        raise AssertionError("duplicate site accepted")


def test_bulk_kernel_div_guard_shape():
    """The kernel's 64-bit unsigned div guard as a bulk template (NOTES.md)."""
    prog = Program.from_insns([Insn(0xB7, 0, 0, 0, 7), Insn(0xB7, 1, 0, 0, 2), Insn(0x3F, 0, 1), Insn(0x95)])
    guard = [Row(0x55, dst=S.src, off=2), Row(0xAC, dst=S.dst, src=S.dst), Row(0x05, off=1), SITE]
    out = replace_sites(prog, [(np.array([2]), guard)])
    assert slots_rows(out) == [
        (0xB7, 0, 0, 0, 7), (0xB7, 1, 0, 0, 2),
        (0x55, 1, 0, 2, 0), (0xAC, 0, 0, 0, 0), (0x05, 0, 0, 1, 0), (0x3F, 0, 1, 0, 0),
        (0x95, 0, 0, 0, 0),
    ]

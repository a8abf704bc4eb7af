"""The bulk form gives exactly what the one-node API gives for the same patches."""

from __future__ import annotations

import numpy as np
import pytest
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
    assert bytes(bulk.byte_view()) == bulk.to_bytes() == node.to_bytes()  # what `patch` writes, uncopied


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


@pytest.mark.parametrize("consecutive", [True, False])
def test_a_function_giving_one_value_for_all_sites_beside_a_site_field(consecutive):
    """A template field from a function that returns one int (not one per site) beside ``S.<field>``: the
    value goes to every site (the in-place combine of the site fields refused the one-value array)."""
    code = [Insn(0xB7, 0, 0, 0, 7), Insn(0xB7, 1, 0, 0, 2), Insn(0x3F, 0, 1), Insn(0x3F, 1, 0), Insn(0x95)]
    if not consecutive:
        code.insert(3, Insn(0x07, 0, 0, 0, 1))
    prog = Program.from_insns(code)
    sites = np.flatnonzero(prog.slots["code"] == 0x3F)
    cases = [(lambda s: 3, S.dst, [(0xBF, 3, 0, 0, 0), (0xBF, 3, 1, 0, 0)]),  # r3 = the site's dst
             (S.src, lambda s: 3, [(0xBF, 1, 3, 0, 0), (0xBF, 0, 3, 0, 0)])]  # the site's src = r3
    for dst, src, want in cases:
        out = slots_rows(replace_sites(prog, [(sites, [Row(0xBF, dst=dst, src=src), SITE])]))
        assert [row for row in out if row[0] == 0xBF] == want


def _instantiate(template, node, i):
    """The patch `PatchList.replace_rows` means for one site, as plain replace items."""
    insn = node.insn
    own = {"code": insn.code, "dst": insn.dst, "src": insn.src, "off": insn.off, "imm": insn.imm}
    items = []
    for row in template:
        if row is SITE:
            items.append(PatchInsn(insn, target=node.target) if node.target is not None else insn)
            continue
        vals = {}
        for f in ("code", "dst", "src", "off", "imm"):
            v = getattr(row, f)
            vals[f] = int(v[i]) if isinstance(v, np.ndarray) else own[v.name] if callable(v) else v
        new = Insn(vals["code"], vals["dst"], vals["src"], vals["off"], vals["imm"])
        items.append(PatchInsn(new, target=node.target) if row.to_site_target else new)
    return items


def _templates(m: int, rng: np.random.Generator):
    rnd = rng.integers(-(1 << 31), 1 << 31, size=m, dtype=np.int64)
    return [
        # the kernel's division guard: local jumps to the site row
        [Row(0x55, dst=S.src, off=2), Row(0xAC, dst=S.dst, src=S.dst), Row(0x05, off=1), SITE],
        # blinding with per-site random halves, the site rewritten last
        [Row(0xB7, dst=11, imm=rnd), Row(0xA7, dst=11, imm=rnd), Row(0x0F, dst=S.dst, src=11)],
        # a jump one past the template (the node after the site), the site first
        [SITE, Row(0x05, off=1), Row(0xB7, dst=S.dst, imm=7)],
        # in place
        [Row(0xB7, dst=S.dst, imm=rnd)],
    ]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_replace_rows_matches_replace_one_at_a_time(data):
    """`PatchList.replace_rows` equals `replace` of the instantiated patch at every site, in list order."""
    prog = data.draw(programs())
    fast, slow = PatchList(prog), PatchList(prog, kernel_internal=True)  # templates may use AX (r11)
    nodes = [n for n in fast if n.insn.code != 0x18]
    assume(nodes)
    sites = sorted(data.draw(st.lists(st.sampled_from(nodes), unique_by=lambda n: n._id, min_size=1)), key=lambda n: n._id)
    rng = np.random.default_rng(data.draw(st.integers(0, 1 << 16)))
    which = data.draw(st.integers(0, 3))
    template = _templates(len(sites), rng)[which]
    try:
        fast.replace_rows(np.array([n._id for n in sites]), template)
    except PatchError:
        return  # e.g. a jump past the end at the last instruction; checked below
    by_id = {n._id: n for n in slow}
    for i, node in enumerate(sites):
        slow.replace(by_id[node._id], _instantiate(template, by_id[node._id], i))
    a, b = fast.linearize(), slow.linearize()
    assert slots_rows(a) == slots_rows(b)
    assert (a.subprogs, a.func_info, a.line_info, a.aux) == (b.subprogs, b.func_info, b.line_info, b.aux)


def test_replace_rows_refuses_bad_input():
    prog = Program.from_insns([Insn(0xB7, 0, 0, 0, 1), Insn(0x95)])
    pl = PatchList(prog)
    with pytest.raises(PatchError, match="past the end"):
        pl.replace_rows(np.array([2]), [SITE, Row(0x05, off=0)])
    with pytest.raises(PatchError, match="twice"):
        pl.replace_rows(np.array([1, 1]), [Row(0x07, dst=S.dst, imm=1), SITE])
    with pytest.raises(PatchError, match="not a jump"):
        pl.replace_rows(np.array([1]), [Row(0x05, to_site_target=True), SITE])
    with pytest.raises(PatchError, match="leaves the template"):
        pl.replace_rows(np.array([1]), [Row(0x05, off=5), SITE])
    assert pl.linearize().to_bytes() == prog.to_bytes()  # every refusal left the list untouched


@pytest.mark.parametrize("field", [dict(dst=12), dict(src=16), dict(off=-40000), dict(off=1 << 15),
                                   dict(imm=1 << 40), dict(imm=-(1 << 31) - 1), dict(imm=1.0), dict(dst="r1")])
def test_template_constants_that_do_not_fit_are_refused(field):
    with pytest.raises(PatchError, match="template row field"):
        Row(0xB7, **field)


def test_per_site_values_that_do_not_fit_are_refused_and_change_nothing():
    prog = Program.from_insns([Insn(0xB7, 0, 0, 0, 1), Insn(0xB7, 1, 0, 0, 2), Insn(0x95)])
    pl = PatchList(prog)
    before = pl.linearize().to_bytes()
    ids = np.array([n.id for n in list(pl)[:2]])
    with pytest.raises(PatchError, match="imm=4294967296"):
        pl.replace_rows(ids, [Row(0x07, dst=S.dst, imm=np.array([1, 1 << 32])), SITE])
    with pytest.raises(PatchError, match="not integers"):
        pl.replace_rows(ids, [Row(0x07, dst=S.dst, imm=np.array([1.0, 2.0])), SITE])
    assert pl.linearize().to_bytes() == before
    # In range (AX included, imm as its unsigned spelling), the same template applies.
    pl.replace_rows(ids, [Row(0x07, dst=S.dst, imm=np.array([1, 0xFFFFFFFF])), SITE])
    assert len(pl.linearize().insns) == 5


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_consecutive_sites_laid_out_as_blocks_equal_the_scattered_layout(data):
    """`CONSECUTIVE_BLOCKS` (runs of consecutive sites written as strided columns) against the scattered writes."""
    from bpfpatch.patch import bulk

    prog = data.draw(programs())
    single = [s for s in prog.insn_slots().tolist() if prog.slots["code"][s] != 0x18]
    lo = data.draw(st.integers(0, len(single)))
    hi = data.draw(st.integers(lo, len(single)))
    extra = data.draw(st.lists(st.sampled_from(single), max_size=4)) if single else []
    sites = np.array(sorted(set(single[lo:hi]) | set(extra)), dtype=np.int64)
    jumps = bool(len(sites)) and all(slots_rows(prog)[s][0] in (0x05, 0x15, 0x55) for s in sites.tolist())
    templates = [TEMPLATE, [Row(0x55, dst=S.src, off=2), Row(0xAC, dst=S.dst, src=S.dst), Row(0x05, off=1), SITE],
                 [SITE, Row(0x05, off=1), Row(0xB7, dst=S.dst, imm=7)]]
    if jumps:
        templates.append([Row(0x05, to_site_target=True), SITE])
    template = data.draw(st.sampled_from(templates))
    chunk, blocks = bulk._CHUNK, bulk.CONSECUTIVE_BLOCKS
    results = []
    try:
        bulk._CHUNK = data.draw(st.sampled_from([2, 3, 5, 1 << 16]))
        for on in (True, False):
            bulk.CONSECUTIVE_BLOCKS = on
            try:
                results.append(slots_rows(replace_sites(prog, [(sites, template)])))
            except PatchError as e:
                results.append(str(e))
    finally:
        bulk._CHUNK, bulk.CONSECUTIVE_BLOCKS = chunk, blocks
    assert results[0] == results[1]

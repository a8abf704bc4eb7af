"""One context table (bpfpatch.ctxstructs) under the analysis and the test runs; the running kernel's layout handed
to the analysis from above (its BTF), never imported by it."""

from __future__ import annotations

import pytest

from bpfpatch import Program
from bpfpatch.analysis import ctxlayout as actx
from bpfpatch.analysis.facts import RegType
from bpfpatch.analysis.verifier import analyze
from bpfpatch.asm import assemble
from bpfpatch.btf.vmlinux import kernel_types
from bpfpatch.ctxstructs import CTX_STRUCTS, SK_BUFF, XDP_MD, CtxStruct, fields
from bpfpatch.kernel import ctxlayout as kctx
from bpfpatch.passes import ctx_layout as pctx
from bpfpatch.progtype import ProgType

needs_btf = pytest.mark.skipif(not kctx.VMLINUX_BTF.exists(), reason="no /sys/kernel/btf/vmlinux on this machine")

XDP_LOADS = """
r2 = *(u32 *)(r1 + 0)
r3 = *(u32 *)(r1 + 4)
r0 = 2
exit
"""


@pytest.fixture
def no_providers():
    yield
    actx.set_layout_provider(None)
    pctx.set_layout_provider(None)


def test_both_layers_read_one_table():
    assert kctx.SK_BUFF_FIELDS is SK_BUFF.fields and kctx.XDP_MD_FIELDS is XDP_MD.fields
    for ptype, layout in actx.UAPI_LAYOUTS.items():
        struct = CTX_STRUCTS[ptype]
        assert (layout.struct, layout.size, layout.fields) == (struct.name, struct.size, struct.fields)
    for ptype, run in kctx.LAYOUTS.items():
        if ptype in CTX_STRUCTS and run.fields:
            assert run.fields is CTX_STRUCTS[ptype].fields or ptype == ProgType.FLOW_DISSECTOR
    # every pointer field the analysis knows is a field of the structure
    for layout in actx.UAPI_LAYOUTS.values():
        assert all(layout.field_at(off).offset == off for off in layout.pointers)


def test_the_analysis_takes_the_layout_it_is_handed(no_providers):
    prog = Program.from_insns(assemble(XDP_LOADS))
    a = analyze(prog, "xdp")
    assert [a.aux[0].ptr_type, a.aux[1].ptr_type] == [RegType.PTR_TO_CTX] * 2
    uapi = [s.regs[2].type for s in a.aux[2].states], [s.regs[3].type for s in a.aux[2].states]
    assert uapi == ([RegType.PTR_TO_PACKET], [RegType.PTR_TO_PACKET_END])
    # A kernel whose xdp_md had data_end first: the decisions follow the names to the new offsets.
    swapped = CtxStruct("xdp_md", 24, fields(("data_end", 0, 4), ("data", 4, 4), *[(f.name, f.offset, 4) for f in XDP_MD.fields[2:]]))
    moved = actx.with_struct(actx.uapi_layout(ProgType.XDP), swapped)
    assert moved.pointers[4][0] is RegType.PTR_TO_PACKET and moved.pointers[0][0] is RegType.PTR_TO_PACKET_END
    actx.set_layout_provider(lambda ptype: moved if ptype == ProgType.XDP else None)
    b = analyze(prog, "xdp")
    assert [s.regs[2].type for s in b.aux[2].states] == [RegType.PTR_TO_PACKET_END]
    assert [s.regs[3].type for s in b.aux[2].states] == [RegType.PTR_TO_PACKET]
    # the per-call layout still wins, and a provider that fails leaves the uapi table
    c = analyze(prog, "xdp", ctx_layout=actx.uapi_layout(ProgType.XDP))
    assert [s.regs[2].type for s in c.aux[2].states] == [RegType.PTR_TO_PACKET]
    actx.set_layout_provider(lambda ptype: 1 // 0)
    assert actx.layout_for(ProgType.XDP) is actx.uapi_layout(ProgType.XDP)


@needs_btf
def test_the_running_kernel_layouts_keep_every_uapi_decision(no_providers):
    layouts = kctx.btf_ctx_layouts(kctx.kernel_btf())
    assert set(layouts) == set(actx.UAPI_LAYOUTS)
    assert kctx.btf_ctx_layouts(kernel_types()) == layouts  # the one-pass index reads the same structures
    for ptype, uapi in actx.UAPI_LAYOUTS.items():
        got = layouts[ptype]
        assert got.size >= uapi.size and got.struct == uapi.struct
        # the same pointer fields, by name, at this kernel's offsets
        names = {uapi.field_at(o).name: v for o, v in uapi.pointers.items()}
        assert {got.field_at(o).name: v for o, v in got.pointers.items()} == names
        assert len(got.denied) == len(uapi.denied)
    skb = layouts[ProgType.SCHED_CLS]
    assert skb.field_at(50).name == "cb[0]" and skb.field_at(145).name == "flow_keys"
    assert kctx.install_kernel_layouts() is True
    assert actx.layout_for(ProgType.XDP) == layouts[ProgType.XDP]
    assert pctx.member("sk_buff.len") == pctx.layout_from_btf(kctx.kernel_btf())["sk_buff.len"]

"""elf/addmap.py: a BTF-defined map and global data added to objects, referenced by new instructions."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from conftest import PROGS, compile_bpf

from bpfpatch import PatchList
from bpfpatch.analysis.cfg import FlowGraph
from bpfpatch.elf import read_object
from bpfpatch.elf.addmap import ObjectEditor
from bpfpatch.elf.writer import build_object
from bpfpatch.errors import ElfError
from bpfpatch.isa import Size
from bpfpatch.isa import build as b
from bpfpatch.patch import PatchInsn

XDPFILT = Path("/usr/lib/x86_64-linux-gnu/bpf/xdpfilt_alw_all.o")
pytestmark = pytest.mark.kernel


def _count_runs_in_a_new_map(path: Path, section: str) -> bytes:
    """At the entry of `section`: counts[0] += 1 through map_lookup_elem on a map added to .maps."""
    obj = read_object(path)
    pl = PatchList(obj.programs[section])
    g = FlowGraph(pl)
    first = g.nodes[0]
    (keep,) = g.free_registers(first, 1)
    (slot,) = g.free_stack_slots(0, 1)
    pl.prepend(first, [
        b.mov64_reg(keep, 1),                                  # the context survives the call in r9
        b.st_mem(Size.W, 10, slot, 0),                         # key = 0
        PatchInsn(b.ld_imm64(1, 0), aux="map"),               # r1 = &added (relocated)
        b.mov64_reg(2, 10), b.add64_imm(2, slot),
        b.call_helper("map_lookup_elem"),
        b.jeq_imm(0, 0, 2),
        b.mov64_imm(1, 1), b.atomic_add(Size.DW, 0, 1, 0),
        b.mov64_reg(1, keep),
    ])
    new = pl.linearize()
    ed = ObjectEditor(build_object(obj, {section: new}))
    ed.add_map("added", 2, 4, 8, 4)                            # BPF_MAP_TYPE_ARRAY, u32 -> u64, 4 entries
    ed.add_relocations(section, [s for s, a in enumerate(new.aux or []) if a == "map"], "added")
    return ed.to_bytes()


@pytest.mark.parametrize("which", ["fixture (no .maps)", "xdp-tools (has .maps)"])
def test_an_added_map_is_created_by_libbpf_and_counts(which, tmp_path):
    from bpfpatch.kernel.libbpf import load_object

    if which.startswith("fixture"):
        path, section, prog = compile_bpf(PROGS / "cover" / "branchy.c", tmp_path), "xdp", "cover_me"
    else:
        if not XDPFILT.is_file():
            pytest.skip("xdp-tools objects are not installed")
        path, section, prog = XDPFILT, "xdp", "xdpfilt_alw_all"
    data = _count_runs_in_a_new_map(path, section)
    assert "added" in read_object(data).maps                  # our BTF reader sees the map definition
    assert read_object(data).maps["added"]["max_entries"] == 4
    pkt = bytes([0, 3]) + bytes(62)
    with load_object(data) as new, load_object(path) as old:
        for _ in range(6):
            assert new.program(prog).test_run(pkt).retval == old.program(prog).test_run(pkt).retval
        m = new.map("added")
        assert struct.unpack("<Q", m.lookup(bytes(4)))[0] == 6
        if which.startswith("xdp"):  # the object's own maps are still there and used
            assert {"xdp_stats_map", "filter_ports", "added"} <= set(new.maps)


def test_global_data_and_refusals(tmp_path):
    path = compile_bpf(PROGS / "cover" / "branchy.c", tmp_path)
    ed = ObjectEditor(path.read_bytes())
    ed.add_data("scratch", 64, initial=b"\x01\x02")
    with pytest.raises(ElfError, match="already has"):
        ed.add_data("scratch", 64)
    with pytest.raises(ElfError, match="multiple of 8"):
        ed.add_data("odd", 12)
    with pytest.raises(ElfError, match="not an ld_imm64"):
        ed.add_relocations("xdp", [1], "scratch")
    with pytest.raises(ElfError, match="no symbol"):
        ed.add_relocations("xdp", [], "nosuch")
    obj = read_object(ed.to_bytes())
    assert obj.data_sections[".data.scratch"][:3] == b"\x01\x02\x00"
    assert obj.btf is not None and obj.btf.datasec(".data.scratch") is not None
    with pytest.raises(ElfError):
        ObjectEditor(b"\x7fELF garbage")

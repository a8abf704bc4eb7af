"""Objects another project built: cilium/ebpf's test objects, as Debian ships them
(golang-github-cilium-ebpf-dev): clang 7, 9 and 14 output, each in both byte orders, legacy
``maps`` sections (``struct bpf_map_def`` and iproute2's ``struct bpf_elf_map``) beside BTF maps.

- Every little-endian object comes back byte for byte (no pass, and through a patch list).
- Every big-endian object reads to the same instructions as its little-endian twin, comes back
  byte for byte, and its rewrite is its twin's rewrite in the other byte order (the same
  instructions, BTF records, symbols and relocations; the same llvm-objdump listing).
- Legacy map definitions are read as the C source declares them, so a program that uses them
  links (libbpf 1.x refuses such objects; cilium/ebpf and iproute2 load them).
- In the kernel: every linked program that loads, loads after each pass and behaves the same
  (`check_equivalence`, fresh maps for each side), whatever loader the object was meant for.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bpfpatch.cli import main
from bpfpatch.elf import read_object
from bpfpatch.elf.rewrite import rewrite_object
from bpfpatch.errors import BpfPatchError, ElfError
from bpfpatch.kernel.equiv import Verdict, check_equivalence, with_fresh_maps
from bpfpatch.kernel.loader import load_program
from bpfpatch.passes import PassContext, run_passes
from bpfpatch.progtype import UnknownProgType, prog_type_of
from conftest import PROGS, compile_bpf
from objcorpus import loads, round_trip

PACKAGE = "golang-github-cilium-ebpf-dev"
ROOT = Path("/usr/share/gocode/src/github.com/cilium/ebpf")
LITTLE = sorted(p for p in ROOT.rglob("*-el.elf") if not p.is_symlink()) if ROOT.is_dir() else []
BIG = [p.with_name(p.name.replace("-el.elf", "-eb.elf")) for p in LITTLE]
#: Objects whose two byte orders compile to different immediates on purpose (its CO-RE read test's constants).
ENDIAN_CONSTANTS = {"relocs_read-el.elf"}
PASS_SETS = (("dce",), ("div-guard",), ("zext",), ("blind",), ("dce", "div-guard", "zext", "blind"))

pytestmark = pytest.mark.skipif(not LITTLE, reason=f"cilium/ebpf's test objects are not installed (apt-get install {PACKAGE})")


@pytest.mark.parametrize("path", LITTLE, ids=lambda p: p.name)
def test_little_endian_objects_come_back_byte_for_byte(path):
    data = path.read_bytes()
    assert rewrite_object(data, None, []) == data
    assert round_trip(path) == (True, "")


def _fields(prog, with_imm: bool) -> list[tuple]:
    return [(i.code, i.dst, i.src, i.off) + ((i.imm,) if with_imm else ()) for i in prog.insns]


@pytest.mark.parametrize("little", LITTLE, ids=lambda p: p.name.replace("-el.elf", ""))
def test_big_endian_twin_reads_to_the_same_instructions(little):
    a, b = read_object(little.read_bytes()), read_object(little.with_name(little.name.replace("-el.elf", "-eb.elf")).read_bytes())
    assert (a.byteorder, b.byteorder) == ("little", "big")
    assert list(a.programs) == list(b.programs)
    assert a.maps == b.maps
    for sec in a.programs:
        with_imm = little.name not in ENDIAN_CONSTANTS
        assert _fields(a.programs[sec], with_imm) == _fields(b.programs[sec], with_imm), sec


@pytest.mark.parametrize("path", BIG, ids=lambda p: p.name)
def test_big_endian_objects_come_back_byte_for_byte(path):
    data = path.read_bytes()
    assert rewrite_object(data, None, []) == data
    assert round_trip(path) == (True, "")


def _view(data: bytes) -> dict[str, tuple]:
    """Per program section of an object: what a loader reads of it (instructions, BTF records, symbols, relocations)."""
    obj = read_object(data)
    return {sec: (p.insns, p.func_info, p.line_info, p.core_relos, list(p.meta["symbols"]), list(p.meta["relocations"]))
            for sec, p in obj.programs.items()}


def _objdump(data: bytes, tmp_path: Path, name: str) -> list[str]:
    path = tmp_path / name
    path.write_bytes(data)
    out = subprocess.run(["llvm-objdump", "-dr", "--no-show-raw-insn", str(path)], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()[2:]  # past the file name and format lines


@pytest.mark.parametrize("little", [p for p in LITTLE if p.name not in ENDIAN_CONSTANTS], ids=lambda p: p.name.replace("-el.elf", ""))
def test_a_big_endian_rewrite_is_the_little_endian_rewrite_in_the_other_byte_order(little, tmp_path):
    big = little.with_name(little.name.replace("-el.elf", "-eb.elf"))
    for passes in PASS_SETS:
        le = rewrite_object(little.read_bytes(), None, list(passes), ctx=PassContext(seed=1, aux_reg="auto"))
        be = rewrite_object(big.read_bytes(), None, list(passes), ctx=PassContext(seed=1, aux_reg="auto"))
        assert read_object(be).byteorder == "big"
        assert _view(be) == _view(le), passes
    if shutil.which("llvm-objdump"):  # LLVM's own reading of both: the same listing, relocations included
        assert _objdump(be, tmp_path, "be.o") == _objdump(le, tmp_path, "le.o")


def test_the_command_line_rewrites_a_big_endian_object(tmp_path, capsys):
    big = ROOT / "testdata/loader-clang-14-eb.elf"
    out = tmp_path / "out.o"
    assert main(["patch", str(big), "-o", str(out), "--pass", "div-guard", "--pass", "blind"]) == 0
    assert out.read_bytes()[5] == 2  # EI_DATA: ELFDATA2MSB, as it came in
    assert main(["disasm", str(out)]) == 0
    assert "exit" in capsys.readouterr().out


def test_legacy_map_definitions_are_read_as_declared():
    hash_map = {"map_type": 1, "key_size": 4, "value_size": 8}  # BPF_MAP_TYPE_HASH, u32 -> u64
    # testdata/loader.c (clang 7 puts every map in the legacy section): bpf_map_def, BPF_F_NO_PREALLOC on one
    maps = read_object((ROOT / "testdata/loader-clang-7-el.elf").read_bytes()).maps
    assert maps["hash_map"] == {**hash_map, "max_entries": 1, "flags": 1}
    assert maps["hash_map2"] == {**hash_map, "max_entries": 2, "flags": 0}
    assert maps["array_of_hash_map"] == {"map_type": 12, "key_size": 4, "value_size": 0, "max_entries": 2, "flags": 0}
    # iproute2_map_compat.c: struct bpf_elf_map (size_key, size_value, max_elem, then id, pinning, ...)
    maps = read_object((ROOT / "testdata/iproute2_map_compat-el.elf").read_bytes()).maps
    assert maps == {"hash_map": {**hash_map, "max_entries": 2, "flags": 0}}
    # and a BTF map of programs (__array(values, ...)) holds 4-byte program ids, as libbpf creates it
    maps = read_object((ROOT / "testdata/btf_map_init-el.elf").read_bytes()).maps
    assert maps["prog_array_init"]["value_size"] == 4 and maps["outer_map_init"]["value_size"] == 4


def test_a_legacy_map_definition_cut_short_is_refused_with_its_place():
    data = bytearray((ROOT / "testdata/iproute2_map_compat-el.elf").read_bytes())
    obj = read_object(bytes(data))
    assert obj.maps
    # shrink the symbol's size to 12 bytes: fewer than type, key, value and max entries
    from elftools.elf.elffile import ELFFile
    import io
    import struct

    elf = ELFFile(io.BytesIO(bytes(data)))
    symtab = elf.get_section_by_name(".symtab")
    for k, sym in enumerate(symtab.iter_symbols()):
        if sym.name == "hash_map":
            struct.pack_into("<Q", data, symtab["sh_offset"] + k * symtab["sh_entsize"] + 16, 12)
    with pytest.raises(ElfError, match="hash_map") as exc:
        read_object(bytes(data))
    assert exc.value.section == "maps"


def _linked_programs(path: Path):
    obj = read_object(path.read_bytes())
    for sec in obj.programs:
        try:
            ptype = prog_type_of(sec)
            prog = obj.linked_program(sec)
        except (UnknownProgType, BpfPatchError):
            continue  # a subprogram section, or a relocation only cilium's loader resolves
        yield sec, ptype, prog


@pytest.mark.kernel
@pytest.mark.parametrize("path", LITTLE, ids=lambda p: p.name)
def test_every_pass_keeps_a_loading_program_loading_and_the_same(path):
    tried = 0
    for sec, ptype, prog in _linked_programs(path):
        raw, _maps = with_fresh_maps(prog)
        try:
            with load_program(raw, ptype, license=prog.meta.get("license") or "GPL"):
                pass
        except BpfPatchError:
            continue  # refused here too (e.g. a GPL-only helper under a non-GPL license)
        for passes in PASS_SETS:
            out = run_passes(prog, list(passes), PassContext(prog_type=ptype, seed=1, aux_reg="auto"))
            report = check_equivalence(prog, out, ptype)
            assert report.verdict is not Verdict.DIFFERENT, (sec, passes, report.reason)
            if report.verdict is Verdict.UNDECIDED:
                assert "cannot be test-run" in report.reason, (sec, passes, report.reason)
        tried += 1
    if not tried:
        pytest.skip(f"{path.name}: no program of it links and loads on its own here")


@pytest.fixture(scope="module")
def legacy_object(tmp_path_factory) -> Path:
    """tests/progs/elf/legacy_maps.c: a socket filter on two maps of a legacy ``maps`` section."""
    return compile_bpf(PROGS / "elf" / "legacy_maps.c", tmp_path_factory.mktemp("legacy"))


def test_a_program_on_legacy_maps_links_with_them(legacy_object):
    prog = read_object(legacy_object.read_bytes()).linked_program("socket")
    specs = prog.meta["map_specs"]
    assert (specs["counts"].map_type, specs["counts"].value_size, specs["counts"].max_entries) == (2, 8, 4)
    assert (specs["seen"].map_type, specs["seen"].flags) == (1, 1)  # BPF_F_NO_PREALLOC
    assert sorted(name for name, _ in prog.meta["map_refs"].values()) == ["counts", "seen"]


@pytest.mark.kernel
def test_a_program_on_legacy_maps_loads_and_every_pass_keeps_it_the_same(legacy_object):
    ok, why = loads(legacy_object.read_bytes(), legacy_object.name)
    assert not ok and "legacy map" in why  # libbpf 1.x: so bpfpatch creates the maps itself
    prog = read_object(legacy_object.read_bytes()).linked_program("socket")
    raw, _maps = with_fresh_maps(prog)
    with load_program(raw, "socket_filter", license="GPL"):
        pass
    for passes in PASS_SETS:
        out = run_passes(prog, list(passes), PassContext(prog_type="socket_filter", seed=1, aux_reg="auto"))
        report = check_equivalence(prog, out, "socket_filter")
        assert report.verdict is Verdict.EQUIVALENT, (passes, report.reason)

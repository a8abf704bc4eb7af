"""Real objects in, real objects out: reading, byte-identical identity writes, rewrites that
libbpf still loads with relocations and line info on the right instructions, malformed input."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import uuid
from pathlib import Path

import pytest

from bpfpatch import Insn, PatchList
from bpfpatch.cli import main
from bpfpatch.elf import read_object, write_object
from bpfpatch.errors import ElfError
from bpfpatch.passes import PassContext, run_passes
from conftest import PROGS, compile_bpf

SOURCES = ["asm/features.c", "kernel/filters.c"]
CPUS = [("v1", "clang"), ("v2", "clang"), ("v3", "clang"), ("v4", "clang-19")]


@pytest.fixture(scope="module", params=[(s, c) for s in SOURCES for c in CPUS], ids=lambda p: f"{Path(p[0]).stem}-{p[1][0]}")
def obj_path(request, tmp_path_factory):
    src, (cpu, clang) = request.param
    return compile_bpf(PROGS / src, tmp_path_factory.mktemp("elf"), cpu=cpu, clang=clang)


def _readelf_relocs(path: Path) -> dict[str, list[tuple[str, str]]]:
    out = subprocess.run(["llvm-readelf", "-r", str(path)], capture_output=True, text=True, check=True).stdout
    secs, cur = {}, None
    for line in out.splitlines():
        m = re.match(r"Relocation section '\.rel(.*)' at offset", line)
        if m:
            cur = secs.setdefault(m.group(1), [])
            continue
        parts = line.split()
        if cur is not None and len(parts) >= 5 and re.fullmatch(r"[0-9a-f]{16}", parts[0]):
            cur.append((parts[2], parts[-1]))  # (type, symbol)
    return secs


def test_read_matches_readelf(obj_path):
    obj = read_object(obj_path)
    relocs = _readelf_relocs(obj_path)
    for name, prog in obj.programs.items():
        mine = [(r.type, r.symbol or r.symbol_section) for r in prog.meta["relocations"]]
        assert len(mine) == len(relocs.get(name, []))
        assert prog.func_info and prog.line_info  # compiled with -g
        assert prog.func_info[0].insn_off == 0
    assert obj.license == "GPL"


def test_identity_write_is_byte_identical(obj_path, tmp_path):
    obj = read_object(obj_path)
    out = tmp_path / "same.o"
    write_object(obj, dict(obj.programs), out)
    assert out.read_bytes() == obj_path.read_bytes()


def _rewrite(obj):
    new = {}
    for name, prog in obj.programs.items():
        pl = PatchList(prog)
        for i, node in enumerate(list(pl)):
            if i % 4 == 1:
                pl.prepend(node, [Insn(0x05)])  # ja +0
        new[name] = run_passes(pl.linearize(), ["div-guard", "blind"], PassContext(seed=1, aux_reg="auto"))
    return new


def test_rewrite_keeps_relocations_and_lines(obj_path, tmp_path):
    obj = read_object(obj_path)
    try:
        new = _rewrite(obj)
    except Exception as exc:  # every register used: no scratch register for blind
        if "no free register" in str(exc):
            pytest.skip(str(exc))
        raise
    out = tmp_path / "rw.o"
    write_object(obj, new, out)
    again = read_object(out)
    # The same relocations, each still on an instruction of its kind.
    assert _readelf_relocs(out) == _readelf_relocs(obj_path)
    for name, prog in again.programs.items():
        for r in prog.meta["relocations"]:
            assert prog.slots["code"][r.slot] in (0x18, 0x85)
        # Every original line is attached to the first instruction of its replacement.
        old = obj.programs[name]
        idx_map = new[name].idx_map
        want = {(int(idx_map[li.insn_off]), li.line_off, li.line_col) for li in old.line_info}
        got = {(li.insn_off, li.line_off, li.line_col) for li in prog.line_info}
        assert got == want
        assert [f.type_id for f in prog.func_info] == [f.type_id for f in old.func_info]


@pytest.mark.kernel
def test_rewritten_object_loads_with_libbpf_and_behaves(obj_path, tmp_path):
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool is not installed")
    obj = read_object(obj_path)
    try:
        new = _rewrite(obj)
    except Exception as exc:
        if "no free register" in str(exc):
            pytest.skip(str(exc))
        raise
    out = tmp_path / "rw.o"
    write_object(obj, new, out)
    if not Path("/sys/fs/bpf").is_mount():
        subprocess.run(["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"], check=False)
    pin = Path("/sys/fs/bpf") / f"bpfpatch-{uuid.uuid4().hex[:8]}"
    try:
        for path in (obj_path, out):
            res = subprocess.run(["bpftool", "prog", "loadall", str(path), str(pin)], capture_output=True, text=True)
            assert res.returncode == 0, res.stderr
            assert sorted(p.name for p in pin.iterdir()), "no program pinned"
            shutil.rmtree(pin)
    finally:
        if pin.exists():
            shutil.rmtree(pin)
    from bpfpatch.kernel import check_equivalence

    again = read_object(out)
    for name in obj.programs:
        if name == ".text":
            continue
        ptype = {"socket": "socket_filter", "xdp": "xdp", "tc": "sched_cls"}[name]
        report = check_equivalence(obj.linked_program(name), again.linked_program(name), ptype, inputs=8)
        assert report.verdict.value == "equivalent", (name, report)


# --- malformed objects ----------------------------------------------------------------


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return compile_bpf(PROGS / "kernel/filters.c", tmp_path_factory.mktemp("bad"), cpu="v3").read_bytes()


def _shdr_offset(data: bytes, index: int) -> int:
    e_shoff = struct.unpack_from("<Q", data, 0x28)[0]
    return e_shoff + index * 64


def _section_index(data: bytes, name: str) -> int:
    from elftools.elf.elffile import ELFFile
    import io

    for i, s in enumerate(ELFFile(io.BytesIO(data)).iter_sections()):
        if s.name == name:
            return i
    raise KeyError(name)


def _truncated(d):
    return d[: len(d) // 2]


def _offset_past_end(d):
    b = bytearray(d)
    struct.pack_into("<Q", b, _shdr_offset(d, _section_index(d, "xdp")) + 24, len(d) + 4096)
    return bytes(b)


def _missing_symbol(d):
    from elftools.elf.elffile import ELFFile
    import io

    sec = ELFFile(io.BytesIO(d)).get_section_by_name(".reltc")
    b = bytearray(d)
    struct.pack_into("<Q", b, sec["sh_offset"] + 8, (0xFFFF << 32) | 1)
    return bytes(b)


def _huge_btf_ext_count(d):
    from elftools.elf.elffile import ELFFile
    import io

    sec = ELFFile(io.BytesIO(d)).get_section_by_name(".BTF.ext")
    b = bytearray(d)
    hdr_len, fi_off = struct.unpack_from("<II", d, sec["sh_offset"] + 4)[0], struct.unpack_from("<I", d, sec["sh_offset"] + 8)[0]
    struct.pack_into("<I", b, sec["sh_offset"] + hdr_len + fi_off + 8, 0xFFFFFFFF)  # num_info of the first group
    return bytes(b)


@pytest.mark.parametrize("corrupt, message", [
    (_truncated, "past EOF|truncated|past the end"),
    (_offset_past_end, "past the end"),
    (_missing_symbol, "missing symbol"),
    (_huge_btf_ext_count, "claims"),
])
def test_malformed_objects(good, tmp_path, capsys, corrupt, message):
    data = corrupt(good)
    with pytest.raises(ElfError, match=message):
        read_object(data)
    src = tmp_path / "bad.o"
    src.write_bytes(data)
    out = tmp_path / "out.o"
    assert main(["patch", str(src), "-o", str(out), "--pass", "div-guard"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bpfpatch: error:")
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bad.o"]


def test_disasm_source_interleaves_lines(capsys):
    from bpfpatch.cli.demo_cmd import sample_path

    assert main(["disasm", str(sample_path()), "--section", "socket", "--source"]) == 0
    out = capsys.readouterr().out
    assert "; sample.c:" in out and "bpf_map_lookup_elem(&packets, &key)" in out


def test_dce_keeps_every_function_of_a_section(tmp_path):
    """Global functions are programs of their own; local ones may be called from other sections."""
    src = PROGS / "kernel/multi.c"
    obj = read_object(compile_bpf(src, tmp_path))
    for name, prog in obj.programs.items():
        out = run_passes(prog, ["dce"])
        assert out.to_bytes() == prog.to_bytes(), name
        assert [s.name for s in out.meta["symbols"]] == [s.name for s in prog.meta["symbols"]]

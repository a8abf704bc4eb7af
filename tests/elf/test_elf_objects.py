"""Real objects, loaded the way users load them (libbpf): identity byte for byte, every pass's
rewrite loads wherever the original does, CO-RE records follow their instructions, blind borrows
a dead register (or spills one), callx and listings with '/' section names round-trip.

Objects: tests/progs/elf/objects.c built with clang 14 and clang 19 (-mcpu=v2..v4, -O0..-O2,
CO-RE against this kernel's vmlinux.h), Debian's xdp-tools objects, the objects bcc's build embeds
in Debian's libbpf-tools binaries (cut out of their skeletons), and a seeded sample of the
kernel's selftest programs (the full run: `python tests/objcorpus.py --selftests`).
"""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from bpfpatch import Insn, Program
from bpfpatch.asm import assemble, listing, outside_calls
from bpfpatch.cli import main
from bpfpatch.elf import read_object
from bpfpatch.elf.rewrite import rewrite_object
from bpfpatch.errors import ElfError
from bpfpatch.passes import PassContext, run_passes
from conftest import PROGS, compile_bpf
from objcorpus import (
    LIBBPF_TOOLS_PACKAGE, PASS_SETS, SELFTESTS, THIRD_PARTY, build_selftests, embedded_objects, libbpf_tools_objects, loads,
    loads_bpftool, round_trip, vmlinux_header,
)

# (clang, -mcpu, -O): both compilers, every cpu version, every optimization level we support.
MATRIX = [
    ("clang", "v2", "-O2"), ("clang", "v3", "-O1"), ("clang", "v3", "-O0"),
    ("clang-19", "v2", "-O1"), ("clang-19", "v3", "-O2"), ("clang-19", "v4", "-O2"), ("clang-19", "v4", "-O0"),
]


@pytest.fixture(scope="session")
def vmlinux_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vmlinux")
    try:
        vmlinux_header(out)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"no vmlinux.h from this kernel's BTF (bpftool, /sys/kernel/btf/vmlinux): {exc}")
    return out


@pytest.fixture(scope="module", params=MATRIX, ids=lambda p: f"{p[0]}-{p[1]}{p[2]}")
def built(request, vmlinux_dir, tmp_path_factory) -> Path:
    clang, cpu, opt = request.param
    path = compile_bpf(PROGS / "elf" / "objects.c", tmp_path_factory.mktemp("objects"), cpu=cpu, clang=clang,
                       extra=(opt, f"-I{vmlinux_dir}"))
    return path.rename(path.with_name(f"objects-{clang}-{cpu}{opt}.o"))  # the name says how it was built


def _rel_count(data: bytes, name: str) -> int:
    import io

    sec = ELFFile(io.BytesIO(data)).get_section_by_name(name)
    return sec.num_relocations() if sec is not None else 0


def test_identity_is_byte_for_byte(built, tmp_path, capsys):
    data = built.read_bytes()
    assert rewrite_object(data, None, []) == data
    out = tmp_path / "same.o"
    assert main(["patch", str(built), "-o", str(out)]) == 0  # no --pass: the identity
    assert out.read_bytes() == data


def _with_r15(data: bytes, section: str) -> bytes:
    """`data` with the first `rX = rY` of `section` reading r15 (the verifier's own negative tests do that)."""
    import io

    sec = ELFFile(io.BytesIO(data)).get_section_by_name(section)
    base = sec["sh_offset"]
    at = next(base + k for k in range(0, sec["sh_size"], 8) if data[base + k] == 0xBF)
    return data[: at + 1] + bytes([0xF0 | data[at + 1] & 0x0F]) + data[at + 2 :]


def test_identity_keeps_code_that_does_not_decode(built, tmp_path, capsys):
    """Identity needs no decoding: a section reading r15 comes back byte for byte; a pass on it is refused."""
    section = "kprobe/do_nanosleep"
    data = _with_r15(built.read_bytes(), section)
    with pytest.raises(ElfError, match="invalid source register"):
        read_object(data)
    obj = read_object(data, opaque=True)
    assert section not in obj.programs and "invalid source register" in obj.opaque[section]
    assert rewrite_object(data, None, []) == data
    bad = tmp_path / "bad.o"
    bad.write_bytes(data)
    out = tmp_path / "out.o"
    assert main(["patch", str(bad), "-o", str(out)]) == 0 and out.read_bytes() == data
    assert main(["patch", str(bad), "-o", str(out), "--pass", "div-guard"]) == 1
    err = capsys.readouterr().err
    assert section in err and "cannot be rewritten" in err and "invalid source register" in err
    assert out.read_bytes() == data  # a failing command writes nothing
    with pytest.raises(ElfError, match="may call into it"):  # .text: the section's calls would go stale
        rewrite_object(data, None, ["div-guard"], sections=[".text"])
    other = next(n for n in obj.programs if n != ".text")
    kept = rewrite_object(data, None, ["div-guard"], sections=[other])  # another section: rewritten
    assert read_object(kept, opaque=True).opaque.keys() == obj.opaque.keys()

    def code(blob: bytes) -> bytes:
        import io

        return ELFFile(io.BytesIO(blob)).get_section_by_name(section).data()

    assert code(kept) == code(data)  # left as it was


@pytest.mark.kernel
def test_every_pass_loads_where_the_original_does(built):
    data = built.read_bytes()
    ok, why = loads(data, built.name)
    if not ok:
        assert "-O0" in built.name, why  # -O0 code calls helpers through callx
        pytest.skip(f"the original does not load here either: {why}")
    for passes in PASS_SETS:
        try:
            out = rewrite_object(data, None, list(passes), ctx=PassContext(seed=3, aux_reg="auto"))
        except ElfError as exc:
            assert {"ctx", "kernel"} & set(passes), exc  # only the kernel-internal passes are refused
            continue
        ok, why = loads(out, f"{built.name}+{'+'.join(passes)}")
        assert ok, (passes, why)


def test_core_records_follow_their_instructions_untouched(built):
    data = built.read_bytes()
    obj = read_object(data)
    out = rewrite_object(data, None, ["dce", "div-guard", "zext", "blind"], ctx=PassContext(seed=1, aux_reg="auto"))
    new = read_object(out)
    total = 0
    for name, prog in obj.programs.items():
        old_core, new_core = prog.core_relos, new.programs[name].core_relos
        assert [(r.type_id, r.access_str_off, r.kind) for r in old_core] == \
               [(r.type_id, r.access_str_off, r.kind) for r in new_core]
        for a, b in zip(old_core, new_core):  # the field libbpf patches is exactly as clang wrote it
            assert prog.slots[a.insn_off] == new.programs[name].slots[b.insn_off]
        total += len(new_core) + len(new.programs[name].func_info or ()) + len(new.programs[name].line_info or ())
    assert sum(len(p.core_relos) for p in obj.programs.values()) > 0  # the source has CO-RE reads
    # .rel.BTF.ext: one relocation per func, line and CO-RE record, as clang emits them
    assert _rel_count(out, ".rel.BTF.ext") == total
    kept = rewrite_object(data, None, ["div-guard", "blind"], ctx=PassContext(seed=1, aux_reg="auto"))  # deletes nothing
    assert _rel_count(kept, ".rel.BTF.ext") == _rel_count(data, ".rel.BTF.ext")


def test_callx_and_listings_round_trip(built):
    """Every section's listing assembles back to its bytes (clang -O0's callx, calls into .text)."""
    obj = read_object(built)
    for name, prog in obj.programs.items():
        insns = assemble("\n".join(listing(prog)))
        again = Program.from_insns(insns, external=outside_calls(insns))
        assert again.to_bytes() == prog.to_bytes(), name
    if "-O0" in built.name:
        assert any(i.code == 0x8D for p in obj.programs.values() for i in p.insns)


def test_whole_object_listing_with_slash_section_names(built, capsys):
    """`disasm` of a whole object names its sections ("tracepoint/syscalls/sys_enter_getpid:"); it assembles."""
    capsys.readouterr()
    assert main(["disasm", str(built)]) == 0
    text = capsys.readouterr().out
    assert "tracepoint/syscalls/sys_enter_getpid:" in text
    want = b"".join(p.to_bytes() for p in read_object(built).programs.values())
    assert Program.from_insns(assemble(text), validate=False).to_bytes() == want


def test_callx_text():
    assert assemble("callx r4") == [Insn(0x8D, 4)]
    assert listing(Program.from_insns([Insn(0x8D, 0, 0, 0, 4), Insn(0x95)], validate=False))[0].endswith("callx r4")


def test_raw_output_says_what_was_left_out(built, tmp_path, capsys):
    out = tmp_path / "x.bin"
    capsys.readouterr()
    assert main(["patch", str(built), "-o", str(out), "--section", "kprobe/do_nanosleep", "--pass", "dce"]) == 0
    err = capsys.readouterr().err
    assert "wrote section 'kprobe/do_nanosleep' alone" in err and "left out" in err and "--linked" in err
    assert ".text" in err and "counts" in err  # the callees' section and the map


def test_kernel_only_passes_are_refused_for_objects(built, tmp_path, capsys):
    out = tmp_path / "o.o"
    assert main(["patch", str(built), "-o", str(out), "--pass", "ctx"]) == 1
    assert "would not load" in capsys.readouterr().err and not out.exists()
    assert main(["patch", str(built), "-o", str(out), "--pass", "blind", "--aux-reg", "11"]) == 1
    assert "only the kernel itself can load" in capsys.readouterr().err and not out.exists()


# --- blind: a dead register per site, else a spilled one ----------------------------------------


def _all_live() -> Program:
    """r0-r9 all set and all read after `r2 += 0x1234`: no register is free there."""
    body = [Insn(0xB7, r, 0, 0, r + 1) for r in (0, 2, 3, 4, 5, 6, 7, 8, 9)] + [Insn(0xBF, 1, 10)]
    body += [Insn(0x07, 2, 0, 0, 0x1234)]  # the site
    body += [Insn(0x0F, 0, r) for r in (2, 3, 4, 5, 6, 7, 8, 9)] + [Insn(0x0F, 0, 1), Insn(0x1F, 0, 10), Insn(0x95)]
    return Program.from_insns(body)


def test_blind_spills_when_every_register_is_live():
    out = run_passes(_all_live(), ["blind"], PassContext(seed=5, aux_reg="auto"))
    insns = out.insns
    spill = next(i for i, x in enumerate(insns) if x.code == 0x7B and x.dst == 10)
    rx = insns[spill].src
    assert insns[spill + 1].dst == rx and insns[spill + 3] == Insn(0x0F, 2, rx)
    assert insns[spill + 4] == Insn(0x79, rx, 10, insns[spill].off)  # the register comes back
    assert 11 not in {x.dst for x in insns} | {x.src for x in insns}
    assert not any(x.imm == 0x1234 for x in insns)  # nothing planted


@pytest.mark.kernel
def test_spilled_blind_loads_and_returns_the_same():
    from bpfpatch.kernel import load_program

    prog = _all_live()
    out = run_passes(prog, ["blind"], PassContext(seed=5, aux_reg="auto"))
    with load_program(prog, "socket_filter") as a, load_program(out, "socket_filter") as b:
        data = bytes(64)
        assert a.test_run(data).retval == b.test_run(data).retval


@pytest.mark.kernel
def test_blinded_jump_with_every_register_live_loads():
    from bpfpatch.kernel import load_program

    body = [Insn(0xB7, r, 0, 0, r) for r in (0, 2, 3, 4, 5, 6, 7, 8, 9)] + [Insn(0xBF, 1, 10)]
    body += [Insn(0x25, 2, 0, 1, 1)]  # if r2 > 1 goto +1 (taken): a blinded jump that must spill
    body += [Insn(0xB7, 0, 0, 0, 100)]
    body += [Insn(0x0F, 0, r) for r in (2, 3, 4, 5, 6, 7, 8, 9)] + [Insn(0x0F, 0, 1), Insn(0x1F, 0, 10), Insn(0x95)]
    prog = Program.from_insns(body)
    out = run_passes(prog, ["blind"], PassContext(seed=2, aux_reg="auto"))
    assert any(x.code == 0x7B and x.dst == 10 for x in out.insns)
    with load_program(prog, "socket_filter") as a, load_program(out, "socket_filter") as b:
        assert a.test_run(bytes(64)).retval == b.test_run(bytes(64)).retval == 2 + sum(range(3, 10)) + 0


@pytest.fixture(scope="module", params=["clang", "clang-19"])
def core_exists(request, vmlinux_dir, tmp_path_factory) -> Path:
    return compile_bpf(PROGS / "elf" / "core_exists.c", tmp_path_factory.mktemp("core"), clang=request.param,
                       extra=(f"-I{vmlinux_dir}",))


def test_dce_does_not_fold_a_constant_libbpf_rewrites(core_exists):
    """bpf_core_field_exists is `r1 = 1` with a FIELD_EXISTS record: libbpf may make it 0, so both arms stay."""
    data = core_exists.read_bytes()
    old = read_object(data).programs["kprobe/do_nanosleep"]
    new = read_object(rewrite_object(data, None, ["dce"])).programs["kprobe/do_nanosleep"]
    assert new.insns == old.insns and len(new.core_relos) == len(old.core_relos) == 2


@pytest.mark.kernel
def test_rewrites_of_a_missing_field_check_load(core_exists):
    data = core_exists.read_bytes()
    ok, why = loads(data, core_exists.name)
    assert ok, why  # the field is missing here: libbpf turns the check to 0, the read is dead code
    for passes in (("dce",), ("dce", "div-guard"), ("dce", "div-guard", "zext", "blind")):
        ok, why = loads(rewrite_object(data, None, list(passes)), core_exists.name)
        assert ok, (passes, why)


# --- objects other projects built ----------------------------------------------------------------


@pytest.mark.parametrize("path", THIRD_PARTY, ids=lambda p: p.name)
def test_third_party_identity(path):
    assert rewrite_object(path.read_bytes(), None, []) == path.read_bytes()


@pytest.mark.kernel
@pytest.mark.parametrize("path", THIRD_PARTY, ids=lambda p: p.name)
def test_third_party_rewrites_load(path):
    data = path.read_bytes()
    ok, why = loads(data, path.name)
    if not ok:
        pytest.skip(f"the original does not load here: {why}")
    for passes in (("dce", "div-guard"), ("blind",), ("dce", "div-guard", "zext", "blind")):
        ok, why = loads(rewrite_object(data, None, list(passes)), path.name)
        assert ok, (passes, why)


def _pyelftools_tables(data: bytes) -> tuple[dict, dict]:
    """Per program section: its function symbols and relocations as pyelftools parses them, one construct
    per entry (the reference the reader's one-pass tables are held to)."""
    import io

    elf = ELFFile(io.BytesIO(data))
    sections = list(elf.iter_sections())
    syms = list(elf.get_section_by_name(".symtab").iter_symbols())
    funcs = {sec.name: [(s.name, s["st_value"] // 8, s["st_size"] // 8, s["st_info"]["bind"], s["st_info"]["type"])
                        for s in syms if s["st_info"]["type"] == "STT_FUNC" and s["st_shndx"] == k]
             for k, sec in enumerate(sections) if sec["sh_flags"] & 4 and sec["sh_size"]}
    relocs = {}
    for rel in sections:
        if rel["sh_type"] in ("SHT_REL", "SHT_RELA") and sections[rel["sh_info"]].name in funcs:
            rows = relocs[sections[rel["sh_info"]].name] = []
            for r in rel.iter_relocations():
                s = syms[r["r_info_sym"]]
                shndx = s["st_shndx"]
                rows.append((r["r_offset"] // 8, r["r_info_type"], s.name, r["r_info_sym"],
                             sections[shndx].name if isinstance(shndx, int) else shndx, s["st_value"], s["st_info"]["type"]))
    return funcs, relocs


@pytest.mark.parametrize("which", ["built", "third-party"])
def test_symbols_and_relocations_are_pyelftools_own(which, built):
    """The reader unpacks the symbol and relocation tables in one pass each; every program's function symbols and
    relocations equal pyelftools' entry-by-entry parse (clang-built objects, Debian's xdp-tools objects)."""
    paths = [built] if which == "built" else THIRD_PARTY
    if not paths:
        pytest.skip("Debian's xdp-tools objects (/usr/lib/x86_64-linux-gnu/bpf) are not installed")
    checked = 0
    for path in paths:
        data = path.read_bytes()
        obj = read_object(data)
        funcs, relocs = _pyelftools_tables(data)
        for name, prog in obj.programs.items():
            assert [(s.name, s.slot, s.size_slots, s.binding, s.type) for s in prog.meta["symbols"]] == funcs[name]
            assert [(r.slot, r.type, r.symbol, r.symbol_index, r.symbol_section, r.symbol_value, r.symbol_type)
                    for r in prog.meta["relocations"]] == relocs.get(name, [])
            checked += len(prog.meta["relocations"])
    assert checked  # the objects do relocate (maps, calls, global data)


def test_a_symbol_name_past_the_string_table_is_refused_by_its_index(built):
    """A damaged symbol's name offset is an ElfError naming the symbol and the place, not a stray read."""
    import io
    import struct

    data = bytearray(built.read_bytes())
    symtab = ELFFile(io.BytesIO(bytes(data))).get_section_by_name(".symtab")
    at = symtab["sh_offset"] + 2 * 24  # symbol 2's st_name
    struct.pack_into("<I", data, at, 0x7FFFFFF0)
    with pytest.raises(ElfError, match=r"symbol 2: name offset 2147483632 is past the string table") as info:
        read_object(bytes(data))
    assert info.value.offset == at and info.value.section == ".symtab"


@pytest.fixture(scope="module")
def libbpf_tools(tmp_path_factory) -> list[Path]:
    """The objects bcc's build embeds in Debian's libbpf-tools binaries (one libbpf skeleton each)."""
    paths = libbpf_tools_objects(tmp_path_factory.mktemp("libbpf-tools"))
    if not paths:
        pytest.skip(f"Debian's {LIBBPF_TOOLS_PACKAGE} is not installed (the Makefile's optional packages install it)")
    return paths


def test_embedded_objects_are_cut_whole(built):
    data = built.read_bytes()
    blob = b"\x7fELF" + b"x" * 100 + data + b"\0" * 7 + data[:40]  # a stray header and a truncated copy
    assert embedded_objects(blob) == [data]


def test_libbpf_tools_identity(libbpf_tools):
    assert len(libbpf_tools) >= 40  # Debian 12 ships 61 tools, one object each
    for path in libbpf_tools:
        data = path.read_bytes()
        assert rewrite_object(data, None, []) == data, path.name
        assert round_trip(path) == (True, ""), path.name


@pytest.mark.kernel
def test_libbpf_tools_sample_rewrites_load(libbpf_tools):
    """A seeded sample here (python tests/objcorpus.py --libbpf-tools DIR runs them all): libbpf and bpftool."""
    loaded = 0
    for path in random.Random(15).sample(libbpf_tools, 4):
        data = path.read_bytes()
        if not loads(data, path.name)[0]:
            continue  # e.g. a tool whose kernel functions this kernel does not have
        loaded += 1
        for passes in (("dce", "div-guard"), ("blind",), ("zext",), ("dce", "div-guard", "zext", "blind")):
            out = rewrite_object(data, None, list(passes))
            for loader in (loads, loads_bpftool):
                ok, why = loader(out, path.name)
                assert ok, (path.name, passes, loader.__name__, why)
    assert loaded


@pytest.fixture(scope="module")
def selftest_sample(vmlinux_dir, tmp_path_factory) -> list[Path]:
    if not (SELFTESTS / "progs").is_dir() or shutil.which("clang-19") is None:
        pytest.skip("the kernel's selftest sources (linux-source-6.12) or clang-19 are missing")
    names = sorted(p.stem for p in (SELFTESTS / "progs").glob("*.c"))
    picked = random.Random(15).sample(names, 12)  # bounded and deterministic; the script runs all
    built = build_selftests(tmp_path_factory.mktemp("selftests"), picked, vmlinux_dir=vmlinux_dir)
    if len(built) < 4:
        pytest.skip(f"only {len(built)} of {len(picked)} selftest programs compiled here")
    return built


@pytest.mark.slow
def test_selftest_sample_identity(selftest_sample):
    for path in selftest_sample:
        data = path.read_bytes()
        assert rewrite_object(data, None, []) == data, path.name  # invalid code too (the verifier's negative tests)


@pytest.mark.slow
@pytest.mark.kernel
def test_selftest_sample_rewrites_load(selftest_sample):
    loaded = 0
    for path in selftest_sample:
        data = path.read_bytes()
        if not loads(data, path.name)[0]:
            continue
        loaded += 1
        for passes in (("dce", "div-guard"), ("dce", "div-guard", "zext", "blind")):
            ok, why = loads(rewrite_object(data, None, list(passes)), path.name)
            assert ok, (path.name, passes, why)
    assert loaded  # at least one of the sample loads on this kernel


# --- Linux 6.19 gotox with jump tables (hand-assembled; this kernel is 6.18) ---------------------


@pytest.fixture(scope="module")
def jumptable(tmp_path_factory) -> Path:
    return compile_bpf(PROGS / "elf" / "jumptable.c", tmp_path_factory.mktemp("jt"), clang="clang-19")


def _entries(data: bytes) -> list[int]:
    import io
    import struct

    raw = ELFFile(io.BytesIO(data)).get_section_by_name(".jumptables").data()
    return [v // 8 for v in struct.unpack(f"<{len(raw) // 8}Q", raw)]


def test_gotox_and_its_jump_table_are_read(jumptable):
    prog = read_object(jumptable).programs["socket"]
    gotox = next(i for i, x in zip(prog.insn_slots(), prog.insns) if x.code == 0x0D)
    assert listing(prog)[len([s for s in prog.insn_slots() if s < gotox])].endswith("gotox r0")
    (table,) = prog.meta["jump_tables"]
    assert table.symbol == "jt0" and [prog.slots["imm"][t] for t in table.targets] == [0, 1]  # r0 = 0 / r0 = 1
    assert rewrite_object(jumptable.read_bytes(), None, []) == jumptable.read_bytes()


@pytest.mark.parametrize("passes", [["div-guard"], ["blind"], ["div-guard", "zext", "blind"]])
def test_jump_table_entries_move_with_their_targets(jumptable, passes):
    data = jumptable.read_bytes()
    out = rewrite_object(data, None, passes, ctx=PassContext(seed=4, aux_reg="auto"))
    old, new = read_object(data).programs["socket"], read_object(out).programs["socket"]
    assert len(new.slots) > len(old.slots)  # code in front of the targets grew
    targets = _entries(out)
    assert targets != _entries(data)
    (table,) = old.meta["jump_tables"]
    again = run_passes(old, passes, PassContext(seed=4, aux_reg="auto"))
    assert targets == [int(again.idx_map[t]) for t in table.targets]  # where jumps to the targets land
    for t, want in zip(targets, (0, 1)):  # `r0 = 0` / `r0 = 1`, or the first of its blinded form
        code, imm, nxt = new.slots["code"][t], new.slots["imm"][t], new.slots["imm"][t + 1]
        assert code == 0xB7 and (imm == want or imm ^ nxt == want)


@pytest.mark.parametrize("passes", [["dce"], ["dce", "div-guard", "zext", "blind"]])
def test_dce_keeps_every_jump_table_target(jumptable, passes):
    """gotox does not fall through and may take any entry: dce keeps both targets (ret1 is reached only so)."""
    data = jumptable.read_bytes()
    out = rewrite_object(data, None, passes, ctx=PassContext(seed=4, aux_reg="auto"))
    old, new = read_object(data).programs["socket"], read_object(out).programs["socket"]
    assert len(new.insns) >= len(old.insns)  # nothing of it is dead
    exits = [s for s, x in zip(new.insn_slots(), new.insns) if x.code == 0x95]
    targets = _entries(out)
    assert len(exits) == 2 and targets[0] < exits[0] < targets[1] < exits[1]  # each entry reaches its own exit
    if passes == ["dce"]:
        assert out == data  # dce finds nothing to remove: the object comes back as it was


@pytest.mark.kernel
def test_gotox_loads_only_from_linux_6_19(jumptable):
    import os

    release = tuple(int(x) for x in os.uname().release.split(".")[:2])
    if release < (6, 19):
        pytest.skip(f"gotox and BPF_MAP_TYPE_INSN_ARRAY arrived in Linux 6.19; this kernel is {os.uname().release}")
    ok, why = loads(jumptable.read_bytes(), jumptable.name)
    assert ok, why


@pytest.mark.kernel
def test_readme_object_example_runs(built, tmp_path, monkeypatch):
    """The README's "Rewriting objects for libbpf" example, on objects.c built as prog.o."""
    import re

    if "-O0" in built.name:
        pytest.skip("-O0 code calls helpers through callx, which this kernel refuses")
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = re.search(r"## Rewriting objects for libbpf.*?```python\n(.*?)```", readme, re.S)
    assert block, "README lost its object example"
    shutil.copy(built, tmp_path / "prog.o")
    monkeypatch.chdir(tmp_path)
    exec(block.group(1), {})
    assert (tmp_path / "hardened.o").read_bytes() != built.read_bytes()
    assert loads((tmp_path / "hardened.o").read_bytes(), "hardened.o")[0]

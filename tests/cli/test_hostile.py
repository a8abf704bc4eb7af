"""Hostile input: mutated objects and programs reach only bpfpatch's typed errors."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfpatch import BpfPatchError, PatchList, Program
from bpfpatch.asm import assemble
from bpfpatch.cli.demo_cmd import sample_path
from bpfpatch.elf import build_object, read_object

SAMPLE = sample_path().read_bytes()


@st.composite
def mutated(draw, base: bytes):
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.integers(0, 2))
        pos = draw(st.integers(0, len(data) - 1))
        if kind == 0:
            data[pos] = draw(st.integers(0, 255))
        elif kind == 1:
            del data[pos : pos + draw(st.integers(1, 64))]
        else:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(SAMPLE))
def test_mutated_objects_give_typed_errors(data):
    try:
        obj = read_object(data)
        build_object(obj, {name: PatchList(p).linearize() for name, p in obj.programs.items()})
        for name in obj.programs:
            if name != ".text":
                obj.linked_program(name)
    except BpfPatchError:
        pass


THIRD_PARTY = sorted(__import__("glob").glob("/usr/lib/x86_64-linux-gnu/bpf/xdp*.o"))[:6]  # xdp-tools' builds


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_third_party_objects_through_every_pass_give_typed_errors(data):
    """Objects other projects built (BTF, .BTF.ext, CO-RE, several programs), damaged, rewritten
    by each pass and their combination: a typed error or an object, never another exception."""
    import pytest

    from bpfpatch.elf.rewrite import rewrite_object

    if not THIRD_PARTY:
        pytest.skip("xdp-tools objects are not installed (Debian xdp-tools)")
    base = open(data.draw(st.sampled_from(THIRD_PARTY)), "rb").read()
    damaged = data.draw(mutated(base))
    passes = data.draw(st.sampled_from([[], ["dce"], ["div-guard"], ["zext"], ["blind"], ["dce", "div-guard", "blind"]]))
    try:
        rewrite_object(damaged, None, passes)
    except BpfPatchError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=256))
def test_random_programs_and_text(data):
    try:
        PatchList(Program.from_bytes(data)).linearize()
    except BpfPatchError:
        pass
    try:
        assemble(data.decode("utf-8", errors="replace"))
    except BpfPatchError:
        pass


def test_fuzzer_findings_stay_fixed():
    """Inputs the atheris target once crashed on (tests/data/fuzz): typed errors only."""
    from pathlib import Path

    found = sorted((Path(__file__).parents[1] / "data" / "fuzz").iterdir())
    assert found
    for path in found:
        data = path.read_bytes()
        try:
            read_object(data)
        except BpfPatchError:
            pass


def test_damaged_section_alignment_is_refused_by_name():
    """A hypothesis finding: a huge sh_addralign made the writer pad gigabytes (MemoryError)."""
    import struct

    import pytest

    from bpfpatch.errors import ElfError

    data = bytearray(SAMPLE)
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shnum, = struct.unpack_from("<H", data, 0x3C)
    target = shoff + 2 * 64  # the second section after the null one
    struct.pack_into("<Q", data, target + 48, 0x8000_0000_0000_0000)  # sh_addralign
    assert shnum > 2
    obj = read_object(bytes(data))
    with pytest.raises(ElfError, match="alignment"):
        build_object(obj, {name: PatchList(p).linearize() for name, p in obj.programs.items()})


def test_every_reading_command_names_the_damaged_file(tmp_path, capsys):
    # analyze said "error: offset 0x...: section header table ... runs past the end of the file" alone
    from bpfpatch.cli import main

    damaged = tmp_path / "cut.o"
    damaged.write_bytes(SAMPLE[: len(SAMPLE) // 2])
    for argv in (["disasm", str(damaged)], ["analyze", str(damaged)], ["patch", str(damaged), "-o", str(tmp_path / "out.o")]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert f"error: {damaged}: " in err, (argv[0], err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.o"]  # nothing written

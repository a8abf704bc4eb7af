"""Corrupt ELF framing, relocations, symbols and .BTF.ext records: one `ElfError` naming the place.

Each test damages one structure of the shipped sample object (clang-built) and checks the message
names the section or offset; the CLI turns each into one line naming the file, exit 1, no output.
"""

from __future__ import annotations

import io
import struct

import pytest
from elftools.elf.elffile import ELFFile

from bpfpatch import PatchList
from bpfpatch.cli import main
from bpfpatch.cli.demo_cmd import sample_path
from bpfpatch.elf import build_object, read_object
from bpfpatch.errors import ElfError

SAMPLE = sample_path().read_bytes()
ELF = ELFFile(io.BytesIO(SAMPLE))
SHOFF = ELF["e_shoff"]
INDEX = {s.name: i for i, s in enumerate(ELF.iter_sections())}
SHDR = struct.Struct("<IIQQQQIIQQ")  # name, type, flags, addr, offset, size, link, info, align, entsize


def header_field(data: bytearray, section: str, field: int, value: int) -> None:
    at = SHOFF + INDEX[section] * SHDR.size
    fields = list(SHDR.unpack_from(data, at))
    fields[field] = value
    SHDR.pack_into(data, at, *fields)


def refused(data: bytes | bytearray, *words: str, build: bool = False) -> ElfError:
    with pytest.raises(ElfError) as err:
        obj = read_object(bytes(data))
        if build:
            build_object(obj, {n: PatchList(p).linearize() for n, p in obj.programs.items()})
    for w in words:
        assert w in str(err.value), str(err.value)
    return err.value


def test_truncated_header_names_the_bytes_it_has():
    refused(SAMPLE[:59], "offset 0x0", "ELF header truncated: 59 of 64 bytes")


def test_section_header_table_past_the_end():
    refused(SAMPLE[:SHOFF + 100], "section header table (28 entries of 64 bytes", "runs past the end")


def test_section_header_size_and_name_table_index():
    data = bytearray(SAMPLE)
    struct.pack_into("<H", data, 0x3A, 56)
    refused(data, "section header size 56, expected 64")
    data = bytearray(SAMPLE)
    struct.pack_into("<H", data, 0x3E, 99)
    refused(data, "section name table index 99 does not exist")


def test_section_data_past_the_end_names_the_section():
    data = bytearray(SAMPLE)
    header_field(data, ".BTF", 5, 1 << 40)
    refused(data, "section .BTF", "runs past the end of the file")


@pytest.mark.parametrize("field, value, words", [
    (9, 20, "symbol table entry size 20, expected 24"),
    (5, 456 - 4, "not a whole number of 24-byte entries"),
    (6, 99, "sh_link 99 names no section"),
    (6, 2, "sh_link 2 names section .text of type 1, not a string table"),
])
def test_symbol_table_framing(field, value, words):
    data = bytearray(SAMPLE)
    header_field(data, ".symtab", field, value)
    refused(data, "section .symtab", words)


@pytest.mark.parametrize("field, value, words", [
    (9, 24, "relocation table entry size 24, expected 16"),
    (5, 32 - 8, "not a whole number of 16-byte entries"),
    (7, 77, "relocations for section 77, which does not exist"),
    (6, 1, "sh_link 1 names section .strtab of type 3, not a symbol table"),
])
def test_relocation_table_framing(field, value, words):
    data = bytearray(SAMPLE)
    header_field(data, ".relsocket", field, value)
    refused(data, "section .relsocket", words)


def _rel_entry(k: int) -> int:
    return ELF.get_section_by_name(".relsocket")["sh_offset"] + 16 * k


def test_relocation_naming_a_missing_symbol_or_no_instruction():
    data = bytearray(SAMPLE)
    r_offset, r_info = struct.unpack_from("<QQ", data, _rel_entry(0))
    struct.pack_into("<QQ", data, _rel_entry(0), r_offset, (9999 << 32) | (r_info & 0xFFFFFFFF))
    refused(data, "section .relsocket", "names missing symbol 9999")
    data = bytearray(SAMPLE)
    struct.pack_into("<Q", data, _rel_entry(0), r_offset + 3)
    refused(data, "section .relsocket", "is not an instruction of the section")


def test_call_relocated_outside_text_is_refused_when_writing():
    """A call into .text whose target slot lies past .text (was: 'index -122 is out of bounds')."""
    data = bytearray(SAMPLE)
    socket = ELF.get_section_by_name("socket")["sh_offset"]
    obj = read_object(SAMPLE)
    call = next(r.slot for r in obj.programs["socket"].meta["relocations"] if r.type == 10 and r.symbol_section == ".text")
    struct.pack_into("<i", data, socket + call * 8 + 4, 5000)
    refused(data, "section .relsocket", f"call at slot {call} targets .text slot", "outside .text", build=True)


def _line_info_records() -> list[tuple[int, str, int]]:
    """(file offset of insn_off, section name, insn_off) of every line_info record."""
    ext = ELF.get_section_by_name(".BTF.ext")
    base = ext["sh_offset"]
    btf = read_object(SAMPLE).btf
    hdr_len, _fo, _fl, lo, ll = struct.unpack_from("<IIIII", SAMPLE, base + 4)
    pos, end = base + hdr_len + lo, base + hdr_len + lo + ll
    rec_size = struct.unpack_from("<I", SAMPLE, pos)[0]
    pos += 4
    out = []
    while pos < end:
        sec_off, num = struct.unpack_from("<II", SAMPLE, pos)
        pos += 8
        for k in range(num):
            out.append((pos + k * rec_size, btf.string(sec_off), struct.unpack_from("<I", SAMPLE, pos + k * rec_size)[0]))
        pos += num * rec_size
    return out


def test_line_info_on_the_second_half_of_an_ld_imm64():
    prog = read_object(SAMPLE).programs["socket"]
    ld = next(s for s in prog.insn_slots().tolist() if prog.slots["code"][s] == 0x18)
    at = next(off for off, sec, _ in _line_info_records() if sec == "socket")
    data = bytearray(SAMPLE)
    struct.pack_into("<I", data, at, (ld + 1) * 8)
    refused(data, "section .BTF.ext", "line_info record 0 of section 'socket'", f"slot {ld + 1} is the second half")


def test_unaligned_line_info_offset_is_refused_not_rounded():
    at = _line_info_records()[1][0]
    data = bytearray(SAMPLE)
    struct.pack_into("<I", data, at, struct.unpack_from("<I", data, at)[0] + 3)
    refused(data, "section .BTF.ext", "is not a multiple of 8")


def test_cli_names_the_file_and_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.o"
    bad.write_bytes(SAMPLE[:59])
    out = tmp_path / "out.o"
    for argv in (["patch", str(bad), "-o", str(out), "--pass", "div-guard"], ["disasm", str(bad)]):
        assert main(argv) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"bpfpatch: error: {bad}: offset 0x0: ELF header truncated: 59 of 64 bytes"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.o"]


def test_empty_program_is_named_not_a_subprogram_error(tmp_path, capsys):
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    assert main(["patch", str(empty), "-o", str(tmp_path / "o.bin"), "--pass", "dce"]) == 1
    err = capsys.readouterr().err
    assert f"{empty}: no instructions" in err and "subprogram" not in err

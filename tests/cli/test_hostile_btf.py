"""Corrupt BTF and .BTF.ext: every structure the kernel or libbpf would refuse is an `ElfError` naming its place."""

from __future__ import annotations

import struct

import pytest

from bpfpatch.btf import Btf, BtfKind, parse_btf_ext
from bpfpatch.errors import ElfError

STRINGS = b"\0int\0s\0next\0.text\0file.c\0line\0"
INT_NAME, S_NAME, NEXT_NAME, TEXT_NAME, FILE_NAME, LINE_NAME = 1, 5, 7, 12, 18, 25


def info(kind: int, vlen: int = 0) -> int:
    return (kind << 24) | vlen


def t_int(name: int = INT_NAME) -> bytes:
    return struct.pack("<III", name, info(BtfKind.INT), 4) + struct.pack("<I", 32)


def t_array(elem: int, nelems: int = 2, index: int = 1) -> bytes:
    return struct.pack("<III", 0, info(BtfKind.ARRAY), 0) + struct.pack("<III", elem, index, nelems)


def t_ref(kind: BtfKind, target: int, name: int = 0) -> bytes:
    return struct.pack("<III", name, info(kind), target)


def t_struct(members: list[tuple[int, int, int]], size: int = 8, name: int = S_NAME) -> bytes:
    return struct.pack("<III", name, info(BtfKind.STRUCT, len(members)), size) + b"".join(
        struct.pack("<III", *m) for m in members)


def blob(types: bytes, strings: bytes = STRINGS, hdr_len: int = 24) -> bytes:
    hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, hdr_len, 0, len(types), len(types), len(strings))
    return hdr + b"\0" * (hdr_len - 24) + types + strings


def refused(raw: bytes, *words: str) -> ElfError:
    with pytest.raises(ElfError) as err:
        Btf(raw)
    for w in words:
        assert w in str(err.value), str(err.value)
    assert "section .BTF" in str(err.value)
    return err.value


def test_a_well_formed_blob_parses():
    btf = Btf(blob(t_int() + t_array(1, 3) + t_struct([(NEXT_NAME, 4, 0)]) + t_ref(BtfKind.PTR, 3)))
    assert btf.size_of(2) == 12 and btf.size_of(3) == 8
    assert btf.member(3, "next") == (0, 8)  # a struct may point to itself


def test_self_referencing_array_is_refused_by_type_and_offset():
    err = refused(blob(t_int() + t_array(2)), "type [2] ARRAY contains itself")
    assert err.offset == 24 + 16  # the array's header, after the 16-byte INT


def test_struct_containing_itself_and_typedef_loop_are_refused():
    refused(blob(t_int() + t_struct([(NEXT_NAME, 2, 0)])), "STRUCT contains itself")
    refused(blob(t_ref(BtfKind.TYPEDEF, 2, INT_NAME) + t_ref(BtfKind.CONST, 1)), "contains itself")


def test_5000_deep_nesting_resolves_iteratively():
    depth = 5000
    arrays = b"".join(t_array(k, 1) for k in range(1, depth + 1))  # type k+1 = int-or-array k [1]
    btf = Btf(blob(t_int() + arrays))
    assert btf.size_of(depth + 1) == 4
    typedefs = b"".join(t_ref(BtfKind.TYPEDEF, k) for k in range(1, depth + 1))
    btf = Btf(blob(t_int() + typedefs))
    assert btf.resolve(depth + 1).kind == BtfKind.INT and btf.size_of(depth + 1) == 4


def test_name_offsets_past_the_string_section_are_refused():
    refused(blob(t_int(name=len(STRINGS))), "type [1] INT", "name offset", "past the string section")
    refused(blob(t_int() + t_struct([(999, 1, 0)])), "type [2] STRUCT member 0", "name offset 999")


def test_missing_type_ids_are_refused():
    refused(blob(t_int() + t_ref(BtfKind.PTR, 7)), "type [2] PTR", "type [7] does not exist")
    refused(blob(t_int() + t_array(1, 2, index=9)), "index type [9] does not exist")
    refused(blob(t_int() + t_struct([(NEXT_NAME, 5, 0)])), "member 0 type [5] does not exist")


def test_header_and_section_framing_is_checked():
    good = blob(t_int())
    refused(good[:20], "truncated")
    refused(blob(t_int(), hdr_len=16), "header length 16")
    refused(blob(t_int(), strings=b"x\0int\0"), "must start and end with a NUL")
    refused(blob(t_int(), strings=b"\0int"), "must start and end with a NUL")
    cut = bytearray(good)
    struct.pack_into("<I", cut, 12, 200)  # type_len past the end
    refused(bytes(cut), "type section runs past the end")
    cut = bytearray(good)
    struct.pack_into("<I", cut, 4 + 4, 2)  # type_off 2: unaligned
    refused(bytes(cut), "not 4-byte aligned")
    refused(blob(struct.pack("<III", 0, info(25), 0)), "unknown BTF kind 25")
    refused(blob(struct.pack("<III", 0, info(BtfKind.STRUCT, 3), 4)), "data truncated")


def test_string_lookups_past_the_end_are_errors_not_empty():
    btf = Btf(blob(t_int()))
    assert btf.string(INT_NAME) == "int"
    with pytest.raises(ElfError, match="past the string section"):
        btf.string(len(STRINGS))


# --- .BTF.ext -------------------------------------------------------------------------------


def ext_blob(func: bytes = b"", line: bytes = b"", core: bytes | None = None) -> bytes:
    hdr_len = 24 if core is None else 32
    body = func + line + (core or b"")
    fields = [0, len(func), len(func), len(line)]
    if core is not None:
        fields += [len(func) + len(line), len(core)]
    return struct.pack("<HBBI", 0xEB9F, 1, 0, hdr_len) + struct.pack("<" + "I" * len(fields), *fields) + body


def sub(rec_size: int, groups: list[tuple[int, list[tuple]]]) -> bytes:
    out = struct.pack("<I", rec_size)
    for sec, recs in groups:
        out += struct.pack("<II", sec, len(recs))
        for r in recs:
            out += struct.pack("<" + "I" * len(r), *r)
    return out


BTF = Btf(blob(t_int()))


def ext_refused(raw: bytes, *words: str) -> None:
    with pytest.raises(ElfError) as err:
        parse_btf_ext(raw, BTF.string)
    for w in words:
        assert w in str(err.value), str(err.value)
    assert "section .BTF.ext" in str(err.value)


FUNC = sub(8, [(TEXT_NAME, [(0, 1), (16, 1)])])
LINE = sub(16, [(TEXT_NAME, [(0, FILE_NAME, LINE_NAME, 7 << 10)])])
CORE = sub(16, [(TEXT_NAME, [(8, 1, INT_NAME, 0)])])


def test_a_well_formed_ext_parses():
    ext = parse_btf_ext(ext_blob(FUNC, LINE, CORE), BTF.string)
    assert [f.insn_off for f in ext.func_info[".text"]] == [0, 2]
    assert ext.line_info[".text"][0].line_off == LINE_NAME
    assert [tuple(r) for r in ext.core_relo[".text"]] == [(1, 1, INT_NAME, 0)]


@pytest.mark.parametrize("which", ["func_info", "line_info", "core_relo"])
def test_record_size_zero_is_refused_in_every_subsection(which):
    parts = {"func_info": FUNC, "line_info": LINE, "core_relo": CORE}
    parts[which] = struct.pack("<I", 0) + parts[which][4:]
    ext_refused(ext_blob(parts["func_info"], parts["line_info"], parts["core_relo"]),
                f"{which} record size 0 is invalid")


@pytest.mark.parametrize("which", ["func_info", "line_info", "core_relo"])
def test_unaligned_insn_off_is_refused_not_rounded(which):
    parts = {
        "func_info": sub(8, [(TEXT_NAME, [(0, 1), (13, 1)])]),
        "line_info": sub(16, [(TEXT_NAME, [(12, FILE_NAME, LINE_NAME, 0)])]),
        "core_relo": sub(16, [(TEXT_NAME, [(4, 1, INT_NAME, 0)])]),
    }
    chosen = {"func_info": FUNC, "line_info": LINE, "core_relo": CORE}
    chosen[which] = parts[which]
    ext_refused(ext_blob(chosen["func_info"], chosen["line_info"], chosen["core_relo"]),
                f"{which} record", "of section '.text'", "is not a multiple of 8")


def test_counts_and_lengths_are_checked_before_allocating():
    huge = struct.pack("<I", 8) + struct.pack("<II", TEXT_NAME, 0x7FFFFFFF) + b"\0" * 16
    ext_refused(ext_blob(huge), "claims 2147483647 records")
    ext_refused(ext_blob(sub(8, [(TEXT_NAME, [])])), "has no records")
    ext_refused(ext_blob(FUNC[:-3]), "func_info")  # a partial record
    raw = bytearray(ext_blob(FUNC))
    struct.pack_into("<I", raw, 12, 4096)  # func_len past the end
    ext_refused(bytes(raw), "runs past the end of .BTF.ext")
    raw = bytearray(ext_blob(FUNC))
    struct.pack_into("<I", raw, 4, 6)  # hdr_len
    ext_refused(bytes(raw), "header length 6")


def test_string_offsets_in_records_are_checked():
    ext_refused(ext_blob(sub(8, [(999, [(0, 1)])])), "func_info group: section name", "string offset 999")
    ext_refused(ext_blob(b"", sub(16, [(TEXT_NAME, [(0, 999, LINE_NAME, 0)])])), "line_info record 0", "file_name_off")
    ext_refused(ext_blob(b"", sub(16, [(TEXT_NAME, [(0, FILE_NAME, 5000, 0)])])), "line_off")
    ext_refused(ext_blob(b"", b"", sub(16, [(TEXT_NAME, [(0, 1, 777, 0)])])), "access_str_off")


def test_a_crafted_object_with_a_self_referencing_array_fails_cleanly(tmp_path):
    """End to end: the issue's RecursionError object gives one error line, exit 1, no output."""
    from bpfpatch.cli import main
    from bpfpatch.cli.demo_cmd import sample_path
    from elftools.elf.elffile import ELFFile
    import io

    data = bytearray(sample_path().read_bytes())
    sec = ELFFile(io.BytesIO(bytes(data))).get_section_by_name(".BTF")
    base = sec["sh_offset"]
    hdr_len, type_off = struct.unpack_from("<II", data, base + 4)
    first = base + hdr_len + type_off
    # Find the first ARRAY and make its element type itself.
    btf = Btf(bytes(data[base : base + sec["sh_size"]]))
    arr = next(t for t in btf.types if t.kind == BtfKind.ARRAY)
    struct.pack_into("<I", data, arr.offset - (hdr_len + type_off) + first + 12, arr.id)
    src = tmp_path / "bad.o"
    src.write_bytes(bytes(data))
    out = tmp_path / "out.o"
    assert main(["patch", str(src), "-o", str(out), "--pass", "div-guard"]) == 1
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bad.o"]

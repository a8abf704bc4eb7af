"""BTF.ext: func_info, line_info and CO-RE relocation records per ELF section.

In the file, ``insn_off`` is a byte offset into the section; bpfpatch keeps
slot indices (byte offset / 8), as the kernel does after loading.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Iterable, NamedTuple

import numpy as np

from bpfpatch.errors import BpfPatchError, ElfError
from bpfpatch.isa import STRUCT_ORDER
from bpfpatch.program import FuncInfo, LineInfo

_HDR = "HBBIIIII"
_CORE_HDR_LEN = 32  # a header this long or longer also names the CO-RE subsection


class CoreReloKind(IntEnum):
    """enum bpf_core_relo_kind: what libbpf writes into the instruction."""

    FIELD_BYTE_OFFSET = 0
    FIELD_BYTE_SIZE = 1
    FIELD_EXISTS = 2
    FIELD_SIGNED = 3
    FIELD_LSHIFT_U64 = 4
    FIELD_RSHIFT_U64 = 5
    TYPE_ID_LOCAL = 6
    TYPE_ID_TARGET = 7
    TYPE_EXISTS = 8
    TYPE_SIZE = 9
    ENUMVAL_EXISTS = 10
    ENUMVAL_VALUE = 11
    TYPE_MATCHES = 12


class CoreRelo(NamedTuple):
    """A CO-RE relocation record (struct bpf_core_relo): libbpf patches the instruction at slot ``insn_off``.

    It rewrites the immediate of an ALU-immediate or ld_imm64 instruction, or
    the offset of a load or store, with a value of the target kernel's BTF
    (``access_str_off`` names the field path in the .BTF string table).
    """

    insn_off: int
    type_id: int
    access_str_off: int
    kind: int


class CoreRelos(list):
    """The CO-RE records of one program, kept with their instructions through every rewrite.

    A record follows its instruction (``insn_map``); one whose instruction was
    deleted is dropped, as clang would not emit it for the new code.
    """

    def remap(self, insn_map: np.ndarray, idx_map: np.ndarray | None, new_len: int) -> "CoreRelos":
        """The records at the new slots of their instructions."""
        return CoreRelos(r._replace(insn_off=int(insn_map[r.insn_off])) for r in self if insn_map[r.insn_off] >= 0)

    def pinned_slots(self) -> Iterable[int]:
        """The relocated instructions: no pass may change the field libbpf patches."""
        return (r.insn_off for r in self)


#: The subsections of .BTF.ext, in file order.
EXT_KINDS = ("func_info", "line_info", "core_relo")


@dataclass
class BtfExt:
    """A parsed .BTF.ext: records by section name, and the order clang laid the groups out in."""

    func_info: dict[str, list[FuncInfo]] = field(default_factory=dict)
    line_info: dict[str, list[LineInfo]] = field(default_factory=dict)
    core_relo: dict[str, list[CoreRelo]] = field(default_factory=dict)
    func_rec_size: int = 8
    line_rec_size: int = 16
    core_rec_size: int = 16
    #: kind ("func_info", ...) -> [(section name offset in .BTF strings, section name)], in file order
    groups: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    hdr_len: int = 24
    raw: bytes = b""


def _records(raw: bytes, start: int, length: int, min_rec: int, what: str, name_of, bo: str = "<",
             groups: list | None = None) -> tuple[int, dict[str, list[tuple]]]:
    """One subsection: (record size, section name -> records), every count and offset checked first.

    Refused, as libbpf refuses them: a subsection outside the data or not 4-byte
    aligned, a record size below `min_rec` or not a multiple of 4 (0 included),
    a group of zero records or more records than bytes, a section name offset
    past the string section, an insn_off that is not a multiple of 8.
    """
    out: dict[str, list[tuple]] = {}
    if length == 0:
        return min_rec, out
    end = start + length
    if end > len(raw) or length < 4:
        raise ElfError(f"{what} subsection ({length} bytes at {start}) runs past the end of .BTF.ext ({len(raw)} bytes)",
                       section=".BTF.ext", offset=start)
    if start % 4:
        raise ElfError(f"{what} subsection is not 4-byte aligned", section=".BTF.ext", offset=start)
    (rec_size,) = struct.unpack_from(bo + "I", raw, start)
    if rec_size < min_rec or rec_size % 4:
        raise ElfError(f"{what} record size {rec_size} is invalid (a multiple of 4, at least {min_rec})",
                       section=".BTF.ext", offset=start)
    fmt = bo + "I" * (min_rec // 4)
    pos = start + 4
    while pos < end:
        if pos + 8 > end:
            raise ElfError(f"{what} section header truncated", section=".BTF.ext", offset=pos)
        sec_off, num = struct.unpack_from(bo + "II", raw, pos)
        try:
            name = name_of(sec_off)
        except BpfPatchError as exc:
            raise ElfError(f"{what} group: section name: {exc}", section=".BTF.ext", offset=pos) from None
        pos += 8
        if num == 0:
            raise ElfError(f"{what} group of section {name!r} has no records", section=".BTF.ext", offset=pos - 4)
        # Refuse counts the section cannot hold before allocating anything.
        if num * rec_size > end - pos:
            raise ElfError(f"{what} claims {num} records of {rec_size} bytes, only {end - pos} bytes left",
                           section=".BTF.ext", offset=pos - 4)
        if rec_size == min_rec:  # the common case: the records are the whole group, unpacked in one pass
            recs = list(struct.iter_unpack(fmt, raw[pos:pos + num * rec_size]))
        else:
            recs = [struct.unpack_from(fmt, raw, pos + k * rec_size) for k in range(num)]
        if any(rec[0] % 8 for rec in recs):
            k = next(k for k, rec in enumerate(recs) if rec[0] % 8)
            raise ElfError(f"{what} record {k} of section {name!r}: insn_off {recs[k][0]} is not a multiple of 8",
                           section=".BTF.ext", offset=pos + k * rec_size)
        out.setdefault(name, []).extend(recs)
        if groups is not None:
            groups.append((sec_off, name))
        pos += num * rec_size
    return rec_size, out


def _check_strings(recs: dict[str, list[tuple]], fields: tuple[tuple[int, str], ...], what: str, string_of) -> None:
    """Every string offset field of every record names a string of .BTF (each distinct offset asked once; the
    first record in file order with one that does not is named)."""
    bad = set()
    for off in {rec[col] for rows in recs.values() for rec in rows for col, _ in fields}:
        try:
            string_of(off)
        except BpfPatchError:
            bad.add(off)
    if not bad:
        return
    for sec, rows in recs.items():
        for k, rec in enumerate(rows):
            for col, fname in fields:
                if rec[col] in bad:
                    try:
                        string_of(rec[col])
                    except BpfPatchError as exc:
                        raise ElfError(f"{what} record {k} of section {sec!r}: {fname}: {exc}",
                                       section=".BTF.ext") from None


def parse_btf_ext(raw: bytes, string_of, byteorder: str = "little") -> BtfExt:
    """Parse .BTF.ext; `string_of(off)` names sections from the .BTF string table.

    `string_of` must raise a `BpfPatchError` for an offset past the string
    section (`Btf.string` does): such records are refused by name.
    """
    bo = STRUCT_ORDER[byteorder]
    hdr = struct.Struct(bo + _HDR)
    if len(raw) < hdr.size:
        raise ElfError("BTF.ext header truncated", section=".BTF.ext", offset=0)
    magic, _ver, _flags, hdr_len, fi_off, fi_len, li_off, li_len = hdr.unpack_from(raw, 0)
    if magic != 0xEB9F:
        raise ElfError(f"bad BTF.ext magic {magic:#x}", section=".BTF.ext", offset=0)
    if not hdr.size <= hdr_len <= len(raw) or hdr_len % 4:
        raise ElfError(f"BTF.ext header length {hdr_len} is invalid ({hdr.size}..{len(raw)}, a multiple of 4)",
                       section=".BTF.ext", offset=4)
    groups: dict[str, list[tuple[int, str]]] = {k: [] for k in EXT_KINDS}
    fsize, funcs = _records(raw, hdr_len + fi_off, fi_len, 8, "func_info", string_of, bo, groups["func_info"])
    lsize, lines = _records(raw, hdr_len + li_off, li_len, 16, "line_info", string_of, bo, groups["line_info"])
    _check_strings(lines, ((1, "file_name_off"), (2, "line_off")), "line_info", string_of)
    csize, cores = 16, {}
    if hdr_len >= _CORE_HDR_LEN:
        cr_off, cr_len = struct.unpack_from(bo + "II", raw, 24)
        csize, cores = _records(raw, hdr_len + cr_off, cr_len, 16, "core_relo", string_of, bo, groups["core_relo"])
        _check_strings(cores, ((2, "access_str_off"),), "core_relo", string_of)
    ext = BtfExt(func_rec_size=fsize, line_rec_size=lsize, core_rec_size=csize, groups=groups, hdr_len=hdr_len, raw=raw)
    new = tuple.__new__  # the records' NamedTuples made in C (their `__new__` is a Python frame a record)
    for sec, recs in funcs.items():
        ext.func_info[sec] = [new(FuncInfo, (off // 8, tid)) for off, tid in recs]
    for sec, recs in lines.items():
        ext.line_info[sec] = [new(LineInfo, (off // 8, f, l, lc)) for off, f, l, lc in recs]
    for sec, recs in cores.items():
        ext.core_relo[sec] = [new(CoreRelo, (off // 8, tid, acc, kind)) for off, tid, acc, kind in recs]
    return ext


def func_info_bytes(records: list[FuncInfo]) -> bytes:
    """Kernel form (insn_off in slots) for BPF_PROG_LOAD."""
    return b"".join(struct.pack("<II", r.insn_off, r.type_id) for r in records)


def line_info_bytes(records: list[LineInfo]) -> bytes:
    """Kernel form (insn_off in slots) for BPF_PROG_LOAD."""
    return b"".join(struct.pack("<IIII", r.insn_off, r.file_name_off, r.line_off, r.line_col) for r in records)

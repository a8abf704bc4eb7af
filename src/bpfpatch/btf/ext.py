"""BTF.ext: func_info and line_info records per ELF section.

In the file, ``insn_off`` is a byte offset into the section; bpfpatch keeps
slot indices (byte offset / 8), as the kernel does after loading.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from bpfpatch.errors import ElfError
from bpfpatch.program import FuncInfo, LineInfo

_HDR = "HBBIIIII"


@dataclass
class BtfExt:
    func_info: dict[str, list[FuncInfo]] = field(default_factory=dict)
    line_info: dict[str, list[LineInfo]] = field(default_factory=dict)
    func_rec_size: int = 8
    line_rec_size: int = 16
    raw: bytes = b""


def _records(raw: bytes, start: int, length: int, min_rec: int, what: str, name_of, bo: str = "<") -> tuple[int, dict[str, list[tuple]]]:
    out: dict[str, list[tuple]] = {}
    if length == 0:
        return min_rec, out
    end = start + length
    if end > len(raw) or length < 4:
        raise ElfError(f"{what} runs past the end of .BTF.ext", section=".BTF.ext", offset=start)
    (rec_size,) = struct.unpack_from(bo + "I", raw, start)
    if rec_size < min_rec or rec_size % 4:
        raise ElfError(f"{what} record size {rec_size} is invalid", section=".BTF.ext", offset=start)
    pos = start + 4
    while pos < end:
        if pos + 8 > end:
            raise ElfError(f"{what} section header truncated", section=".BTF.ext", offset=pos)
        sec_off, num = struct.unpack_from(bo + "II", raw, pos)
        pos += 8
        # Refuse counts the section cannot hold before allocating anything.
        if num * rec_size > end - pos:
            raise ElfError(f"{what} claims {num} records of {rec_size} bytes, only {end - pos} bytes left",
                           section=".BTF.ext", offset=pos - 4)
        recs = [struct.unpack_from(bo + "I" * (min_rec // 4), raw, pos + k * rec_size) for k in range(num)]
        out.setdefault(name_of(sec_off), []).extend(recs)
        pos += num * rec_size
    return rec_size, out


def parse_btf_ext(raw: bytes, string_of, byteorder: str = "little") -> BtfExt:
    """Parse .BTF.ext; `string_of(off)` names sections from the .BTF string table."""
    bo = "<" if byteorder == "little" else ">"
    hdr = struct.Struct(bo + _HDR)
    if len(raw) < hdr.size:
        raise ElfError("BTF.ext header truncated", section=".BTF.ext", offset=0)
    magic, _ver, _flags, hdr_len, fi_off, fi_len, li_off, li_len = hdr.unpack_from(raw, 0)
    if magic != 0xEB9F:
        raise ElfError(f"bad BTF.ext magic {magic:#x}", section=".BTF.ext", offset=0)
    fsize, funcs = _records(raw, hdr_len + fi_off, fi_len, 8, "func_info", string_of, bo)
    lsize, lines = _records(raw, hdr_len + li_off, li_len, 16, "line_info", string_of, bo)
    ext = BtfExt(func_rec_size=fsize, line_rec_size=lsize, raw=raw)
    for sec, recs in funcs.items():
        ext.func_info[sec] = [FuncInfo(off // 8, tid) for off, tid in recs]
    for sec, recs in lines.items():
        ext.line_info[sec] = [LineInfo(off // 8, f, l, lc) for off, f, l, lc in recs]
    return ext


def func_info_bytes(records: list[FuncInfo]) -> bytes:
    """Kernel form (insn_off in slots) for BPF_PROG_LOAD."""
    return b"".join(struct.pack("<II", r.insn_off, r.type_id) for r in records)


def line_info_bytes(records: list[LineInfo]) -> bytes:
    return b"".join(struct.pack("<IIII", r.insn_off, r.file_name_off, r.line_off, r.line_col) for r in records)

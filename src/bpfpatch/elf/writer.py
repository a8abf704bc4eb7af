"""BPF ELF objects out: rewritten program sections in an otherwise unchanged object.

For every rewritten section: its bytes, its relocations (moved with their
instructions through ``insn_map``), the symbols that live in it (through
``idx_map``), calls from other sections into a rewritten ``.text``, and its
func_info / line_info / CO-RE records in ``.BTF.ext`` (and ``.rel.BTF.ext``)
and the entries of its ``.jumptables`` are regenerated; every other section is carried over byte for byte, at its
old offset when nothing before it changed size.  DWARF (``.debug_*``) is
carried over unchanged: its addresses describe the original code.  Objects of
either byte order are written in their own (`_Formats`).
"""

from __future__ import annotations

import io
import struct
from itertools import chain
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from elftools.elf.elffile import ELFFile

from bpfpatch.btf.ext import EXT_KINDS
from bpfpatch.elf.model import JUMP_TABLE_SECTION, JUMP_TABLES, R_BPF_64_32, R_BPF_64_64, R_BPF_64_NODYLD32, ElfModel
from bpfpatch.errors import ElfError
from bpfpatch.fileio import write_atomic
from bpfpatch.isa import STRUCT_ORDER, ByteOrder
from bpfpatch.program import Program

class _Formats:
    """The object's byte order (`byteorder`, and `bo` its `struct` prefix) and its ELF64 records: section header,
    symbol, relocation."""

    __slots__ = ("bo", "byteorder", "shdr", "sym", "rel")

    def __init__(self, byteorder: ByteOrder) -> None:
        self.byteorder, self.bo = byteorder, STRUCT_ORDER[byteorder]
        bo = self.bo
        self.shdr = struct.Struct(bo + "IIQQQQIIQQ")
        self.sym = struct.Struct(bo + "IBBHQQ")
        self.rel = struct.Struct(bo + "QQ")


@dataclass
class _Section:
    index: int
    name: str
    type: str
    header: list  # the 10 raw header fields
    data: bytes


def _maps(prog: Program, old_len: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(idx_map, insn_map, new slot count), identity when the program was not linearized."""
    if prog.idx_map is None or prog.insn_map is None:
        ident = np.arange(old_len, dtype=np.int64)
        return ident, ident, old_len
    return prog.idx_map, prog.insn_map, len(prog.slots)


def _remap_slot(idx_map: np.ndarray, slot: int, new_len: int) -> int:
    return new_len if slot >= len(idx_map) else int(idx_map[slot])


def write_object(obj: ElfModel, programs: dict[str, Program], path: str | Path) -> None:
    """Write `obj` with `programs` (section -> rewritten Program) atomically to `path`."""
    write_atomic(path, build_object(obj, programs))


def build_object(obj: ElfModel, programs: dict[str, Program]) -> bytes:
    """The rewritten object as bytes; a malformed input object raises `ElfError`."""
    try:
        return _build_object(obj, programs)
    except ElfError:
        raise
    except (struct.error, IndexError, ValueError, KeyError, OverflowError, TypeError) as exc:
        raise ElfError(f"cannot rewrite a malformed object: {exc}") from exc
    except Exception as exc:  # pyelftools' own parse errors
        if type(exc).__module__.startswith("elftools"):
            raise ElfError(f"cannot rewrite a malformed object: {exc}") from exc
        raise


def _build_object(obj: ElfModel, programs: dict[str, Program]) -> bytes:
    elf = ELFFile(io.BytesIO(obj.data))
    if elf.elfclass != 64:
        raise ElfError("only 64-bit BPF objects can be written")
    f = _Formats("little" if elf.little_endian else "big")
    bo = f.bo
    shoff = elf["e_shoff"]
    sections: list[_Section] = []
    for i, sec in enumerate(elf.iter_sections()):
        hdr = list(f.shdr.unpack_from(obj.data, shoff + i * elf["e_shentsize"]))
        body = b"" if sec["sh_type"] in ("SHT_NOBITS", "SHT_NULL") else obj.data[sec["sh_offset"] : sec["sh_offset"] + sec["sh_size"]]
        sections.append(_Section(i, sec.name, sec["sh_type"], hdr, body))
    by_name = {s.name: s for s in sections}
    for name in programs:
        if name not in obj.programs:
            raise ElfError(f"no program section {name!r} to rewrite (have: {', '.join(obj.programs)})")

    maps = {name: _maps(prog, len(obj.programs[name].slots)) for name, prog in programs.items()}
    # 1. Program bytes.
    for name, prog in programs.items():
        by_name[name].data = prog.to_bytes(f.byteorder)
    # 2. Relocations of rewritten sections; calls into a rewritten .text from any section.
    symtab = by_name.get(".symtab")
    syms = [list(f.sym.unpack_from(symtab.data, o)) for o in range(0, len(symtab.data), f.sym.size)] if symtab else []
    sec_of_index = {s.index: s.name for s in sections}
    for rel in sections:
        if rel.type != "SHT_REL":
            continue
        target = sec_of_index.get(rel.header[7])  # sh_info: the section the relocations apply to
        if target not in obj.programs:
            continue
        entries = [list(f.rel.unpack_from(rel.data, o)) for o in range(0, len(rel.data), f.rel.size)]
        tgt_prog = programs.get(target)
        code_bytes = bytearray(by_name[target].data)
        kept = []
        for e in entries:
            old_slot = e[0] // 8
            rtype, sym = e[1] & 0xFFFFFFFF, e[1] >> 32
            if sym >= len(syms):
                raise ElfError(f"relocation names missing symbol {sym}", section=rel.name, offset=e[0])
            slot = old_slot
            if tgt_prog is not None:
                _, insn_map, _ = maps[target]
                slot = int(insn_map[old_slot]) if old_slot < len(insn_map) else -1
                if slot < 0:
                    continue  # dead code went, and its relocation with it (clang would not emit one)
                code = code_bytes[slot * 8]
                if (rtype == R_BPF_64_64 and code != 0x18) or (rtype == R_BPF_64_32 and code not in (0x85, 0x18)):
                    raise ElfError(f"relocation at slot {old_slot} now points at opcode {code:#x} (slot {slot})", section=rel.name, offset=e[0])
                e[0] = slot * 8
            # A call relocated against the .text section symbol encodes its target slot in imm.
            sym_sec = sec_of_index.get(syms[sym][3])
            if rtype == R_BPF_64_32 and sym_sec == ".text" and ".text" in programs and syms[sym][1] & 0xF == 3:
                imm = struct.unpack_from(bo + "i", code_bytes, slot * 8 + 4)[0]
                old_target = syms[sym][4] // 8 + imm + 1
                idx_map, _, new_len = maps[".text"]
                if not 0 <= old_target < len(idx_map):
                    raise ElfError(f"call at slot {old_slot} targets .text slot {old_target}, outside .text "
                                   f"({len(idx_map)} slots)", section=rel.name, offset=e[0])
                new_target = _remap_slot(idx_map, old_target, new_len)
                struct.pack_into(bo + "i", code_bytes, slot * 8 + 4, new_target - 1)
            # A function address (`r2 = callback ll`; libbpf makes it a PSEUDO_FUNC load) against a code
            # section's symbol: imm is the function's byte offset there, which moves with that code.
            if rtype == R_BPF_64_64 and sym_sec in programs and syms[sym][1] & 0xF == 3 and code_bytes[slot * 8] == 0x18:
                imm = struct.unpack_from(bo + "i", code_bytes, slot * 8 + 4)[0]
                base = syms[sym][4]
                idx_map, _, new_len = maps[sym_sec]
                new_target = _remap_slot(idx_map, (base + imm) // 8, new_len)
                struct.pack_into(bo + "i", code_bytes, slot * 8 + 4, new_target * 8 - base)
            kept.append(e)
        by_name[target].data = bytes(code_bytes)
        rel.data = b"".join(f.rel.pack(*e) for e in kept)
    # 3. Symbols that live in rewritten sections (values are byte offsets).
    for sym in syms:
        name = sec_of_index.get(sym[3])
        if name in programs:
            idx_map, _, new_len = maps[name]
            start, size = sym[4] // 8, sym[5] // 8
            new_start = _remap_slot(idx_map, start, new_len)
            sym[4] = new_start * 8
            if size:
                sym[5] = (_remap_slot(idx_map, start + size, new_len) - new_start) * 8
    if symtab:
        symtab.data = b"".join(f.sym.pack(*s) for s in syms)
    # 4. Jump tables: every entry follows its target instruction.
    if JUMP_TABLE_SECTION in by_name:
        table = bytearray(by_name[JUMP_TABLE_SECTION].data)
        for prog in programs.values():
            for jt in prog.meta.get(JUMP_TABLES) or ():
                struct.pack_into(f"{bo}{len(jt.targets)}Q", table, jt.offset, *(t * 8 for t in jt.targets))
        by_name[JUMP_TABLE_SECTION].data = bytes(table)
    # 5. .BTF.ext records and their relocations.
    if ".BTF.ext" in by_name and obj.btf_ext is not None and programs:
        _rewrite_btf_ext(obj, programs, sections, syms, f)
    return _layout(obj.data, elf, sections, f)


def _ext_records(kind: str, prog: Program | None, original: list) -> list[tuple[int, ...]] | None:
    """The records of one kind for one section, in file form (insn_off in bytes); None: keep the original."""
    if prog is None:
        return None
    if kind == "func_info":
        recs = prog.func_info
    elif kind == "line_info":
        recs = prog.line_info
    else:
        recs = prog.core_relos if (prog.core_relos or original) else None
    if recs is None:
        return None
    return [(r[0] * 8, *r[1:]) for r in recs]


def _rewrite_btf_ext(obj: ElfModel, programs: dict[str, Program], sections: list[_Section], syms: list[list],
                     f: _Formats) -> None:
    """Regenerate .BTF.ext (func_info, line_info, CO-RE records) and .rel.BTF.ext as clang lays them out.

    Subsections follow each other in the header's order, groups keep the
    original's section order, and .rel.BTF.ext holds one relocation per
    record (its insn_off field, against the record's section), in file order.
    """
    ext = obj.btf_ext
    ext_sec = next(s for s in sections if s.name == ".BTF.ext")
    hdr_len = ext.hdr_len
    kinds = EXT_KINDS if hdr_len >= 32 else EXT_KINDS[:2]
    sizes = {"func_info": ext.func_rec_size, "line_info": ext.line_rec_size, "core_relo": ext.core_rec_size}
    out = bytearray(ext.raw[:hdr_len])
    body = bytearray()
    fields: list[int] = []
    rel_records: list[tuple[int, str]] = []  # (offset of an insn_off field in .BTF.ext, section name)
    for kind in kinds:
        original: dict[str, list] = getattr(ext, kind)
        groups = list(ext.groups.get(kind, []))
        named = {name for _, name in groups}
        for name, prog in programs.items():  # a rewritten section that gained its first records
            if name not in named and _ext_records(kind, prog, []):
                groups.append((_name_offset(obj, ext, name), name))
        start = len(body)
        rec_size = sizes[kind]
        chunks = bytearray()
        done: set[str] = set()
        for sec_off, name in groups:
            if name in done:  # one group per section, at its first place
                continue
            done.add(name)
            recs = _ext_records(kind, programs.get(name), original.get(name, []))
            if recs is None:
                recs = [(r[0] * 8, *r[1:]) for r in original.get(name, [])]
            if not recs:
                continue
            chunks += struct.pack(f.bo + "II", sec_off, len(recs))
            at = hdr_len + start + 4 + len(chunks)
            rel_records += [(at + k * rec_size, name) for k in range(len(recs))]
            width = len(recs[0])
            if width * 4 == rec_size and all(len(r) == width for r in recs):  # whole records: one pack for the group
                chunks += struct.pack(f"{f.bo}{width * len(recs)}I", *chain.from_iterable(recs))
            else:
                for r in recs:
                    chunks += struct.pack(f"{f.bo}{len(r)}I", *r).ljust(rec_size, b"\0")
        if chunks:
            body += struct.pack(f.bo + "I", rec_size) + chunks
        fields += [start, len(body) - start]
    struct.pack_into(f"{f.bo}{len(fields)}I", out, 8, *fields)
    ext_sec.data = bytes(out + body)
    rel = next((s for s in sections if s.type == "SHT_REL" and s.header[7] == ext_sec.index), None)
    if rel is None:
        return
    # Each record's relocation names its section's symbol with the original's type.
    old = [f.rel.unpack_from(rel.data, o) for o in range(0, len(rel.data), f.rel.size)]
    name_of_index = {s.index: s.name for s in sections}
    info_for: dict[str, int] = {}
    for _, info in old:
        sym = info >> 32
        if sym < len(syms):
            info_for.setdefault(name_of_index.get(syms[sym][3], ""), info)
    rtype = old[0][1] & 0xFFFFFFFF if old else R_BPF_64_NODYLD32
    index_of = {s.name: s.index for s in sections}
    entries = []
    for off, name in rel_records:
        info = info_for.get(name)
        if info is None:
            sym = next((i for i, sy in enumerate(syms) if sy[3] == index_of.get(name) and sy[1] & 0xF == 3), None)
            if sym is None:
                raise ElfError(f"no section symbol for {name!r} to relocate its .BTF.ext records against", section=rel.name)
            info = sym << 32 | rtype
        entries.append(f.rel.pack(off, info))
    rel.data = b"".join(entries)


def _name_offset(obj: ElfModel, ext, name: str) -> int:
    """The .BTF string offset of a section name (from the records of another kind)."""
    for groups in ext.groups.values():
        for off, n in groups:
            if n == name:
                return off
    raise ElfError(f"section {name!r} has no name in the .BTF strings; cannot give it .BTF.ext records", section=".BTF.ext")


def _layout(original: bytes, elf: ELFFile, sections: list[_Section], f: _Formats) -> bytes:
    """Place sections: old offsets while nothing before them grew or shrank, then packed."""
    out = bytearray(original[: elf["e_ehsize"]])
    order = sorted((s for s in sections if s.type not in ("SHT_NULL",)), key=lambda s: s.header[4])
    shift = 0
    for s in order:
        align = max(int(s.header[8]), 1)
        # A damaged alignment or offset would make us pad gigabytes; refuse it by name.
        if align & (align - 1) or align > 1 << 16:
            raise ElfError(f"section alignment {align} is not a power of two up to 65536", section=s.name, offset=int(s.header[4]))
        if s.type != "SHT_NOBITS" and int(s.header[4]) > len(original):
            raise ElfError("section offset lies past the end of the file", section=s.name, offset=int(s.header[4]))
        if s.type == "SHT_NOBITS":
            s.header[4] = s.header[4] + shift
            continue
        want = s.header[4] + shift
        if not s.data and not s.header[5]:
            s.header[4] = min(want, len(out))  # an empty section takes no room (clang puts it beside another)
            continue
        pos = max(want, len(out))
        pos = (pos + align - 1) // align * align
        if pos > len(out):
            # carry the original gap bytes when the section did not move, else pad
            gap = original[len(out) - shift : s.header[4]] if pos == want and shift == 0 else b"\0" * (pos - len(out))
            out += gap if len(gap) == pos - len(out) else b"\0" * (pos - len(out))
        shift = pos - s.header[4]
        s.header[4] = pos
        s.header[5] = len(s.data)
        out += s.data
    shoff = elf["e_shoff"] + shift
    shoff = max(shoff, len(out))
    shoff = (shoff + 7) // 8 * 8
    out += b"\0" * (shoff - len(out))
    for s in sections:
        out += f.shdr.pack(*s.header)
    struct.pack_into(f.bo + "Q", out, 0x28, shoff)
    return bytes(out)

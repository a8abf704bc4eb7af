"""BPF ELF objects out: rewritten program sections in an otherwise unchanged object.

For every rewritten section: its bytes, its relocations (moved with their
instructions through ``insn_map``), the symbols that live in it (through
``idx_map``), calls from other sections into a rewritten ``.text``, and its
func_info / line_info / CO-RE records in ``.BTF.ext`` (and ``.rel.BTF.ext``)
are regenerated; every other section is carried over byte for byte, at its
old offset when nothing before it changed size.  DWARF (``.debug_*``) is
carried over unchanged: its addresses describe the original code.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from elftools.elf.elffile import ELFFile

from bpfpatch.elf.model import R_BPF_64_32, R_BPF_64_64, ElfModel
from bpfpatch.errors import ElfError
from bpfpatch.fileio import write_atomic
from bpfpatch.program import Program

_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")
_REL = struct.Struct("<QQ")


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
    if not elf.little_endian or elf.elfclass != 64:
        raise ElfError("only 64-bit little-endian BPF objects can be written")
    shoff = elf["e_shoff"]
    sections: list[_Section] = []
    for i, sec in enumerate(elf.iter_sections()):
        hdr = list(_SHDR.unpack_from(obj.data, shoff + i * elf["e_shentsize"]))
        body = b"" if sec["sh_type"] in ("SHT_NOBITS", "SHT_NULL") else obj.data[sec["sh_offset"] : sec["sh_offset"] + sec["sh_size"]]
        sections.append(_Section(i, sec.name, sec["sh_type"], hdr, body))
    by_name = {s.name: s for s in sections}
    for name in programs:
        if name not in obj.programs:
            raise ElfError(f"no program section {name!r} to rewrite (have: {', '.join(obj.programs)})")

    maps = {name: _maps(prog, len(obj.programs[name].slots)) for name, prog in programs.items()}
    # 1. Program bytes.
    for name, prog in programs.items():
        by_name[name].data = prog.to_bytes()
    # 2. Relocations of rewritten sections; calls into a rewritten .text from any section.
    symtab = by_name.get(".symtab")
    syms = [list(_SYM.unpack_from(symtab.data, o)) for o in range(0, len(symtab.data), _SYM.size)] if symtab else []
    sec_of_index = {s.index: s.name for s in sections}
    for rel in sections:
        if rel.type != "SHT_REL":
            continue
        target = sec_of_index.get(rel.header[7])  # sh_info: the section the relocations apply to
        if target not in obj.programs:
            continue
        entries = [list(_REL.unpack_from(rel.data, o)) for o in range(0, len(rel.data), _REL.size)]
        tgt_prog = programs.get(target)
        code_bytes = bytearray(by_name[target].data)
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
                    raise ElfError(f"the instruction of relocation at slot {old_slot} was deleted", section=rel.name, offset=e[0])
                code = code_bytes[slot * 8]
                if (rtype == R_BPF_64_64 and code != 0x18) or (rtype == R_BPF_64_32 and code not in (0x85, 0x18)):
                    raise ElfError(f"relocation at slot {old_slot} now points at opcode {code:#x} (slot {slot})", section=rel.name, offset=e[0])
                e[0] = slot * 8
            # A call relocated against the .text section symbol encodes its target slot in imm.
            sym_sec = sec_of_index.get(syms[sym][3])
            if rtype == R_BPF_64_32 and sym_sec == ".text" and ".text" in programs and syms[sym][1] & 0xF == 3:
                imm = struct.unpack_from("<i", code_bytes, slot * 8 + 4)[0]
                old_target = syms[sym][4] // 8 + imm + 1
                idx_map, _, new_len = maps[".text"]
                new_target = _remap_slot(idx_map, old_target, new_len)
                struct.pack_into("<i", code_bytes, slot * 8 + 4, new_target - 1)
        by_name[target].data = bytes(code_bytes)
        rel.data = b"".join(_REL.pack(*e) for e in entries)
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
        symtab.data = b"".join(_SYM.pack(*s) for s in syms)
    # 4. .BTF.ext records.
    if ".BTF.ext" in by_name and obj.btf is not None:
        _rewrite_btf_ext(obj, programs, maps, by_name, sections)
    return _layout(obj.data, elf, sections)


def _rewrite_btf_ext(obj, programs, maps, by_name, sections) -> None:
    ext = by_name[".BTF.ext"]
    raw = ext.data
    magic, ver, flags, hdr_len = struct.unpack_from("<HBBI", raw, 0)
    fields = list(struct.unpack_from("<" + "I" * ((hdr_len - 8) // 4), raw, 8))
    subs = []  # (records of (sec_name_off, [record tuples]), rec_size) for func, line, core
    for k in range(0, len(fields), 2):
        off, length = fields[k], fields[k + 1]
        start = hdr_len + off
        if not length:
            subs.append((4 if k else 8, []))
            continue
        rec_size = struct.unpack_from("<I", raw, start)[0]
        pos, end, groups = start + 4, start + length, []
        while pos < end:
            sec_off, num = struct.unpack_from("<II", raw, pos)
            pos += 8
            if num * rec_size > end - pos:
                raise ElfError("record count runs past the subsection", section=".BTF.ext", offset=pos - 4)
            recs = [list(struct.unpack_from("<" + "I" * (rec_size // 4), raw, pos + i * rec_size)) for i in range(num)]
            groups.append((sec_off, recs))
            pos += num * rec_size
        subs.append((rec_size, groups))
    names = {}  # sec_name_off -> section name
    for kind_index, (rec_size, groups) in enumerate(subs):
        for sec_off, recs in groups:
            names[sec_off] = obj.btf.string(sec_off)
    # Regenerate the rewritten sections' records from the linearized metadata.
    for kind_index, (rec_size, groups) in enumerate(subs):
        for gi, (sec_off, recs) in enumerate(groups):
            name = names[sec_off]
            if name not in programs:
                continue
            prog = programs[name]
            idx_map, insn_map, new_len = maps[name]
            if kind_index == 0 and prog.func_info is not None:
                groups[gi] = (sec_off, [[f.insn_off * 8, f.type_id] + [0] * (rec_size // 4 - 2) for f in prog.func_info])
            elif kind_index == 1 and prog.line_info is not None:
                groups[gi] = (sec_off, [[l.insn_off * 8, l.file_name_off, l.line_off, l.line_col] + [0] * (rec_size // 4 - 4)
                                        for l in prog.line_info])
            elif kind_index == 2:  # CO-RE relocations follow their instruction
                new = []
                for r in recs:
                    slot = int(insn_map[r[0] // 8]) if r[0] // 8 < len(insn_map) else -1
                    if slot < 0:
                        raise ElfError(f"CO-RE relocation at slot {r[0] // 8} lost its instruction", section=name)
                    new.append([slot * 8] + r[1:])
                groups[gi] = (sec_off, new)
    out = bytearray(raw[:hdr_len])
    body = bytearray()
    new_fields = []
    record_offsets: dict[str, list[int]] = {}  # section name -> offsets of insn_off fields (for .rel.BTF.ext)
    for kind_index, (rec_size, groups) in enumerate(subs):
        if not groups:
            new_fields += [len(body), 0]
            continue
        start = len(body)
        body += struct.pack("<I", rec_size)
        for sec_off, recs in groups:
            body += struct.pack("<II", sec_off, len(recs))
            for r in recs:
                if kind_index < 2:
                    record_offsets.setdefault(names[sec_off], []).append(hdr_len + len(body))
                body += struct.pack("<" + "I" * len(r), *r)
        new_fields += [start, len(body) - start]
    struct.pack_into("<" + "I" * len(new_fields), out, 8, *new_fields)
    ext.data = bytes(out + body)
    # .rel.BTF.ext: one relocation per func/line record, against its section's symbol.
    rel = next((s for s in sections if s.type == "SHT_REL" and s.header[7] == ext.index), None)
    if rel is None:
        return
    entries = [_REL.unpack_from(rel.data, o) for o in range(0, len(rel.data), _REL.size)]
    if len(entries) == sum(len(v) for v in record_offsets.values()):
        # Keep each record's original symbol and type, in order; only the offsets move.
        flat = [o for kind_offsets in _ordered(record_offsets, subs, names) for o in kind_offsets]
        rel.data = b"".join(_REL.pack(off, info) for off, (_, info) in zip(flat, entries))
        return
    sym_for: dict[str, int] = {}
    old_offsets = _ordered_original(obj, subs)
    for (off, info), name in zip(entries, old_offsets):
        sym_for.setdefault(name, info)
    flat_entries = []
    for name, offs in _ordered_pairs(record_offsets, subs, names):
        info = sym_for.get(name)
        if info is None:
            continue
        flat_entries += [_REL.pack(o, info) for o in offs]
    rel.data = b"".join(flat_entries)


def _ordered(record_offsets, subs, names):
    return [offs for _, offs in _ordered_pairs(record_offsets, subs, names)]


def _ordered_pairs(record_offsets, subs, names):
    """(section, offsets) in file order: func_info groups first, then line_info groups."""
    seen: dict[str, int] = {}
    out = []
    for kind_index, (rec_size, groups) in enumerate(subs[:2]):
        for sec_off, recs in groups:
            name = names[sec_off]
            start = seen.get(name, 0)
            offs = record_offsets.get(name, [])[start : start + len(recs)]
            seen[name] = start + len(recs)
            out.append((name, offs))
    return out


def _ordered_original(obj: ElfModel, subs) -> list[str]:
    names = []
    for rec_size, groups in subs[:2]:
        for sec_off, recs in groups:
            names += [obj.btf.string(sec_off)] * len(recs)
    return names


def _layout(original: bytes, elf: ELFFile, sections: list[_Section]) -> bytes:
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
        out += _SHDR.pack(*s.header)
    struct.pack_into("<Q", out, 0x28, shoff)
    return bytes(out)

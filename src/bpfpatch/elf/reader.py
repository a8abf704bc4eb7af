"""BPF ELF objects in: programs, relocations, symbols, BTF, maps, global data.

pyelftools parses the ELF layer; every low-level failure is re-raised as an
`ElfError` naming the section and offset.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Any, NamedTuple

from elftools.common.exceptions import ELFError as _PyElfError
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile
from elftools.elf.enums import ENUM_ST_INFO_BIND, ENUM_ST_INFO_TYPE, ENUM_ST_SHNDX, ENUM_ST_VISIBILITY
from elftools.elf.sections import SymbolTableSection

from bpfpatch.btf import Btf, CoreRelos, parse_btf_ext
from bpfpatch.elf.check import check_headers
from bpfpatch.elf.kconfig import kconfig_externs
from bpfpatch.elf.link import link_program
from bpfpatch.elf.model import (
    GLOBAL_DATA_PREFIXES, JUMP_TABLE_SECTION, JUMP_TABLES, R_BPF_64_32, R_BPF_64_64, ElfModel, JumpTable, JumpTables, Relocation,
    Relocations, Symbol, Symbols,
)
from bpfpatch.errors import BpfPatchError, ElfError
from bpfpatch.isa import SLOT_SIZE, STRUCT_ORDER
from bpfpatch.isa.opcodes import PseudoSrc
from bpfpatch.program import CORE_RELOS, Program

class ElfSym(NamedTuple):
    """One symbol-table entry, its enumerations spelled as pyelftools spells them (``"STB_WEAK"``,
    ``"STT_FUNC"``, ``"STV_HIDDEN"``; a section index, or ``"SHN_UNDEF"`` / ``"SHN_ABS"`` / ``"SHN_COMMON"``)."""

    name: str
    value: int
    size: int
    bind: str | int
    type: str | int
    visibility: str | int
    shndx: int | str


def _names(enum: dict[str, Any]) -> dict[int, str]:
    return {v: k for k, v in enum.items() if isinstance(v, int)}


_BIND, _TYPE, _VISIBILITY, _SHNDX = (_names(e) for e in (ENUM_ST_INFO_BIND, ENUM_ST_INFO_TYPE, ENUM_ST_VISIBILITY,
                                                          ENUM_ST_SHNDX))
#: Per ELF class: the symbol entry's layout and the order of (name, info, other, shndx, value, size) in it.
_SYM_LAYOUT = {64: ("IBBHQQ", (0, 1, 2, 3, 4, 5)), 32: ("IIIBBH", (0, 3, 4, 5, 1, 2))}


def _symbols(elf: ELFFile, symtab: SymbolTableSection, sections: list, byteorder: str) -> list[ElfSym]:
    """Every entry of `symtab`, unpacked in one pass (pyelftools parses one construct per symbol: 2.5 s for
    tracee's 21,514).  A name offset past the string table is an `ElfError` naming the symbol."""
    layout, order = _SYM_LAYOUT[elf.elfclass]
    fmt = STRUCT_ORDER[byteorder] + layout
    strtab = sections[symtab["sh_link"]].data()
    ni, ii, oi, si, vi, zi = order
    out = []
    get_bind, get_type, get_vis, get_shndx = _BIND.get, _TYPE.get, _VISIBILITY.get, _SHNDX.get
    for k, e in enumerate(struct.iter_unpack(fmt, symtab.data())):
        at, info, other, shndx = e[ni], e[ii], e[oi], e[si]
        if at >= len(strtab) and at:
            raise ElfError(f"symbol {k}: name offset {at} is past the string table ({len(strtab)} bytes)",
                           section=symtab.name, offset=symtab["sh_offset"] + k * symtab["sh_entsize"])
        end = strtab.find(b"\0", at)
        name = strtab[at:end if end >= 0 else len(strtab)].decode(errors="replace") if at else ""
        out.append(ElfSym(name, e[vi], e[zi], get_bind(info >> 4, info >> 4), get_type(info & 0xF, info & 0xF),
                          get_vis(other & 7, other & 7), get_shndx(shndx, shndx)))
    return out


#: Per ELF class and relocation type (REL, RELA): the entry layout and the shift of r_info's symbol index.
_REL_LAYOUT = {(64, "SHT_REL"): ("QQ", 32), (64, "SHT_RELA"): ("QQq", 32), (32, "SHT_REL"): ("II", 8),
               (32, "SHT_RELA"): ("IIi", 8)}


def _relocations(elf: ELFFile, rel: Any, byteorder: str) -> list[tuple[int, int, int]]:
    """(r_offset, symbol index, type) of every entry of `rel`, unpacked in one pass."""
    layout, shift = _REL_LAYOUT[(elf.elfclass, rel["sh_type"])]
    mask = (1 << shift) - 1
    return [(e[0], e[1] >> shift, e[1] & mask) for e in struct.iter_unpack(STRUCT_ORDER[byteorder] + layout, rel.data())]


class ElfObject(ElfModel):
    """A parsed BPF object (`ElfModel`) that can also link its programs for loading."""

    def linked_program(self, section: str) -> Program:
        """`section` (or ``section:function``, or a function name) linked with its callees and maps."""
        return link_program(self, section)


def _wrap(what: str, section: str | None = None):
    class _Ctx:
        def __enter__(self):
            return self

        def __exit__(self, et, ev, tb):
            if ev is not None and not isinstance(ev, BpfPatchError) and isinstance(ev, (_PyElfError, ValueError, KeyError, IndexError, AssertionError, Exception)):
                raise ElfError(f"{what}: {ev}", section=section) from ev
            return False

    return _Ctx()


def read_object(source: str | Path | bytes, *, opaque: bool = False) -> ElfObject:
    """Parse a BPF ELF object from a path or bytes; malformed input raises `ElfError`.

    With `opaque`, a program section whose code does not decode (an unknown
    opcode, a register past r10: the kernel's own selftests have such
    sections, written to be refused) is not an error: it is kept out of
    ``programs`` and named in ``opaque`` with the reason, so the object can
    still be written back byte for byte around it.
    """
    try:
        return _read_object(source, opaque)
    except BpfPatchError:
        raise
    except OSError as exc:
        raise ElfError(f"{source}: {exc.strerror}") from exc
    except Exception as exc:  # pyelftools and struct errors on damaged files
        if isinstance(exc, (_PyElfError, struct.error, ValueError, KeyError, IndexError, AssertionError, TypeError, OverflowError, AttributeError)) or type(
            exc
        ).__module__.startswith(("elftools", "construct")):
            raise ElfError(f"malformed object: {exc}") from exc
        raise


def _read_object(source: str | Path | bytes, opaque: bool = False) -> ElfObject:
    data = Path(source).read_bytes() if not isinstance(source, (bytes, bytearray)) else bytes(source)
    check_headers(data)  # the framing, on the raw bytes, with places: before pyelftools reads anything
    with _wrap("cannot parse ELF"):
        elf = ELFFile(io.BytesIO(data))
        if elf["e_machine"] not in ("EM_BPF", 247):
            raise ElfError(f"not a BPF object (machine {elf['e_machine']})", offset=0x12)
        byteorder = "little" if elf.little_endian else "big"
        sections = list(elf.iter_sections())
    for sec in sections:
        if sec["sh_type"] != "SHT_NOBITS" and sec["sh_offset"] + sec["sh_size"] > len(data):
            raise ElfError(f"section data runs past the end of the file ({sec['sh_offset'] + sec['sh_size']} > {len(data)})",
                           section=sec.name, offset=sec["sh_offset"])
    obj = ElfObject(str(source) if not isinstance(source, (bytes, bytearray)) else "<bytes>", data, byteorder)
    by_name = {s.name: s for s in sections}
    if ".BTF" in by_name:
        obj.btf = Btf(by_name[".BTF"].data(), STRUCT_ORDER[byteorder])
        obj.maps = obj.btf.map_definitions()
        if ".BTF.ext" in by_name:
            obj.btf_ext = parse_btf_ext(by_name[".BTF.ext"].data(), obj.btf.string, byteorder)
    if "license" in by_name:
        obj.license = by_name["license"].data().split(b"\0")[0].decode(errors="replace")
    for sec in sections:
        # Global data: .data, .rodata, .bss and their suffixed variants (.rodata.str1.1, ...).
        if sec.name.startswith(GLOBAL_DATA_PREFIXES) and not sec["sh_flags"] & SH_FLAGS.SHF_EXECINSTR:
            if sec["sh_type"] == "SHT_NOBITS":
                if sec["sh_size"] > 1 << 30:
                    raise ElfError(f"section size {sec['sh_size']} is unreasonable", section=sec.name)
                obj.data_sections[sec.name] = bytes(sec["sh_size"])
            elif sec["sh_type"] == "SHT_PROGBITS":
                obj.data_sections[sec.name] = sec.data()
    symtab = elf.get_section_by_name(".symtab")
    # A damaged header can give .symtab another type: then there are no symbols to read.
    syms = _symbols(elf, symtab, sections, byteorder) if isinstance(symtab, SymbolTableSection) else []
    obj.weak_externs = frozenset(s.name for s in syms if s.shndx == "SHN_UNDEF" and s.bind == "STB_WEAK")
    obj.hidden_funcs = frozenset(s.name for s in syms if s.type == "STT_FUNC" and s.bind != "STB_LOCAL"
                                 and s.shndx != "SHN_UNDEF" and s.visibility in ("STV_HIDDEN", "STV_INTERNAL"))
    obj.kconfig = {e.name: e for e in kconfig_externs(obj.btf, obj.weak_externs)}
    for name, d in _legacy_maps(by_name.get(LEGACY_MAPS_SECTION), sections, syms, byteorder).items():
        obj.maps.setdefault(name, d)

    def sec_name(shndx: Any) -> str:
        if isinstance(shndx, int) and 0 <= shndx < len(sections):
            return sections[shndx].name
        return str(shndx)

    # Function symbols by section, in symbol-table order: one pass over the symbols, not one per section.
    funcs_of: dict[int, list[Symbol]] = {}
    for s in syms:
        if s.type == "STT_FUNC" and isinstance(s.shndx, int):
            funcs_of.setdefault(s.shndx, []).append(Symbol(s.name, s.value // SLOT_SIZE, s.size // SLOT_SIZE, s.bind, s.type))
    rel_for: dict[int, Any] = {}
    for sec in sections:
        if sec["sh_type"] in ("SHT_REL", "SHT_RELA"):
            rel_for[sec["sh_info"]] = sec
    for idx, sec in enumerate(sections):
        if sec["sh_type"] != "SHT_PROGBITS" or not sec["sh_flags"] & SH_FLAGS.SHF_EXECINSTR or sec["sh_size"] == 0:
            continue
        raw = sec.data()
        if len(raw) % SLOT_SIZE:
            raise ElfError(f"program size {len(raw)} is not a multiple of 8", section=sec.name, offset=sec["sh_offset"])
        relocs: list[Relocation] = []
        if idx in rel_for:
            with _wrap("bad relocation", rel_for[idx].name):
                for r_offset, si, r_type in _relocations(elf, rel_for[idx], byteorder):
                    if si >= len(syms):
                        raise ElfError(f"relocation at {r_offset:#x} names missing symbol {si}",
                                       section=rel_for[idx].name, offset=r_offset)
                    s = syms[si]
                    if r_offset % SLOT_SIZE or r_offset >= len(raw):
                        raise ElfError(f"relocation offset {r_offset:#x} is not an instruction of the section",
                                       section=rel_for[idx].name, offset=r_offset)
                    relocs.append(Relocation(r_offset // SLOT_SIZE, r_type, s.name, si, sec_name(s.shndx), s.value,
                                             s.type))
        symbols = funcs_of.get(idx, [])
        # Calls and function addresses an ELF relocation resolves: their immediates are the object's, not offsets.
        external = [r.slot for r in relocs if (r.type == R_BPF_64_32 and raw[r.slot * 8] == 0x85)
                    or (r.type == R_BPF_64_64 and raw[r.slot * 8] == 0x18 and raw[r.slot * 8 + 1] >> 4 == PseudoSrc.FUNC)]
        fi = obj.btf_ext.func_info.get(sec.name) if obj.btf_ext else None
        li = obj.btf_ext.line_info.get(sec.name) if obj.btf_ext else None
        core = obj.btf_ext.core_relo.get(sec.name) if obj.btf_ext else None
        nslots = len(raw) // SLOT_SIZE
        for what, records in (("func_info", fi), ("line_info", li), ("CO-RE relocation", core)):
            bad = [r.insn_off for r in records or () if not 0 <= r.insn_off < nslots]
            if bad:
                raise ElfError(f"{what} record at instruction {bad[0]} is past the end ({nslots} instructions)",
                               section=".BTF.ext")
        try:
            prog = Program.from_bytes(
                raw, byteorder=byteorder, offset_base=sec["sh_offset"], external=external, func_info=fi, line_info=li,
                name=sec.name, meta={"section": sec.name, "relocations": Relocations(relocs), "symbols": Symbols(symbols)},
            )
        except BpfPatchError as exc:
            if opaque:
                obj.opaque[sec.name] = str(exc)
                continue
            raise ElfError(str(exc), section=sec.name) from exc
        _check_record_slots(prog, sec.name, (("func_info", fi), ("line_info", li), ("CO-RE relocation", core)))
        if core:
            prog.meta[CORE_RELOS] = CoreRelos(core)
        tables = _jump_tables(sec.name, relocs, syms, by_name, nslots)
        if tables:
            prog.meta[JUMP_TABLES] = tables
        if fi is not None:
            prog.subprogs = sorted({f.insn_off for f in fi} | {0})
        obj.programs[sec.name] = prog
    return obj


#: The section of the maps of the older form (``struct bpf_map_def``, iproute2's ``struct bpf_elf_map``).
LEGACY_MAPS_SECTION = "maps"


def _legacy_maps(sec: Any, sections: list, syms: list[ElfSym], byteorder: str) -> dict[str, dict[str, int]]:
    """The maps of a legacy ``maps`` section, one per symbol: both forms begin with type, key size,
    value size, max entries and flags (u32 each); a symbol without a size takes an equal share of the section."""
    if sec is None or sec["sh_type"] not in ("SHT_PROGBITS", "SHT_NOBITS"):
        return {}
    idx = sections.index(sec)
    mine = [s for s in syms if s.shndx == idx and s.name and s.type in ("STT_OBJECT", "STT_NOTYPE")]
    if not mine:
        return {}
    data = sec.data() if sec["sh_type"] == "SHT_PROGBITS" else bytes(sec["sh_size"])
    share = len(data) // len(mine)
    out: dict[str, dict[str, int]] = {}
    for s in mine:
        at, size = s.value, s.size or share
        if size < 16 or at + size > len(data):
            raise ElfError(f"map {s.name!r} ({size} bytes at {at}) is not a whole map definition inside the section",
                           section=sec.name, offset=sec["sh_offset"] + at)
        words = struct.unpack_from(STRUCT_ORDER[byteorder] + f"{min(size, 20) // 4}I", data, at)
        out[s.name] = {"map_type": words[0], "key_size": words[1], "value_size": words[2], "max_entries": words[3],
                       "flags": words[4] if len(words) > 4 else 0}
    return out


def _check_record_slots(prog: Program, section: str, kinds) -> None:
    """Records must name the first slot of an instruction (the kernel refuses the second half of an ld_imm64)."""
    starts = set(prog.insn_slots().tolist())
    for what, records in kinds:
        for k, r in enumerate(records or ()):
            if r.insn_off not in starts:
                raise ElfError(f"{what} record {k} of section {section!r}: slot {r.insn_off} is the second half of an "
                               "ld_imm64, not an instruction", section=".BTF.ext")


def _jump_tables(section: str, relocs: list[Relocation], syms: list[ElfSym], by_name: dict, nslots: int) -> JumpTables | None:
    """The `.jumptables` tables a section loads (``rX = table ll``), their entries as slots of the section."""
    table_sec = by_name.get(JUMP_TABLE_SECTION)
    if table_sec is None:
        return None
    data = table_sec.data()
    out, seen = JumpTables(), set()
    for r in relocs:
        if r.symbol_section != JUMP_TABLE_SECTION or r.symbol_index in seen:
            continue
        seen.add(r.symbol_index)
        sym = syms[r.symbol_index]
        start, size = sym.value, sym.size
        if size % 8 or start + size > len(data):
            raise ElfError(f"jump table {r.symbol!r} ({size} bytes at {start}) is not whole 8-byte entries inside the section",
                           section=JUMP_TABLE_SECTION, offset=start)
        targets = struct.unpack_from(f"<{size // 8}Q", data, start)
        bad = [t for t in targets if t % 8 or t // 8 >= nslots]
        if bad:
            raise ElfError(f"jump table {r.symbol!r} entry {bad[0]:#x} is not an instruction of {section!r}",
                           section=JUMP_TABLE_SECTION, offset=start)
        out.append(JumpTable(r.symbol, start, tuple(t // 8 for t in targets)))
    return out or None


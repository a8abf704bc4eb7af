"""Add maps and global data to a BPF ELF object and reference them from instructions (relocations emitted).

`ObjectEditor.add_map` declares a BTF-defined map in ``.maps`` (its BTF
types, a ``VAR`` in the ``.maps`` ``DATASEC``, the symbol): libbpf creates it,
and an ``ld_imm64`` relocated against it becomes ``r = map[fd]``
(``BPF_PSEUDO_MAP_FD``), for the map helpers.  `ObjectEditor.add_data` adds
global data, for direct loads and stores:

libbpf turns every ``.data.<name>`` section of an object into an array map of
one element (the section's bytes), and an ``ld_imm64`` relocated
(``R_BPF_64_64``) against a symbol of that section into a pointer to that
map's value at ``imm + st_value`` (``BPF_PSEUDO_MAP_VALUE``).  So new
instructions reach new memory with no helper call::

    >>> ed = ObjectEditor(build_object(obj, programs))        # or the original bytes
    >>> ed.add_data("__counters", 8 * n)                       # section .data.__counters
    >>> ed.add_relocations("xdp", [slot, ...], "__counters")   # ld_imm64 r, <byte offset>
    >>> Path("out.o").write_bytes(ed.to_bytes())

The section gets a BTF ``DATASEC`` with one ``VAR`` of type ``u64[n]`` when
the object has BTF (so ``bpftool map dump`` prints it formatted), a global
``STT_OBJECT`` symbol, and relocation entries (a ``.rel<section>`` is created
when the program had none).  Everything else is carried over; the file is laid
out anew (sections in their order, header table at the end).
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Callable

from elftools.elf.elffile import ELFFile

from bpfpatch.errors import ElfError

_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")
_REL = struct.Struct("<QQ")
SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_REL, SHT_NOBITS = 1, 2, 3, 9, 8
SHF_WRITE, SHF_ALLOC = 0x1, 0x2
STB_GLOBAL, STT_OBJECT = 1, 1
R_BPF_64_64 = 1
DATA_PREFIX = ".data."

# BTF kinds used here (include/uapi/linux/btf.h)
_BTF_INT, _BTF_PTR, _BTF_ARRAY, _BTF_STRUCT, _BTF_VAR, _BTF_DATASEC = 1, 2, 3, 4, 14, 15


@dataclass
class _Sec:
    name: str
    header: list  # sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size, sh_link, sh_info, sh_addralign, sh_entsize
    data: bytes


class ObjectEditor:
    """An ELF object's sections, editable: add global data, symbols and relocations, then `to_bytes`."""

    def __init__(self, data: bytes) -> None:
        try:
            elf = ELFFile(io.BytesIO(data))
            if not elf.little_endian or elf.elfclass != 64:
                raise ElfError("only 64-bit little-endian BPF objects can be edited")
            self._ehdr = bytearray(data[: elf["e_ehsize"]])
            self.sections: list[_Sec] = []
            for sec in elf.iter_sections():
                h = sec.header
                hdr = [h["sh_name"], _TYPES.get(h["sh_type"], h["sh_type"]), h["sh_flags"], h["sh_addr"], h["sh_offset"],
                       h["sh_size"], h["sh_link"], h["sh_info"], h["sh_addralign"], h["sh_entsize"]]
                body = b"" if hdr[1] in (0, SHT_NOBITS) else data[h["sh_offset"]: h["sh_offset"] + h["sh_size"]]
                self.sections.append(_Sec(sec.name, hdr, body))
            self._shstrndx = elf["e_shstrndx"]
        except ElfError:
            raise
        except Exception as exc:  # pyelftools' parse errors on a damaged file
            raise ElfError(f"cannot edit a malformed object: {exc}") from exc
        self._symtab = self._index(".symtab")
        if self._symtab is None:
            raise ElfError("the object has no .symtab to add symbols to")

    # --- lookups -------------------------------------------------------------------

    def _index(self, name: str) -> int | None:
        for i, s in enumerate(self.sections):
            if s.name == name:
                return i
        return None

    def _strtab_add(self, idx: int, name: str) -> int:
        sec = self.sections[idx]
        off = len(sec.data)
        sec.data += name.encode() + b"\0"
        sec.header[5] = len(sec.data)
        return off

    def symbol_index(self, name: str) -> int:
        """Index of the symbol called `name` in .symtab."""
        assert self._symtab is not None
        st = self.sections[self._symtab]
        strtab = self.sections[st.header[6]].data
        for i in range(len(st.data) // _SYM.size):
            n = _SYM.unpack_from(st.data, i * _SYM.size)[0]
            end = strtab.find(b"\0", n)
            if strtab[n:end].decode(errors="replace") == name:
                return i
        raise ElfError(f"no symbol {name!r}", section=".symtab")

    # --- edits ---------------------------------------------------------------------

    def add_data(self, name: str, size: int, initial: bytes | None = None) -> str:
        """Add section ``.data.<name>`` of `size` bytes (zeros or `initial`) and symbol `name`; return the section name."""
        sec_name = DATA_PREFIX + name
        if self._index(sec_name) is not None:
            raise ElfError(f"the object already has a section {sec_name}", section=sec_name)
        if size <= 0 or size % 8:
            raise ElfError(f"global data size {size} must be a positive multiple of 8", section=sec_name)
        body = (initial or b"").ljust(size, b"\0")[:size]
        name_off = self._strtab_add(self._shstrndx, sec_name)
        # Before the section-name string table and symbol table keeps other indices stable: append at the end.
        self.sections.append(_Sec(sec_name, [name_off, SHT_PROGBITS, SHF_WRITE | SHF_ALLOC, 0, 0, size, 0, 0, 8, 0], body))
        shndx = len(self.sections) - 1
        assert self._symtab is not None
        st = self.sections[self._symtab]
        sym_name = self._strtab_add(st.header[6], name)
        st.data += _SYM.pack(sym_name, (STB_GLOBAL << 4) | STT_OBJECT, 0, shndx, 0, size)
        st.header[5] = len(st.data)
        self._add_btf_datasec(sec_name, name, size)
        return sec_name

    def add_note(self, name: str, data: bytes) -> None:
        """Add a non-allocated section `name` holding `data` (loaders skip it; tools read it back)."""
        if self._index(name) is not None:
            raise ElfError(f"the object already has a section {name}", section=name)
        name_off = self._strtab_add(self._shstrndx, name)
        self.sections.append(_Sec(name, [name_off, SHT_PROGBITS, 0, 0, 0, len(data), 0, 0, 1, 0], data))

    def add_relocations(self, section: str, slots: list[int], symbol: str) -> None:
        """Relocate the ld_imm64 at each slot of program `section` against `symbol` (R_BPF_64_64)."""
        target = self._index(section)
        if target is None:
            raise ElfError(f"no section {section!r}")
        code = self.sections[target].data
        for slot in slots:
            if not 0 <= slot * 8 < len(code) or code[slot * 8] != 0x18:
                raise ElfError(f"slot {slot} is not an ld_imm64", section=section)
        sym = self.symbol_index(symbol)
        rel = None
        for i, s in enumerate(self.sections):
            if s.header[1] == SHT_REL and s.header[7] == target:
                rel = i
        if rel is None:
            name_off = self._strtab_add(self._shstrndx, ".rel" + section)
            self.sections.append(_Sec(".rel" + section, [name_off, SHT_REL, 0x40, 0, 0, 0, self._symtab, target, 8, _REL.size], b""))
            rel = len(self.sections) - 1
        r = self.sections[rel]
        r.data += b"".join(_REL.pack(slot * 8, (sym << 32) | R_BPF_64_64) for slot in slots)
        r.header[5] = len(r.data)

    def _btf(self) -> tuple[int, bytes, bytearray, bytearray] | None:
        """(section index, header, type bytes, string bytes) of .BTF, or None without BTF."""
        idx = self._index(".BTF")
        if idx is None:
            return None
        raw = self.sections[idx].data
        magic, _ver, _flags, hdr_len = struct.unpack_from("<HBBI", raw, 0)
        if magic != 0xEB9F:
            raise ElfError("bad BTF magic", section=".BTF")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", raw, 8)
        types = bytearray(raw[hdr_len + type_off: hdr_len + type_off + type_len])
        strings = bytearray(raw[hdr_len + str_off: hdr_len + str_off + str_len])
        return idx, bytes(raw[:hdr_len]), types, strings

    def _set_btf(self, idx: int, header: bytes, types: bytes, strings: bytes) -> None:
        out = bytearray(header)
        struct.pack_into("<IIII", out, 8, 0, len(types), len(types), len(strings))
        self.sections[idx].data = bytes(out + types + strings)
        self.sections[idx].header[5] = len(self.sections[idx].data)

    def _add_btf_datasec(self, sec_name: str, var_name: str, size: int) -> None:
        btf = self._btf()
        if btf is None:
            return
        idx, header, types, strings = btf
        first = len(_records(types)) + 1
        s = _string_adder(strings)
        u64, u32, arr, var = first, first + 1, first + 2, first + 3
        types += b"".join([
            struct.pack("<IIII", s("unsigned long long"), _BTF_INT << 24, 8, 64),  # INT u64, 64 bits
            struct.pack("<IIII", s("unsigned int"), _BTF_INT << 24, 4, 32),
            struct.pack("<III", 0, _BTF_ARRAY << 24, 0) + struct.pack("<III", u64, u32, size // 8),
            struct.pack("<III", s(var_name), _BTF_VAR << 24, arr) + struct.pack("<I", 1),  # global allocated
            struct.pack("<III", s(sec_name), (_BTF_DATASEC << 24) | 1, size) + struct.pack("<III", var, 0, size),
        ])
        self._set_btf(idx, header, bytes(types), bytes(strings))

    def add_map(self, name: str, map_type: int, key_size: int, value_size: int, max_entries: int,
                flags: int = 0) -> None:
        """Add a BTF-defined map `name` to ``.maps`` (libbpf creates it); reference it with `add_relocations`.

        The map is declared the way ``__uint(type, ...)``, ``__uint(key_size, ...)``,
        ``__uint(value_size, ...)``, ``__uint(max_entries, ...)`` (and ``map_flags``) declare it in C.
        """
        btf = self._btf()
        if btf is None:
            raise ElfError("a BTF-defined map needs the object's .BTF", section=".BTF")
        for v, what in ((key_size, "key_size"), (value_size, "value_size"), (max_entries, "max_entries")):
            if not isinstance(v, int) or v <= 0:
                raise ElfError(f"map {name}: {what} {v!r} must be a positive int", section=".maps")
        idx, header, types, strings = btf
        recs = _records(bytes(types))
        first = len(recs) + 1
        s = _string_adder(strings)

        # int, then for each field an int[N] and a pointer to it: __uint(field, N)
        fields = [("type", map_type), ("key_size", key_size), ("value_size", value_size), ("max_entries", max_entries)]
        if flags:
            fields.append(("map_flags", flags))
        t_int = first
        new = [struct.pack("<IIII", s("int"), _BTF_INT << 24, 4, (1 << 24) | 32)]  # signed 32-bit int
        ptrs = []
        nxt = first + 1
        for _fname, n in fields:
            new.append(struct.pack("<III", 0, _BTF_ARRAY << 24, 0) + struct.pack("<III", t_int, t_int, n))
            new.append(struct.pack("<III", 0, _BTF_PTR << 24, nxt))
            ptrs.append(nxt + 1)
            nxt += 2
        t_struct = nxt
        new.append(struct.pack("<III", 0, (_BTF_STRUCT << 24) | len(fields), 8 * len(fields))
                   + b"".join(struct.pack("<III", s(f), p, 64 * k) for k, ((f, _n), p) in enumerate(zip(fields, ptrs))))
        t_var = t_struct + 1
        new.append(struct.pack("<III", s(name), _BTF_VAR << 24, t_struct) + struct.pack("<I", 1))
        size = 8 * len(fields)
        maps = self._index(".maps")
        offset = 0 if maps is None else (len(self.sections[maps].data) + 7) // 8 * 8
        # the .maps DATASEC: extended in place when it exists, else a new one
        datasec = next((r for r in recs if r[2] == _BTF_DATASEC and _str(strings, r[3]) == ".maps"), None)
        if datasec is None:
            new.append(struct.pack("<III", s(".maps"), (_BTF_DATASEC << 24) | 1, offset + size)
                       + struct.pack("<III", t_var, offset, size))
            types += b"".join(new)
        else:
            start, end, _k, name_off, info = datasec
            vlen = (info & 0xFFFF) + 1
            rec = bytearray(types[start:end])
            # clang leaves the size (and offsets) 0 for libbpf to fill from the symbols: keep it so
            old_size = struct.unpack_from("<I", rec, 8)[0]
            struct.pack_into("<III", rec, 0, name_off, (info & ~0xFFFF) | vlen, offset + size if old_size else 0)
            rec += struct.pack("<III", t_var, offset, size)
            types = types[:start] + rec + types[end:] + b"".join(new)
        self._set_btf(idx, header, bytes(types), bytes(strings))
        if maps is None:
            name_off = self._strtab_add(self._shstrndx, ".maps")
            self.sections.append(_Sec(".maps", [name_off, SHT_PROGBITS, SHF_WRITE | SHF_ALLOC, 0, 0, 0, 0, 0, 8, 0], b""))
            maps = len(self.sections) - 1
        m = self.sections[maps]
        m.data = m.data.ljust(offset, b"\0") + bytes(size)
        m.header[5] = len(m.data)
        assert self._symtab is not None
        st = self.sections[self._symtab]
        st.data += _SYM.pack(self._strtab_add(st.header[6], name), (STB_GLOBAL << 4) | STT_OBJECT, 0, maps, offset, size)
        st.header[5] = len(st.data)

    # --- output --------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The edited object: sections laid out in order, the section header table at the end."""
        out = bytearray(self._ehdr)
        for s in self.sections[1:]:
            if s.header[1] == SHT_NOBITS:
                s.header[4] = len(out)
                continue
            align = max(int(s.header[8]), 1)
            pos = (len(out) + align - 1) // align * align
            out += b"\0" * (pos - len(out))
            s.header[4] = pos
            s.header[5] = len(s.data)
            out += s.data
        shoff = (len(out) + 7) // 8 * 8
        out += b"\0" * (shoff - len(out))
        for s in self.sections:
            out += _SHDR.pack(*s.header)
        struct.pack_into("<Q", out, 0x28, shoff)
        struct.pack_into("<H", out, 0x3C, len(self.sections))
        return bytes(out)


_TYPES = {"SHT_NULL": 0, "SHT_PROGBITS": 1, "SHT_SYMTAB": 2, "SHT_STRTAB": 3, "SHT_RELA": 4, "SHT_HASH": 5,
          "SHT_DYNAMIC": 6, "SHT_NOTE": 7, "SHT_NOBITS": 8, "SHT_REL": 9, "SHT_LLVM_ADDRSIG": 0x6FFF4C03}

# Bytes after the 12-byte header of each BTF kind: (fixed, per vlen item).
_TRAILER = {1: (4, 0), 3: (12, 0), 4: (0, 12), 5: (0, 12), 6: (0, 8), 13: (0, 8), 14: (4, 0), 15: (0, 12),
            17: (4, 0), 19: (0, 12)}


def _string_adder(strings: bytearray) -> Callable[[str], int]:
    """A function that appends a name to a BTF string section and gives its offset."""

    def add(text: str) -> int:
        off = len(strings)
        strings.extend(text.encode() + b"\0")
        return off

    return add


def _records(types: bytes) -> list[tuple[int, int, int, int, int]]:
    """Every BTF type record as (start, end, kind, name_off, info), in id order (id = position + 1)."""
    out = []
    pos = 0
    while pos < len(types):
        name_off, info = struct.unpack_from("<II", types, pos)
        kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        fixed, per = _TRAILER.get(kind, (0, 0))
        end = pos + 12 + fixed + per * vlen
        out.append((pos, end, kind, name_off, info))
        pos = end
    if pos != len(types):
        raise ElfError("BTF type section does not parse to its end", section=".BTF")
    return out


def _str(strings: bytes, off: int) -> str:
    end = strings.find(b"\0", off)
    return strings[off: end if end >= 0 else len(strings)].decode(errors="replace")


__all__ = ["DATA_PREFIX", "ObjectEditor"]

"""The ELF framing checked on the raw bytes, before any parser reads them.

pyelftools reports a damaged header as "expected 64, found 59" (a struct that
ran out of bytes, with no place).  These checks read the ELF header and the
section header table themselves and refuse, naming the place, what the kernel's
loader (libbpf) refuses too: a header or a section header table past the end of
the file, a section header size that is not the format's, a section name table
index that does not exist, section data past the end of the file, a symbol or
relocation table whose size is not a whole number of entries, a symbol table
whose names are not in a string table, relocations that name no symbol table.
"""

from __future__ import annotations

import struct

from bpfpatch.errors import ElfError

_ELFCLASS32, _ELFCLASS64 = 1, 2
_SHT_NOBITS, _SHT_SYMTAB, _SHT_STRTAB, _SHT_REL, _SHT_RELA, _SHT_DYNSYM, _SHT_RELR = 8, 2, 3, 9, 4, 11, 19
_LINKED = (_SHT_SYMTAB, _SHT_DYNSYM, _SHT_REL, _SHT_RELA)  # sh_link names their string / symbol table
_SHF_COMPRESSED = 0x800

#: Per class: (ELF header size, section header size, ELF header layout after e_ident, section header layout).
_LAYOUT = {
    _ELFCLASS64: (64, 64, "HHIQQQIHHHHHH", "IIQQQQIIQQ"),
    _ELFCLASS32: (52, 40, "HHIIIIIHHHHHH", "IIIIIIIIII"),
}
#: Entry sizes of the tables whose size must be a whole number of entries, per class.
_ENTRY = {
    _ELFCLASS64: {_SHT_SYMTAB: 24, _SHT_DYNSYM: 24, _SHT_REL: 16, _SHT_RELA: 24},
    _ELFCLASS32: {_SHT_SYMTAB: 16, _SHT_DYNSYM: 16, _SHT_REL: 8, _SHT_RELA: 12},
}
_TABLE_NAME = {_SHT_SYMTAB: "symbol table", _SHT_DYNSYM: "symbol table", _SHT_REL: "relocation table",
               _SHT_RELA: "relocation table"}


def _name(data: bytes, names: tuple[int, int] | None, name_off: int, index: int) -> str:
    """A section's name from the raw name table, or "[index]" when it cannot be read."""
    if names is not None:
        start, size = names
        if name_off < size:
            end = data.find(b"\0", start + name_off, start + size)
            raw = data[start + name_off : end if end >= 0 else start + size]
            if raw:
                return raw.decode(errors="replace")
    return f"[{index}]"


def check_headers(data: bytes) -> None:
    """Raise `ElfError` naming the place if the ELF framing of `data` is damaged."""
    if len(data) < 16 or data[:4] != b"\x7fELF":
        raise ElfError("not an ELF file (bad magic)", offset=0)
    cls, enc = data[4], data[5]
    if cls not in _LAYOUT:
        raise ElfError(f"bad ELF class {cls} (1: 32-bit, 2: 64-bit)", offset=4)
    if enc not in (1, 2):
        raise ElfError(f"bad ELF data encoding {enc} (1: little-endian, 2: big-endian)", offset=5)
    bo = "<" if enc == 1 else ">"
    ehsize, shsize, ehdr, shdr = _LAYOUT[cls]
    if len(data) < ehsize:
        raise ElfError(f"ELF header truncated: {len(data)} of {ehsize} bytes", offset=0)
    (_type, _machine, _version, _entry, _phoff, shoff, _flags, _eh, _phentsize, _phnum, shentsize, shnum,
     shstrndx) = struct.unpack_from(bo + ehdr, data, 16)
    if shnum == 0 and shoff == 0:
        return  # no sections at all: nothing more to frame
    if shentsize != shsize:
        raise ElfError(f"section header size {shentsize}, expected {shsize}", offset=0x3A if cls == _ELFCLASS64 else 0x2E)
    count = shnum
    if shnum == 0:  # extended numbering: the count is section 0's sh_size
        if shoff + shsize > len(data):
            raise ElfError(f"section header table at {shoff} runs past the end of the file ({len(data)} bytes)",
                           offset=shoff)
        count = struct.unpack_from(bo + shdr, data, shoff)[5]
    end = shoff + count * shsize
    if end > len(data):
        raise ElfError(f"section header table ({count} entries of {shsize} bytes at {shoff}) runs past the end "
                       f"of the file ({len(data)} bytes)", offset=shoff)
    headers = [struct.unpack_from(bo + shdr, data, shoff + k * shsize) for k in range(count)]
    if shstrndx == 0xFFFF and headers:  # SHN_XINDEX: the index is section 0's sh_link
        shstrndx = headers[0][6]
    names = None
    if shstrndx:
        if shstrndx >= count:
            raise ElfError(f"section name table index {shstrndx} does not exist ({count} sections)",
                           offset=0x3E if cls == _ELFCLASS64 else 0x32)
        h = headers[shstrndx]
        if h[4] + h[5] <= len(data):
            names = (h[4], h[5])
    for k, (name_off, sh_type, flags, _a, off, size, link, info, _align, entsize) in enumerate(headers):
        if k == 0 or sh_type in (_SHT_NOBITS, 0):
            continue
        where = _name(data, names, name_off, k)
        if off + size > len(data):
            raise ElfError(f"section data ({size} bytes at {off}) runs past the end of the file ({len(data)} bytes)",
                           section=where, offset=shoff + k * shsize)
        at = shoff + k * shsize
        entry = _ENTRY[cls].get(sh_type)
        if entry and entsize != entry:
            raise ElfError(f"{_TABLE_NAME[sh_type]} entry size {entsize}, expected {entry}", section=where, offset=at)
        if entry and size % entry:
            raise ElfError(f"{_TABLE_NAME[sh_type]} size {size} is not a whole number of {entry}-byte entries",
                           section=where, offset=at)
        if sh_type == _SHT_RELR and entsize != (8 if cls == _ELFCLASS64 else 4):
            raise ElfError(f"RELR table entry size {entsize}", section=where, offset=at)
        if sh_type in _LINKED and not 0 < link < count:
            raise ElfError(f"sh_link {link} names no section ({count} sections)", section=where, offset=at)
        if sh_type in _LINKED:
            # A symbol table's names are in a string table; relocations name the entries of a symbol table.
            wanted = (_SHT_STRTAB,) if sh_type in (_SHT_SYMTAB, _SHT_DYNSYM) else (_SHT_SYMTAB, _SHT_DYNSYM)
            linked = headers[link]
            if linked[1] not in wanted:
                kind = "string table" if wanted == (_SHT_STRTAB,) else "symbol table"
                raise ElfError(f"sh_link {link} names section {_name(data, names, linked[0], link)} of type "
                               f"{linked[1]}, not a {kind}", section=where, offset=at)
        if sh_type in (_SHT_REL, _SHT_RELA) and info >= count:
            raise ElfError(f"relocations for section {info}, which does not exist ({count} sections)",
                           section=where, offset=at)
        if flags & _SHF_COMPRESSED:
            chdr = "IIQQ" if cls == _ELFCLASS64 else "III"
            if size < struct.calcsize(chdr):
                raise ElfError("compressed section shorter than its compression header", section=where, offset=at)
            ch_type = struct.unpack_from(bo + "I", data, off)[0]
            if ch_type not in (1, 2):  # ELFCOMPRESS_ZLIB, ELFCOMPRESS_ZSTD
                raise ElfError(f"compressed section of unknown compression type {ch_type}", section=where, offset=off)

"""BTF (.BTF): header, string section, and the type section walked by kind.

Enough to name functions and types, size a type, and read the map
definitions of a BTF-defined ``.maps`` section.  Counts and offsets are
checked against the section size before anything is allocated.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum

from bpfpatch.errors import ElfError

BTF_MAGIC = 0xEB9F


class BtfKind(IntEnum):
    UNKN = 0
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19


# Bytes that follow the 12-byte btf_type header: (fixed, per vlen item).
_TRAILER = {
    BtfKind.INT: (4, 0), BtfKind.ARRAY: (12, 0), BtfKind.STRUCT: (0, 12), BtfKind.UNION: (0, 12),
    BtfKind.ENUM: (0, 8), BtfKind.FUNC_PROTO: (0, 8), BtfKind.VAR: (4, 0), BtfKind.DATASEC: (0, 12),
    BtfKind.DECL_TAG: (4, 0), BtfKind.ENUM64: (0, 12),
}
_MODIFIERS = {BtfKind.TYPEDEF, BtfKind.VOLATILE, BtfKind.CONST, BtfKind.RESTRICT, BtfKind.TYPE_TAG}


@dataclass
class BtfType:
    id: int
    kind: BtfKind
    name: str
    vlen: int
    size_or_type: int
    extra: tuple = ()  # ARRAY: (type, index_type, nelems); VAR: (linkage,)
    members: list[tuple] = field(default_factory=list)  # STRUCT: (name, type, offset); DATASEC: (type, offset, size)


class Btf:
    """A parsed .BTF section."""

    def __init__(self, raw: bytes, byteorder: str = "<") -> None:
        self.raw = raw
        if len(raw) < 24:
            raise ElfError("BTF header truncated", section=".BTF", offset=0)
        magic, version, flags, hdr_len = struct.unpack_from(byteorder + "HBBI", raw, 0)
        if magic != BTF_MAGIC:
            raise ElfError(f"bad BTF magic {magic:#x}", section=".BTF", offset=0)
        type_off, type_len, str_off, str_len = struct.unpack_from(byteorder + "IIII", raw, 8)
        end = len(raw)
        for what, off, ln in (("type", type_off, type_len), ("string", str_off, str_len)):
            if hdr_len + off + ln > end:
                raise ElfError(f"BTF {what} section runs past the end ({hdr_len + off + ln} > {end})", section=".BTF", offset=8)
        self.strings = raw[hdr_len + str_off : hdr_len + str_off + str_len]
        self.types: list[BtfType] = [BtfType(0, BtfKind.UNKN, "void", 0, 0)]
        pos, stop = hdr_len + type_off, hdr_len + type_off + type_len
        bo = byteorder
        while pos < stop:
            if pos + 12 > stop:
                raise ElfError("BTF type truncated", section=".BTF", offset=pos)
            name_off, info, st = struct.unpack_from(bo + "III", raw, pos)
            kind_n, vlen = (info >> 24) & 0x1F, info & 0xFFFF
            try:
                kind = BtfKind(kind_n)
            except ValueError:
                raise ElfError(f"unknown BTF kind {kind_n}", section=".BTF", offset=pos) from None
            fixed, per = _TRAILER.get(kind, (0, 0))
            body = pos + 12
            if body + fixed + per * vlen > stop:
                raise ElfError("BTF type data truncated", section=".BTF", offset=pos)
            t = BtfType(len(self.types), kind, self.string(name_off), vlen, st)
            kflag = info >> 31
            if kind == BtfKind.ARRAY:
                t.extra = struct.unpack_from(bo + "III", raw, body)
            elif kind == BtfKind.VAR:
                t.extra = struct.unpack_from(bo + "I", raw, body)
            elif kind in (BtfKind.STRUCT, BtfKind.UNION):
                # With kind_flag set, offset packs bitfield size (high 8) and bit offset (low 24).
                t.members = [
                    (self.string(n), ty, o & 0xFFFFFF if kflag else o)
                    for n, ty, o in struct.iter_unpack(bo + "III", raw[body : body + 12 * vlen])
                ]
            elif kind == BtfKind.DATASEC:
                t.members = list(struct.iter_unpack(bo + "III", raw[body : body + 12 * vlen]))
            self.types.append(t)
            pos = body + fixed + per * vlen

    def string(self, off: int) -> str:
        if off >= len(self.strings):
            return ""
        end = self.strings.find(b"\0", off)
        return self.strings[off : end if end >= 0 else len(self.strings)].decode(errors="replace")

    def type(self, type_id: int) -> BtfType:
        if not 0 <= type_id < len(self.types):
            raise ElfError(f"BTF type id {type_id} out of range (0..{len(self.types) - 1})", section=".BTF")
        return self.types[type_id]

    def resolve(self, type_id: int) -> BtfType:
        """Skip typedefs and qualifiers."""
        t = self.type(type_id)
        for _ in range(64):
            if t.kind not in _MODIFIERS:
                return t
            t = self.type(t.size_or_type)
        raise ElfError("BTF type loop", section=".BTF")

    def size_of(self, type_id: int) -> int:
        t = self.resolve(type_id)
        if t.kind in (BtfKind.INT, BtfKind.STRUCT, BtfKind.UNION, BtfKind.ENUM, BtfKind.ENUM64, BtfKind.FLOAT, BtfKind.DATASEC):
            return t.size_or_type
        if t.kind == BtfKind.PTR:
            return 8
        if t.kind == BtfKind.ARRAY:
            return t.extra[2] * self.size_of(t.extra[0])
        raise ElfError(f"BTF type {type_id} ({t.kind.name}) has no size", section=".BTF")

    def find(self, kind: BtfKind, name: str) -> BtfType | None:
        for t in self.types:
            if t.kind == kind and t.name == name:
                return t
        return None

    def member(self, struct_id: int, name: str) -> tuple[int, int] | None:
        """(byte offset, size) of a member, looking inside anonymous structs and unions."""
        t = self.resolve(struct_id)
        for mname, mtype, bits in t.members:
            if mname == name:
                return bits // 8, self.size_of(mtype)
            if not mname and self.resolve(mtype).kind in (BtfKind.STRUCT, BtfKind.UNION):
                inner = self.member(mtype, name)
                if inner is not None:
                    return bits // 8 + inner[0], inner[1]
        return None

    def name_of_func(self, type_id: int) -> str:
        t = self.type(type_id)
        return t.name if t.kind == BtfKind.FUNC else ""

    def datasec(self, name: str) -> BtfType | None:
        for t in self.types:
            if t.kind == BtfKind.DATASEC and t.name == name:
                return t
        return None

    def map_definitions(self) -> dict[str, dict[str, int]]:
        """BTF-defined maps of the ``.maps`` section: name -> {type, key_size, value_size, max_entries, flags}."""
        sec = self.datasec(".maps")
        out: dict[str, dict[str, int]] = {}
        if sec is None:
            return out
        for var_id, _off, _size in sec.members:
            var = self.type(var_id)
            struct_t = self.resolve(var.size_or_type)
            d: dict[str, int] = {"map_type": 0, "key_size": 0, "value_size": 0, "max_entries": 0, "flags": 0}
            for mname, mtype, _ in struct_t.members:
                ptr = self.resolve(mtype)
                pointee = ptr.size_or_type if ptr.kind == BtfKind.PTR else mtype
                if mname in ("type", "max_entries", "map_flags", "key_size", "value_size"):
                    arr = self.resolve(pointee)  # __uint(name, N): pointer to int[N]
                    n = arr.extra[2] if arr.kind == BtfKind.ARRAY else 0
                    d[{"type": "map_type", "map_flags": "flags"}.get(mname, mname)] = n
                elif mname in ("key", "value"):
                    d[f"{mname}_size"] = self.size_of(pointee)
            out[var.name] = d
        return out

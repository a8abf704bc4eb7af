"""BTF (.BTF): header, string section, and the type section walked by kind.

Enough to name functions and types, size a type, and read the map
definitions of a BTF-defined ``.maps`` section.  Counts and offsets are
checked against the section size before anything is allocated.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

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
#: The kinds that only qualify or rename another type (libbpf's ``skip_mods_and_typedefs`` steps through them).
MODIFIERS = frozenset({BtfKind.TYPEDEF, BtfKind.VOLATILE, BtfKind.CONST, BtfKind.RESTRICT, BtfKind.TYPE_TAG})


# Kinds whose type reference is contained (not pointed to): a cycle through these is a type
# that contains itself, which the kernel's BTF check refuses.
_CONTAINS = MODIFIERS | {BtfKind.VAR}
_SIZED = (BtfKind.INT, BtfKind.STRUCT, BtfKind.UNION, BtfKind.ENUM, BtfKind.ENUM64, BtfKind.FLOAT, BtfKind.DATASEC)

#: kind number (5 bits) -> BtfKind, None where no kind is defined (a table: no enum call per type).
_KIND_OF = tuple(BtfKind(k) if k in BtfKind._value2member_map_ else None for k in range(32))


@dataclass
class BtfType:
    """One BTF type record, with its place in the section (`offset`: byte offset of its header)."""

    id: int
    kind: BtfKind
    name: str
    vlen: int
    size_or_type: int
    extra: tuple = ()  # ARRAY: (type, index_type, nelems); VAR: (linkage,); DECL_TAG: (component_idx,)
    members: list[tuple] = field(default_factory=list)  # STRUCT: (name, type, offset); DATASEC: (type, offset, size)
    offset: int = 0  # byte offset of the type's header in .BTF
    # FUNC_PROTO members: (name offset, type) per parameter.


def _place(t: BtfType) -> str:
    return f"type [{t.id}] {t.kind.name}"


class TypeLookup:
    """`resolve` and `size_of` over ``self.type(id)`` and ``self.type_count``: shared by `Btf` and
    `bpfpatch.btf.vmlinux.TypeIndex`."""

    type_count: int

    def type(self, type_id: int) -> BtfType:  # pragma: no cover - provided by the class
        raise NotImplementedError

    def resolve(self, type_id: int) -> BtfType:
        """Skip typedefs and qualifiers (iteratively; a loop is an `ElfError`)."""
        t = self.type(type_id)
        for _ in range(self.type_count):
            if t.kind not in MODIFIERS:
                return t
            t = self.type(t.size_or_type)
        raise ElfError(f"{_place(t)}: type loop", section=".BTF", offset=t.offset)

    def size_of(self, type_id: int) -> int:
        """Byte size of a type; arrays of arrays multiply out iteratively."""
        count = 1
        for _ in range(self.type_count):
            t = self.resolve(type_id)
            if t.kind in _SIZED:
                return count * t.size_or_type
            if t.kind == BtfKind.PTR:
                return count * 8
            if t.kind != BtfKind.ARRAY:
                raise ElfError(f"BTF type {type_id} ({t.kind.name}) has no size", section=".BTF", offset=t.offset)
            count *= t.extra[2]
            type_id = t.extra[0]
        raise ElfError(f"BTF type {type_id}: array loop", section=".BTF")


class Btf(TypeLookup):
    """A parsed .BTF section.

    Parsing refuses what the kernel's BTF check would: sections outside the
    data, a string section that does not start and end with a NUL, a name
    offset past the string section, a type id that does not exist, a type that
    contains itself.  Every error names the type and its byte offset.  Type
    chains are walked iteratively, so nesting depth is bounded only by the
    number of types.
    """

    def __init__(self, raw: bytes, byteorder: str = "<") -> None:
        self.raw = raw
        if len(raw) < 24:
            raise ElfError("BTF header truncated", section=".BTF", offset=0)
        magic, version, flags, hdr_len = struct.unpack_from(byteorder + "HBBI", raw, 0)
        if magic != BTF_MAGIC:
            raise ElfError(f"bad BTF magic {magic:#x}", section=".BTF", offset=0)
        if not 24 <= hdr_len <= len(raw):
            raise ElfError(f"BTF header length {hdr_len} is outside 24..{len(raw)}", section=".BTF", offset=4)
        type_off, type_len, str_off, str_len = struct.unpack_from(byteorder + "IIII", raw, 8)
        end = len(raw)
        for what, off, ln, at in (("type", type_off, type_len, 8), ("string", str_off, str_len, 16)):
            if hdr_len + off + ln > end:
                raise ElfError(f"BTF {what} section runs past the end ({hdr_len + off + ln} > {end})", section=".BTF", offset=at)
        if type_off % 4:
            raise ElfError(f"BTF type section offset {type_off} is not 4-byte aligned", section=".BTF", offset=8)
        if type_off < str_off + str_len and str_off < type_off + type_len:
            raise ElfError("BTF type and string sections overlap", section=".BTF", offset=8)
        self.strings = raw[hdr_len + str_off : hdr_len + str_off + str_len]
        if not self.strings or self.strings[0] or self.strings[-1]:
            raise ElfError("BTF string section must start and end with a NUL byte", section=".BTF", offset=hdr_len + str_off)
        self.types: list[BtfType] = [BtfType(0, BtfKind.UNKN, "void", 0, 0)]
        self._names: dict[int, str] = {}
        self._by_name: dict[tuple[BtfKind, str], BtfType] | None = None  # `find`'s index, made on first use
        pos, stop = hdr_len + type_off, hdr_len + type_off + type_len
        bo = byteorder
        nstr = len(self.strings)
        while pos < stop:
            if pos + 12 > stop:
                raise ElfError("BTF type truncated", section=".BTF", offset=pos)
            name_off, info, st = struct.unpack_from(bo + "III", raw, pos)
            kind_n, vlen = (info >> 24) & 0x1F, info & 0xFFFF
            kind = _KIND_OF[kind_n]
            if kind is None:
                raise ElfError(f"type [{len(self.types)}]: unknown BTF kind {kind_n}", section=".BTF", offset=pos) from None
            fixed, per = _TRAILER.get(kind, (0, 0))
            body = pos + 12
            if body + fixed + per * vlen > stop:
                raise ElfError(f"type [{len(self.types)}] {kind.name}: data truncated", section=".BTF", offset=pos)
            t = BtfType(len(self.types), kind, "", vlen, st, offset=pos)
            if name_off >= nstr:
                raise ElfError(f"{_place(t)}: name offset {name_off} is past the string section ({nstr} bytes)",
                               section=".BTF", offset=pos)
            t.name = self.string(name_off)
            kflag = info >> 31
            if kind == BtfKind.ARRAY:
                t.extra = struct.unpack_from(bo + "III", raw, body)
            elif kind in (BtfKind.VAR, BtfKind.INT):  # VAR: linkage; INT: encoding << 24 | offset << 16 | bits
                t.extra = struct.unpack_from(bo + "I", raw, body)
            elif kind == BtfKind.DECL_TAG:
                t.extra = struct.unpack_from(bo + "i", raw, body)  # component_idx (-1: the type itself)
            elif kind in (BtfKind.STRUCT, BtfKind.UNION):
                # With kind_flag set, offset packs bitfield size (high 8) and bit offset (low 24).
                rows = list(struct.iter_unpack(bo + "III", raw[body : body + 12 * vlen]))
                if rows and max(rows)[0] >= nstr:  # max of tuples: the largest name offset first
                    self._bad_name(t, [n for n, _, _ in rows], body, 12)
                t.members = [(self.string(n), ty, o & 0xFFFFFF if kflag else o) for n, ty, o in rows]
            elif kind == BtfKind.FUNC_PROTO:
                rows = list(struct.iter_unpack(bo + "II", raw[body : body + 8 * vlen]))
                if rows and max(rows)[0] >= nstr:
                    self._bad_name(t, [n for n, _ in rows], body, 8)
                t.members = rows  # (name offset, type): names are not needed, only checked
            elif kind in (BtfKind.ENUM, BtfKind.ENUM64) and vlen:
                size = 8 if kind == BtfKind.ENUM else 12
                rows = list(struct.iter_unpack(bo + "I" * (size // 4), raw[body : body + size * vlen]))
                if max(rows)[0] >= nstr:
                    self._bad_name(t, [r[0] for r in rows], body, size)
            elif kind == BtfKind.DATASEC:
                t.members = list(struct.iter_unpack(bo + "III", raw[body : body + 12 * vlen]))
            self.types.append(t)
            pos = body + fixed + per * vlen
        self._check_references()

    def _bad_name(self, t: BtfType, offsets: list[int], body: int, size: int) -> None:
        nstr = len(self.strings)
        for k, off in enumerate(offsets):
            if off >= nstr:
                raise ElfError(f"{_place(t)} member {k}: name offset {off} is past the string section ({nstr} bytes)",
                               section=".BTF", offset=body + k * size)

    @staticmethod
    def _refs(t: BtfType) -> list[tuple[str, int]]:
        """(role, type id) of every type `t` refers to."""
        k = t.kind
        if k in MODIFIERS or k in (BtfKind.PTR, BtfKind.FUNC, BtfKind.VAR, BtfKind.DECL_TAG):
            return [("type", t.size_or_type)]
        if k == BtfKind.ARRAY:
            return [("element type", t.extra[0]), ("index type", t.extra[1])]
        if k in (BtfKind.STRUCT, BtfKind.UNION):
            return [(f"member {i} type", m[1]) for i, m in enumerate(t.members)]
        if k == BtfKind.FUNC_PROTO:
            return [("return type", t.size_or_type)] + [(f"parameter {i} type", m[1]) for i, m in enumerate(t.members)]
        if k == BtfKind.DATASEC:
            return [(f"variable {i}", m[0]) for i, m in enumerate(t.members)]
        return []

    def _check_references(self) -> None:
        types = self.types
        n = len(types)
        simple = MODIFIERS | {BtfKind.PTR, BtfKind.FUNC, BtfKind.VAR, BtfKind.DECL_TAG}
        listed = (BtfKind.STRUCT, BtfKind.UNION, BtfKind.FUNC_PROTO, BtfKind.DATASEC)
        children: dict[int, list[int]] = {}  # containers only: type id -> ids it contains by value
        for t in types:
            k = t.kind
            if k in simple:
                bad = t.size_or_type >= n
                if k in _CONTAINS:
                    children[t.id] = [t.size_or_type]
            elif k == BtfKind.ARRAY:
                bad = max(t.extra[0], t.extra[1]) >= n
                children[t.id] = [t.extra[0]]
            elif k in listed:
                col = 0 if k == BtfKind.DATASEC else 1
                bad = (t.size_or_type >= n if k == BtfKind.FUNC_PROTO else False) or any(m[col] >= n for m in t.members)
                if k != BtfKind.FUNC_PROTO:
                    children[t.id] = [m[col] for m in t.members]
            else:
                continue
            if bad:
                role, ref = next((r, i) for r, i in self._refs(t) if i >= n)
                raise ElfError(f"{_place(t)}: {role} [{ref}] does not exist ({n - 1} types)", section=".BTF", offset=t.offset)
        # Iterative depth-first search for a type that contains itself: 0 new, 1 on the path, 2 done.
        state = bytearray(n)
        empty: list[int] = []
        for root in children:
            if state[root]:
                continue
            state[root] = 1
            stack = [(root, iter(children[root]))]
            while stack:
                tid, it = stack[-1]
                for child in it:
                    st = state[child]
                    if st == 1:
                        t = types[child]
                        raise ElfError(f"{_place(t)} contains itself (through type [{tid}])", section=".BTF", offset=t.offset)
                    if st == 0:
                        state[child] = 1
                        stack.append((child, iter(children.get(child, empty))))
                        break
                else:
                    state[tid] = 2
                    stack.pop()

    def string(self, off: int) -> str:
        """The NUL-terminated string at `off`; an offset past the string section is an `ElfError`."""
        got = self._names.get(off)
        if got is not None:
            return got
        if not 0 <= off < len(self.strings):
            raise ElfError(f"string offset {off} is past the string section ({len(self.strings)} bytes)", section=".BTF")
        end = self.strings.find(b"\0", off)
        got = self._names[off] = self.strings[off : end if end >= 0 else len(self.strings)].decode(errors="replace")
        return got

    @property
    def type_count(self) -> int:
        """How many types (ids 0 .. type_count - 1)."""
        return len(self.types)

    def type(self, type_id: int) -> BtfType:
        if not 0 <= type_id < len(self.types):
            raise ElfError(f"BTF type id {type_id} out of range (0..{len(self.types) - 1})", section=".BTF")
        return self.types[type_id]

    def find(self, kind: BtfKind, name: str) -> BtfType | None:
        """The first type (lowest id) of `kind` named `name`, or None.

        One lookup in an index of (kind, name) built on the first call, so the
        linker's and the context layouts' lookups stay linear in the types.
        """
        index = self._by_name
        if index is None:
            index = self._by_name = {}
            for t in self.types:
                index.setdefault((t.kind, t.name), t)
        return index.get((kind, name))

    def member(self, struct_id: int, name: str) -> tuple[int, int] | None:
        """(byte offset, size) of a member, looking inside anonymous structs and unions."""
        stack = [(self.resolve(struct_id), 0)]
        seen = set()
        while stack:
            t, base = stack.pop(0)
            if t.id in seen:
                continue
            seen.add(t.id)
            nested = []
            for mname, mtype, bits in t.members:
                if mname == name:
                    return base + bits // 8, self.size_of(mtype)
                if not mname and self.resolve(mtype).kind in (BtfKind.STRUCT, BtfKind.UNION):
                    nested.append((self.resolve(mtype), base + bits // 8))
            stack[:0] = nested  # depth first, in member order, like the recursive search
        return None

    def name_of_func(self, type_id: int) -> str:
        t = self.type(type_id)
        return t.name if t.kind == BtfKind.FUNC else ""

    def datasec(self, name: str) -> BtfType | None:
        """The DATASEC named `name` (``.data``, ``.bss``, ``.rodata``, ...), or None."""
        return self.find(BtfKind.DATASEC, name)

    def map_definitions(self) -> dict[str, dict[str, Any]]:
        """BTF-defined maps of the ``.maps`` section: name -> {type, key_size, value_size, max_entries, flags},
        plus ``inner``, the same dict, for a map of maps declaring its inner map (``__array(values, struct {...})``)."""
        sec = self.datasec(".maps")
        out: dict[str, dict[str, Any]] = {}
        if sec is None:
            return out
        for var_id, _off, _size in sec.members:
            var = self.type(var_id)
            out[var.name] = self._map_definition(self.resolve(var.size_or_type))
        return out

    def _map_definition(self, struct_t: BtfType) -> dict[str, Any]:
        d: dict[str, Any] = {"map_type": 0, "key_size": 0, "value_size": 0, "max_entries": 0, "flags": 0}
        for mname, mtype, _ in struct_t.members:
            ptr = self.resolve(mtype)
            pointee = ptr.size_or_type if ptr.kind == BtfKind.PTR else mtype
            if mname in ("type", "max_entries", "map_flags", "key_size", "value_size"):
                arr = self.resolve(pointee)  # __uint(name, N): pointer to int[N]
                n = arr.extra[2] if arr.kind == BtfKind.ARRAY else 0
                d[{"type": "map_type", "map_flags": "flags"}.get(mname, mname)] = n
            elif mname in ("key", "value"):
                d[f"{mname}_size"] = self.size_of(pointee)
            elif mname == "values":  # __array(values, ...): a map of maps or programs holds 4-byte ids
                d["value_size"] = 4
                if ptr.kind != BtfKind.ARRAY:
                    continue
                elem = self.resolve(ptr.extra[0])  # __array(values, struct {...}): an array of pointers to it
                inner = self.resolve(elem.size_or_type) if elem.kind == BtfKind.PTR else None
                if inner is not None and inner.kind == BtfKind.STRUCT:
                    d["inner"] = self._map_definition(inner)
        return d

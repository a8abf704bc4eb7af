"""The running kernel's BTF (/sys/kernel/btf/vmlinux): helper ids and kfuncs by name.

`bpfpatch.isa.build` knows helpers by their uapi names (a table generated from
the kernel headers); the running kernel is the final word, so this module
reads ``enum bpf_func_id`` and the ``FUNC`` types from its BTF::

    >>> helper_ids()["map_lookup_elem"]        # from the running kernel, else the uapi table
    1
    >>> call_kfunc("bpf_rcu_read_lock")        # Insn(CALL, src=BPF_PSEUDO_KFUNC_CALL, imm=<BTF id>)

One pass over the type section (struct.unpack_from per type, no object per
type) reads only what is asked; results are cached per file.
"""

from __future__ import annotations

import struct
from functools import lru_cache
from pathlib import Path

from bpfpatch.btf.types import BtfKind, BtfType, TypeLookup
from bpfpatch.errors import ElfError
from bpfpatch.isa import Insn
from bpfpatch.isa import build as b
from bpfpatch.isa.helper_ids import HELPER_IDS

VMLINUX = Path("/sys/kernel/btf/vmlinux")
_FUNC, _ENUM, _VAR, _ENUM64 = 12, 6, 14, 19
_TRAILER = {1: (4, 0), 3: (12, 0), 4: (0, 12), 5: (0, 12), 6: (0, 8), 13: (0, 8), 14: (4, 0), 15: (0, 12),
            17: (4, 0), 19: (0, 12)}


@lru_cache(maxsize=4)
def _scan(path: str) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """(FUNC name -> BTF id, bpf_func_id member name -> value, VAR name -> BTF id) of one BTF file."""
    raw = Path(path).read_bytes()
    if len(raw) < 24 or struct.unpack_from("<H", raw, 0)[0] != 0xEB9F:
        raise ElfError(f"{path}: not a BTF file", section=".BTF")
    hdr_len = struct.unpack_from("<I", raw, 4)[0]
    type_off, type_len, str_off, _str_len = struct.unpack_from("<IIII", raw, 8)
    strings = hdr_len + str_off

    def name(off: int) -> str:
        end = raw.index(b"\0", strings + off)
        return raw[strings + off: end].decode(errors="replace")

    funcs: dict[str, int] = {}
    helpers: dict[str, int] = {}
    variables: dict[str, int] = {}
    pos, stop, tid = hdr_len + type_off, hdr_len + type_off + type_len, 0
    unpack = struct.unpack_from
    while pos < stop:
        name_off, info = unpack("<II", raw, pos)
        kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        tid += 1
        fixed, per = _TRAILER.get(kind, (0, 0))
        if kind == _FUNC:
            funcs[name(name_off)] = tid
        elif kind == _VAR:
            variables[name(name_off)] = tid
        elif kind == _ENUM and name_off and name(name_off) == "bpf_func_id":
            for k in range(vlen):
                n_off, val = unpack("<Ii", raw, pos + 12 + 8 * k)
                member = name(n_off)
                if member.startswith("BPF_FUNC_"):
                    helpers[member[len("BPF_FUNC_"):]] = val
        pos += 12 + fixed + per * vlen
    return funcs, helpers, variables


def kernel_btf_available(path: Path = VMLINUX) -> bool:
    """Is the running kernel's BTF readable?"""
    return path.is_file()


def helper_ids(path: Path = VMLINUX) -> dict[str, int]:
    """Helper name (without ``bpf_``) -> id: the running kernel's ``enum bpf_func_id``, else the uapi table."""
    if not kernel_btf_available(path):
        return dict(HELPER_IDS)
    helpers = _scan(str(path))[1]
    return dict(helpers) if helpers else dict(HELPER_IDS)


def call_helper(name: str, path: Path = VMLINUX) -> Insn:
    """r0 = bpf_<name>(r1, ..., r5) with the running kernel's id for the name."""
    key = name[4:] if name.startswith("bpf_") else name
    ids = helper_ids(path)
    if key not in ids:
        raise b.BuildError(f"the kernel has no helper {name!r}")
    return b.call_helper(ids[key])


def kfunc_id(name: str, path: Path = VMLINUX) -> int:
    """The BTF id of kernel function `name` in the running kernel's BTF."""
    if not kernel_btf_available(path):
        raise ElfError(f"{path}: no kernel BTF to look kfunc {name!r} up in", section=".BTF")
    funcs = _scan(str(path))[0]
    if name not in funcs:
        raise b.BuildError(f"the kernel's BTF has no function {name!r}")
    return funcs[name]


def kernel_variable_id(name: str, path: Path = VMLINUX) -> int | None:
    """The BTF id of kernel variable `name` (a ``VAR``: what a typed ``__ksym`` extern names) in the running
    kernel's BTF, or None where the BTF has no such variable."""
    if not kernel_btf_available(path):
        raise ElfError(f"{path}: no kernel BTF to look variable {name!r} up in", section=".BTF")
    return _scan(str(path))[2].get(name)


def call_kfunc(name: str, path: Path = VMLINUX) -> Insn:
    """r0 = name(r1, ..., r5), a kernel function (kfunc) of vmlinux, by name."""
    return b.call_kfunc(kfunc_id(name, path))



# --- kfunc prototypes and struct members for the analysis -----------------------------------

_INT, _PTR, _ARRAY, _STRUCT, _UNION, _TYPEDEF, _FUNC_PROTO, _FLOAT = 1, 2, 3, 4, 5, 8, 13, 16
_SKIP = {7, 8, 9, 10, 11, 18}  # FWD? no: TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG (FWD handled apart)


class KernelTypes(TypeLookup):
    """kfunc prototypes and struct members of one BTF file (`bpfpatch.analysis.kfuncs.KernelTypes`).

    One pass over the type section keeps each type's kind, name, size/type and
    where its members are; prototypes and members are resolved on demand.  It
    also answers the part of `bpfpatch.btf.Btf` that reading a few kernel
    structures needs (`find`, `type`; `resolve`, `size_of` from `TypeLookup`),
    at a tenth of a full parse's cost.
    """

    def __init__(self, path: Path = VMLINUX) -> None:
        raw = Path(path).read_bytes()
        if len(raw) < 24 or struct.unpack_from("<H", raw, 0)[0] != 0xEB9F:
            raise ElfError(f"{path}: not a BTF file", section=".BTF")
        hdr_len = struct.unpack_from("<I", raw, 4)[0]
        type_off, type_len, str_off, _ = struct.unpack_from("<IIII", raw, 8)
        self._raw = raw
        self._strings = hdr_len + str_off
        self._kind = [0]
        self._name = [0]
        self._sot = [0]
        self._vlen = [0]
        self._kflag = [False]
        self._pos = [0]
        pos, stop = hdr_len + type_off, hdr_len + type_off + type_len
        unpack = struct.unpack_from
        while pos < stop:
            name_off, info, sot = unpack("<III", raw, pos)
            kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
            self._kind.append(kind)
            self._name.append(name_off)
            self._sot.append(sot)
            self._vlen.append(vlen)
            self._kflag.append(bool(info >> 31))
            self._pos.append(pos)
            fixed, per = _TRAILER.get(kind, (0, 0))
            pos += 12 + fixed + per * vlen
        self._structs: dict[str, int] | None = None
        self._by_name: dict[str, list[int]] | None = None
        self._protos: dict[int, object] = {}
        self._funcs: dict[tuple[int, str], int] | None = None

    @property
    def type_count(self) -> int:
        """How many types (ids 0 .. type_count - 1)."""
        return len(self._kind)

    def type(self, type_id: int) -> BtfType:
        """The type record `type_id` decoded (STRUCT / UNION members as (name, type, bit offset); ARRAY
        extra as (element type, index type, count); INT extra as its encoding word; FUNC_PROTO members
        as (name offset, type)), as `bpfpatch.btf.Btf.type` gives it."""
        if not 0 < type_id < len(self._kind):
            raise ElfError(f"BTF type id {type_id} out of range", section=".BTF")
        pos, kind, vlen = self._pos[type_id], self._kind[type_id], self._vlen[type_id]
        extra: tuple = ()
        members: list[tuple] = []
        if kind == _ARRAY:
            extra = struct.unpack_from("<III", self._raw, pos + 12)
        elif kind == _INT:  # encoding << 24 | bit offset << 16 | bits
            extra = struct.unpack_from("<I", self._raw, pos + 12)
        elif kind == _FUNC_PROTO:  # (name offset, type) per parameter
            members = list(struct.iter_unpack("<II", self._raw[pos + 12 : pos + 12 + 8 * vlen]))
        elif kind in (_STRUCT, _UNION):
            for k in range(vlen):
                m_name, m_type, m_off = struct.unpack_from("<III", self._raw, pos + 12 + 12 * k)
                members.append((self._str(m_name) if m_name else "", m_type,
                                m_off & 0xFFFFFF if self._kflag[type_id] else m_off))
        name = self._str(self._name[type_id]) if self._name[type_id] else ""
        return BtfType(type_id, BtfKind(kind), name, vlen, self._sot[type_id], extra, members, pos)

    def find(self, kind: BtfKind, name: str) -> BtfType | None:
        """The first STRUCT or UNION called `name` that has members."""
        if kind not in (BtfKind.STRUCT, BtfKind.UNION):
            return None
        for tid in self._struct_ids().get(name, ()):
            if self._kind[tid] == kind:
                return self.type(tid)
        return None

    def _struct_ids(self) -> dict[str, list[int]]:
        if self._by_name is None:
            self._by_name = {}
            for tid, k in enumerate(self._kind):
                if k in (_STRUCT, _UNION) and self._name[tid] and self._vlen[tid]:
                    self._by_name.setdefault(self._str(self._name[tid]), []).append(tid)
        return self._by_name

    def _str(self, off: int) -> str:
        start = self._strings + off
        return self._raw[start:self._raw.index(b"\0", start)].decode(errors="replace")

    def _strip(self, tid: int) -> int:
        while self._kind[tid] in _SKIP:
            tid = self._sot[tid]
        return tid

    def _size(self, tid: int) -> int:
        tid = self._strip(tid)
        k = self._kind[tid]
        if k == _PTR:
            return 8
        if k == _ARRAY:
            elem, _, n = struct.unpack_from("<III", self._raw, self._pos[tid] + 12)
            return self._size(elem) * n
        if k in (_INT, _STRUCT, _UNION, _ENUM, _ENUM64, _FLOAT):
            return self._sot[tid]
        return 0

    def _kind_of(self, tid: int, pname: str = "") -> str:
        tid = self._strip(tid)
        k = self._kind[tid]
        if tid == 0:
            return "void"
        if k in (_INT, _ENUM, _ENUM64):
            return "scalar"
        if k != _PTR:
            return "scalar"
        target = self._strip(self._sot[tid])
        tk = self._kind[target]
        name = self._str(self._name[target]) if target else ""
        if tk in (_STRUCT, 7) and name:  # a struct, or a forward declaration of one
            if name == "bpf_dynptr" or name == "bpf_dynptr_kern":
                return "dynptr"
            if name.startswith("bpf_iter_"):
                return "iter:" + name[len("bpf_iter_"):]
            return "ptr:" + name
        size = self._size(target)
        return f"mem:{size}" if size else "mem"

    def kfunc(self, btf_id: int):
        """The kfunc with BTF id `btf_id`, or None when that id is no function."""
        from bpfpatch.analysis.kfuncs import KfuncArg, KfuncProto, kfunc_flags

        if btf_id in self._protos:
            return self._protos[btf_id]
        out = None
        if 0 < btf_id < len(self._kind) and self._kind[btf_id] == _FUNC:
            name = self._str(self._name[btf_id])
            proto = self._sot[btf_id]
            if self._kind[proto] == _FUNC_PROTO:
                args = []
                for k in range(self._vlen[proto]):
                    n_off, t = struct.unpack_from("<II", self._raw, self._pos[proto] + 12 + 8 * k)
                    pname = self._str(n_off)
                    args.append(KfuncArg(pname, self._kind_of(t, pname)))
                out = KfuncProto(name, self._kind_of(self._sot[proto]), tuple(args), kfunc_flags(name))
        self._protos[btf_id] = out
        return out

    def params(self, proto_id: int) -> list[tuple[str, int]]:
        """A FUNC_PROTO's parameters as (name, type id); empty for any other type."""
        if not 0 < proto_id < len(self._kind) or self._kind[proto_id] != _FUNC_PROTO:
            return []
        out = []
        for k in range(self._vlen[proto_id]):
            n_off, t = struct.unpack_from("<II", self._raw, self._pos[proto_id] + 12 + 8 * k)
            out.append((self._str(n_off) if n_off else "", t))
        return out

    def struct_name(self, type_id: int) -> str | None:
        """The name of the STRUCT or UNION `type_id` (modifiers skipped); None for any other type."""
        if not 0 < type_id < len(self._kind):
            return None
        tid = self._strip(type_id)
        return self._str(self._name[tid]) if self._kind[tid] in (_STRUCT, _UNION) and self._name[tid] else None

    def func_id(self, name: str) -> int | None:
        """The id of the FUNC called `name` (None: there is none)."""
        return self.named_id(name, _FUNC)

    def named_id(self, name: str, kind: int) -> int | None:
        """The id of the first FUNC (12) or TYPEDEF (8) called `name` (None: there is none)."""
        if self._funcs is None:
            self._funcs = {}
            for tid, k in enumerate(self._kind):
                if k in (_FUNC, _TYPEDEF) and self._name[tid]:
                    self._funcs.setdefault((k, self._str(self._name[tid])), tid)
        return self._funcs.get((kind, name))

    def member(self, struct_name: str, off: int, size: int) -> str | None:
        """What a `size`-byte load at byte `off` of `struct struct_name` reads (None: no member there)."""
        if self._structs is None:
            self._structs = {}
            for tid, k in enumerate(self._kind):
                if k in (_STRUCT, _UNION) and self._name[tid] and self._vlen[tid]:
                    self._structs.setdefault(self._str(self._name[tid]), tid)
        tid = self._structs.get(struct_name)
        if tid is None:
            return None
        return self._walk(tid, off, size, 0)

    def _walk(self, tid: int, off: int, size: int, depth: int) -> str | None:
        tid = self._strip(tid)
        k = self._kind[tid]
        if depth > 32 or off < 0:
            return None
        if k == _ARRAY:
            elem, _, n = struct.unpack_from("<III", self._raw, self._pos[tid] + 12)
            esz = self._size(elem)
            if not esz or off + size > esz * n:
                return None
            return self._walk(elem, off % esz, size, depth + 1)
        if k in (_STRUCT, _UNION):
            if off + size > self._sot[tid]:
                return None
            base = self._pos[tid] + 12
            for j in range(self._vlen[tid]):
                _, mt, moff = struct.unpack_from("<III", self._raw, base + 12 * j)
                if self._kflag[tid]:
                    bits, moff = moff >> 24, moff & 0xFFFFFF
                    if bits:
                        if moff // 8 <= off < (moff + bits + 7) // 8:
                            return "scalar"
                        continue
                start = moff // 8
                msz = self._size(mt)
                if start <= off and off + size <= start + msz:
                    found = self._walk(mt, off - start, size, depth + 1)
                    if found is not None:
                        return found
            return None
        if k == _PTR:
            return self._kind_of(tid) if off == 0 and size == 8 else "scalar"
        return "scalar"


@lru_cache(maxsize=2)
def kernel_types(path: Path = VMLINUX) -> KernelTypes | None:
    """The running kernel's `KernelTypes` (None when its BTF is not readable), read once."""
    if not kernel_btf_available(path):
        return None
    return KernelTypes(path)


__all__ = ["VMLINUX", "KernelTypes", "call_helper", "call_kfunc", "helper_ids", "kernel_btf_available", "kernel_types",
           "kernel_variable_id", "kfunc_id"]

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

from bpfpatch.errors import ElfError
from bpfpatch.isa import Insn
from bpfpatch.isa import build as b
from bpfpatch.isa.helper_ids import HELPER_IDS

VMLINUX = Path("/sys/kernel/btf/vmlinux")
_FUNC, _ENUM, _ENUM64 = 12, 6, 19
_TRAILER = {1: (4, 0), 3: (12, 0), 4: (0, 12), 5: (0, 12), 6: (0, 8), 13: (0, 8), 14: (4, 0), 15: (0, 12),
            17: (4, 0), 19: (0, 12)}


@lru_cache(maxsize=4)
def _scan(path: str) -> tuple[dict[str, int], dict[str, int]]:
    """(FUNC name -> BTF id, bpf_func_id member name -> value) of one BTF file."""
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
    pos, stop, tid = hdr_len + type_off, hdr_len + type_off + type_len, 0
    unpack = struct.unpack_from
    while pos < stop:
        name_off, info = unpack("<II", raw, pos)
        kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        tid += 1
        fixed, per = _TRAILER.get(kind, (0, 0))
        if kind == _FUNC:
            funcs[name(name_off)] = tid
        elif kind == _ENUM and name_off and name(name_off) == "bpf_func_id":
            for k in range(vlen):
                n_off, val = unpack("<Ii", raw, pos + 12 + 8 * k)
                member = name(n_off)
                if member.startswith("BPF_FUNC_"):
                    helpers[member[len("BPF_FUNC_"):]] = val
        pos += 12 + fixed + per * vlen
    return funcs, helpers


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


def call_kfunc(name: str, path: Path = VMLINUX) -> Insn:
    """r0 = name(r1, ..., r5), a kernel function (kfunc) of vmlinux, by name."""
    return b.call_kfunc(kfunc_id(name, path))


__all__ = ["VMLINUX", "call_helper", "call_kfunc", "helper_ids", "kernel_btf_available", "kfunc_id"]

"""BPF maps: create them for programs under test, read and write elements."""

from __future__ import annotations

import ctypes
from enum import IntEnum
from typing import Iterable

import numpy as np

from bpfpatch.elf.model import MapSpec  # what a map is (the ELF linker describes them)
from bpfpatch.kernel.bpf_sys import Cmd, FdOwner, MapCreateAttr, MapElemAttr, addr, bpf, raise_kernel_error


class MapType(IntEnum):
    """enum bpf_map_type, the common ones."""

    HASH = 1
    ARRAY = 2
    PROG_ARRAY = 3
    PERF_EVENT_ARRAY = 4
    PERCPU_HASH = 5
    PERCPU_ARRAY = 6
    LRU_HASH = 9
    LRU_PERCPU_HASH = 10
    LPM_TRIE = 11
    ARRAY_OF_MAPS = 12
    HASH_OF_MAPS = 13
    SOCKMAP = 15
    PERCPU_CGROUP_STORAGE = 21
    QUEUE = 22
    STACK = 23
    RINGBUF = 27
    BLOOM_FILTER = 30


class Map(FdOwner):
    """A created map; closes its fd when done (context manager)."""

    def __init__(self, fd: int, spec: MapSpec) -> None:
        self.fd = fd
        self.spec = spec

    def update(self, key: bytes, value: bytes, flags: int = 0) -> None:
        k = ctypes.create_string_buffer(key, len(key))
        v = ctypes.create_string_buffer(value, len(value))
        try:
            bpf(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=self.fd, key=addr(k), value=addr(v), flags=flags))
        except OSError as exc:
            raise_kernel_error(exc, f"BPF_MAP_UPDATE_ELEM ({self.spec.name})")

    def lookup(self, key: bytes) -> bytes | None:
        k = ctypes.create_string_buffer(key, len(key))
        v = ctypes.create_string_buffer(self.spec.value_size)
        try:
            bpf(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=self.fd, key=addr(k), value=addr(v)))
        except OSError as exc:
            if exc.errno == 2:  # ENOENT: no such element
                return None
            raise_kernel_error(exc, f"BPF_MAP_LOOKUP_ELEM ({self.spec.name})")
        return v.raw



def create_map(spec: MapSpec) -> Map:
    """BPF_MAP_CREATE, with the initial value of key 0 written if given."""
    attr = MapCreateAttr(
        map_type=spec.map_type, key_size=spec.key_size, value_size=spec.value_size,
        max_entries=spec.max_entries, map_flags=spec.flags, map_name=spec.name.encode()[:15],
    )
    try:
        fd = bpf(Cmd.MAP_CREATE, attr)
    except OSError as exc:
        raise_kernel_error(exc, f"BPF_MAP_CREATE ({spec.name})")
    m = Map(fd, spec)
    if spec.initial is not None:
        m.update(b"\0" * spec.key_size, spec.initial.ljust(spec.value_size, b"\0"))
    return m


def maps_from_description(specs: Iterable[dict]) -> list[Map]:
    """Create maps from plain dicts: {name, map_type, key_size, value_size, max_entries}."""
    return [create_map(MapSpec(**s)) for s in specs]


def patch_map_fds(raw: bytes, refs: dict[int, tuple[int, int | None]]) -> bytes:
    """Point ld_imm64 instructions at maps: {slot: (map fd, value offset or None)}.

    A value offset selects BPF_PSEUDO_MAP_VALUE (global data); None selects
    BPF_PSEUDO_MAP_FD.
    """
    words = np.frombuffer(raw, dtype=np.dtype([("code", "u1"), ("regs", "u1"), ("off", "<i2"), ("imm", "<i4")])).copy()
    for slot, (fd, value_off) in refs.items():
        if words["code"][slot] != 0x18:
            raise ValueError(f"slot {slot} is not an ld_imm64")
        src = 1 if value_off is None else 2
        words["regs"][slot] = (words["regs"][slot] & 0x0F) | (src << 4)
        words["imm"][slot] = fd
        words["imm"][slot + 1] = 0 if value_off is None else value_off
    return words.tobytes()

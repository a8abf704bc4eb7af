"""The `kernel` pass's do_misc_fixups on maps and helpers, and its socket conversions, against xlated.

Each test builds a small program, loads it into this kernel with real maps,
and compares the kernel's xlated instructions with ``--pass kernel`` given the
same maps as facts (helper addresses, map ids and subprogram numbers masked:
`kernel_selftests.comparable_rows`, the ld_imm64 map references zeroed).
"""

from __future__ import annotations

import struct

import pytest

from bpfpatch import Insn, Program
from bpfpatch.analysis.facts import MapRef
from bpfpatch.errors import VerifierError
from bpfpatch.isa import decode_slots, slot_rows
from bpfpatch.passes import PassContext, run_passes
from bpfpatch.passes.kernel_maps import BPF_F_INNER_MAP, MapType, gen_lookup
from kernel_selftests import comparable_rows

def _mask_maps(rows: list) -> list:
    out = list(rows)
    for i, r in enumerate(out):
        if r[0] == 0x18 and r[2] == 1:
            out[i] = (0x18, r[1], 0, 0, 0)
            out[i + 1] = (0, 0, 0, 0, 0)
    return out


def _map(map_type: int, key: int, value: int, entries: int, inner: int = 0, flags: int = 0) -> int:
    from bpfpatch.kernel.bpf_sys import Cmd, MapCreateAttr, bpf

    return bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=map_type, key_size=key, value_size=value,
                                             max_entries=entries, inner_map_fd=inner, map_flags=flags))


def _raw(slots: list[Insn]) -> Program:
    """A program slot for slot (an ld_imm64 is two of them here: its map fd in the first)."""
    return Program(decode_slots(b"".join(struct.pack("<BBhi", i.code, i.dst | i.src << 4, i.off, i.imm)
                                         for i in slots)))


def _lookup_prog(fd: int) -> Program:
    return _raw([Insn(0x18, 1, 1, 0, fd), Insn(0), Insn(0x7A, 10, 0, -16, 0), Insn(0x7A, 10, 0, -8, 0), Insn(0xBF, 2, 10),
                 Insn(0x07, 2, 0, 0, -16), Insn(0x85, 0, 0, 0, 1), Insn(0xB7, 0, 0, 0, 0), Insn(0x95)])


def _compare(prog: Program, ptype: str, refs: dict[int, MapRef], prog_flags: int = 0,
             attach: int = 0) -> tuple[list, list]:
    """(ours, the kernel's); a program this kernel refuses skips the test with the verifier's reason."""
    from bpfpatch.kernel import load_program

    try:
        with load_program(prog, ptype, prog_flags=prog_flags, expected_attach_type=attach) as p:
            theirs = comparable_rows(_mask_maps(slot_rows(decode_slots(p.xlated()))))
    except VerifierError as exc:
        pytest.skip(f"this kernel refuses it: {str(exc).strip().splitlines()[-1][:80]}")
    ctx = PassContext(prog_type=ptype, options={"kernel": {"analysis": {"maps": refs}, "prog_flags": prog_flags}})
    ours = comparable_rows(_mask_maps(slot_rows(run_passes(prog, ["kernel"], ctx).slots)), xlated=False)
    return ours, theirs


LOOKUPS = [  # (name, map type, key size, value size, entries, flags)
    ("hash", MapType.HASH, 4, 12, 10, 0), ("hash key 13", MapType.HASH, 13, 8, 10, 0),
    ("lru hash", MapType.LRU_HASH, 4, 12, 10, 0), ("percpu hash", MapType.PERCPU_HASH, 8, 12, 10, 0),
    ("lru percpu hash", MapType.LRU_PERCPU_HASH, 4, 12, 10, 0), ("array", MapType.ARRAY, 4, 12, 10, 0),
    ("array pow2", MapType.ARRAY, 4, 16, 8, 0), ("array mmapable", MapType.ARRAY, 4, 12, 10, 1 << 10),
    ("inner-map array", MapType.ARRAY, 4, 12, 10, BPF_F_INNER_MAP), ("percpu array", MapType.PERCPU_ARRAY, 4, 12, 10, 0),
    ("array of maps", MapType.ARRAY_OF_MAPS, 4, 4, 10, 0), ("hash of maps", MapType.HASH_OF_MAPS, 4, 4, 10, 0),
    ("xskmap", MapType.XSKMAP, 4, 4, 10, 0),
]


@pytest.mark.kernel
@pytest.mark.parametrize("name, t, key, value, entries, flags", LOOKUPS, ids=[r[0] for r in LOOKUPS])
def test_map_lookup_inlining_matches_the_kernel(name, t, key, value, entries, flags):
    inner = _map(MapType.ARRAY, 4, 4, 1) if t in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS) else 0
    fd = _map(t, key, value, entries, inner, flags)
    import os

    try:
        prog = _lookup_prog(fd)
        ref = MapRef(0, name, fd, int(t), key, value, entries, map_flags=flags)
        ours, theirs = _compare(prog, "sched_cls", {fd: ref})
        assert ours == theirs
        # the kernel rewrote the call exactly where gen_lookup says it does
        assert (gen_lookup(ref) is not None) == (len(theirs) > len(slot_rows(prog.slots)))
    finally:
        os.close(fd)
        if inner:
            os.close(inner)


@pytest.mark.kernel
def test_a_call_site_that_sees_two_maps_is_not_inlined():
    """bpf_map_ptr_poisoned: the kernel keeps the call; so must we."""
    import os

    a, b = _map(MapType.HASH, 4, 8, 4), _map(MapType.HASH, 4, 8, 4)
    try:
        # r6 = a random number chooses map a or map b for the one lookup
        prog = _raw([Insn(0x85, 0, 0, 0, 7), Insn(0xBF, 6, 0), Insn(0x18, 1, 1, 0, a), Insn(0), Insn(0x15, 6, 0, 2, 0),
                     Insn(0x18, 1, 1, 0, b), Insn(0), Insn(0x62, 10, 0, -8, 0), Insn(0xBF, 2, 10),
                     Insn(0x07, 2, 0, 0, -8), Insn(0x85, 0, 0, 0, 1), Insn(0xB7, 0, 0, 0, 0), Insn(0x95)])
        refs = {a: MapRef(0, "a", a, 1, 4, 8, 4), b: MapRef(1, "b", b, 1, 4, 8, 4)}
        ours, theirs = _compare(prog, "sched_cls", refs)
        assert ours == theirs
        assert len(theirs) == len(slot_rows(prog.slots))
    finally:
        os.close(a)
        os.close(b)


SOCK_READS = [  # bpf_sock offset, size: cgroup/sock programs read their context as struct bpf_sock
    (0, 4), (4, 4), (8, 4), (12, 4), (16, 4), (20, 4), (24, 4), (25, 1), (26, 2), (32, 4), (44, 4), (48, 4),
    (48, 2), (49, 1), (52, 4), (60, 4), (72, 4), (76, 4), (4, 1), (4, 2),
]
_SZ = {1: 0x10, 2: 0x08, 4: 0x00}


BPF_CGROUP_INET_SOCK_CREATE, BPF_CGROUP_INET4_POST_BIND = 2, 12


@pytest.mark.kernel
@pytest.mark.parametrize("off, size", SOCK_READS)
def test_bpf_sock_reads_match_the_kernel(off, size):
    """Read at a sock_create hook, or (the source address and port) at post_bind4."""
    attach = BPF_CGROUP_INET4_POST_BIND if 24 <= off < 48 else BPF_CGROUP_INET_SOCK_CREATE
    prog = Program.from_insns([Insn(0x61 | _SZ[size], 2, 1, off, 0), Insn(0xB7, 0, 0, 0, 1), Insn(0x95)])
    ours, theirs = _compare(prog, "cgroup_sock", {}, attach=attach)
    assert ours == theirs


@pytest.mark.kernel
@pytest.mark.parametrize("off", [0, 16, 20])
def test_bpf_sock_writes_match_the_kernel(off):
    for store in (Insn(0x63, 1, 2, off, 0), Insn(0x62, 1, 0, off, 7)):
        prog = Program.from_insns([Insn(0xB7, 2, 0, 0, 3), store, Insn(0xB7, 0, 0, 0, 1), Insn(0x95)])
        ours, theirs = _compare(prog, "cgroup_sock", {}, attach=BPF_CGROUP_INET_SOCK_CREATE)
        assert ours == theirs


@pytest.mark.kernel
@pytest.mark.parametrize("off, size", [(4, 4), (24, 4), (44, 4), (48, 4), (72, 4), (72, 1), (16, 4)])
def test_a_socket_from_skb_sk_is_converted_as_bpf_sock(off, size):
    """PTR_TO_SOCK_COMMON (skb->sk, null-checked) goes through bpf_sock_convert_ctx_access."""
    prog = Program.from_insns([Insn(0x79, 1, 1, 168, 0), Insn(0x15, 1, 0, 1, 0), Insn(0x61 | _SZ[size], 0, 1, off, 0),
                               Insn(0xB7, 0, 0, 0, 1), Insn(0x95)])
    ours, theirs = _compare(prog, "cgroup_skb", {})
    assert ours == theirs


BPF_MAP_FREEZE, BPF_F_RDONLY_PROG = 22, 1 << 7


@pytest.mark.kernel
@pytest.mark.parametrize("value, size, sign", [(5, 1, False), (5, 4, False), (0, 4, False), (-3 & 0xFF, 1, True)])
def test_a_frozen_read_only_value_is_a_constant(value, size, sign):
    """bpf_map_direct_read: the kernel knows what a frozen .rodata-like map holds, and removes the dead branch."""
    import ctypes
    import os

    from bpfpatch.kernel.bpf_sys import MapElemAttr, addr, bpf

    fd = _map(MapType.ARRAY, 4, 8, 1, flags=BPF_F_RDONLY_PROG)
    try:
        content = value.to_bytes(size, "little").ljust(8, b"\0")
        k, v = ctypes.create_string_buffer(4), ctypes.create_string_buffer(content, 8)
        bpf(2, MapElemAttr(map_fd=fd, key=addr(k), value=addr(v)))
        bpf(BPF_MAP_FREEZE, MapElemAttr(map_fd=fd))
        load = {(1, False): 0x71, (4, False): 0x61, (1, True): 0x91}[(size, sign)]
        # one side of the branch is dead whichever value the map holds
        prog = _raw([Insn(0x18, 1, 2, 0, fd), Insn(0), Insn(load, 0, 1, 0, 0), Insn(0x15, 0, 0, 2, 5),
                     Insn(0xB7, 0, 0, 0, 7), Insn(0x95), Insn(0xB7, 0, 0, 0, 9), Insn(0x95)])
        ref = MapRef(0, "ro", fd, 2, 4, 8, 1, map_flags=BPF_F_RDONLY_PROG, frozen_value=content)
        ours, theirs = _compare(prog, "socket_filter", {fd: ref})
        ours = [(0x18, r[1], 0, 0, 0) if r[0] == 0x18 else r for r in ours]  # map value references: src 2 here
        theirs = [(0x18, r[1], 0, 0, 0) if r[0] == 0x18 else r for r in theirs]
        assert ours == theirs
        assert len(theirs) < len(slot_rows(prog.slots))  # the kernel removed the branch
    finally:
        os.close(fd)


INNER_LOOKUPS = [  # (name, outer type, inner type, key size, value size, entries, inner flags)
    ("array in array", MapType.ARRAY_OF_MAPS, MapType.ARRAY, 4, 12, 6, 0),
    ("percpu array in hash", MapType.HASH_OF_MAPS, MapType.PERCPU_ARRAY, 4, 8, 4, 0),
    ("hash in array", MapType.ARRAY_OF_MAPS, MapType.HASH, 8, 16, 4, 0),
    ("inner-map array", MapType.ARRAY_OF_MAPS, MapType.ARRAY, 4, 12, 6, BPF_F_INNER_MAP),
]


@pytest.mark.kernel
@pytest.mark.parametrize("name, outer_t, inner_t, key, value, entries, flags", INNER_LOOKUPS,
                         ids=[r[0] for r in INNER_LOOKUPS])
def test_a_lookup_in_an_inner_map_inlines_the_inner_maps_lookup(name, outer_t, inner_t, key, value, entries, flags):
    """The map a map-in-map lookup gives is its inner map's template (inner_map_meta): a lookup in
    it is that map type's inlined lookup, with the template's sizes (MapRef.inner)."""
    import os

    inner = _map(inner_t, key, value, entries, flags=flags)
    outer = _map(outer_t, 4, 4, 2, inner)
    try:
        # r0 = lookup(outer, &0); if !r0 exit; r0 = lookup(r0, &zeroed key); exit
        prog = _raw([Insn(0x62, 10, 0, -4, 0), Insn(0xBF, 2, 10), Insn(0x07, 2, 0, 0, -4), Insn(0x18, 1, 1, 0, outer),
                     Insn(0), Insn(0x85, 0, 0, 0, 1), Insn(0x55, 0, 0, 2, 0), Insn(0xB7, 0, 0, 0, 0), Insn(0x95),
                     Insn(0x7A, 10, 0, -16, 0), Insn(0x7A, 10, 0, -24, 0), Insn(0xBF, 2, 10), Insn(0x07, 2, 0, 0, -24),
                     Insn(0xBF, 1, 0), Insn(0x85, 0, 0, 0, 1), Insn(0xB7, 0, 0, 0, 0), Insn(0x95)])
        template = MapRef(-1, "inner", None, int(inner_t), key, value, entries, map_flags=flags)
        ref = MapRef(0, "outer", outer, int(outer_t), 4, 4, 2, inner=template)
        ours, theirs = _compare(prog, "sched_cls", {outer: ref})
        assert ours == theirs
        outer_inlined = len(gen_lookup(ref) or [None]) - 1
        inner_inlined = len(gen_lookup(template) or [None]) - 1
        assert len(theirs) == len(slot_rows(prog.slots)) + outer_inlined + inner_inlined
        assert (inner_inlined > 0) == (not flags)
    finally:
        os.close(outer)
        os.close(inner)

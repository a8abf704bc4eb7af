"""The map lookups the kernel inlines (``map_gen_lookup``) and the helper calls it rewrites.

``do_misc_fixups`` replaces ``bpf_map_lookup_elem(map, key)`` by the map
type's ``map_gen_lookup`` sequence when the call site always sees the same map
(the facts name it) and the JIT is on (always, here).  `gen_lookup` returns that
sequence for a `MapRef`, or None where the kernel keeps the call:

=====================  =========================================================
map type               inlined lookup (Linux 6.18, privileged, x86-64)
=====================  =========================================================
array                  ``array_map_gen_lookup``: bounds check, index * elem_size
percpu array           ``percpu_array_map_gen_lookup``: ``pptrs[i]``, this_cpu_ptr
array of maps          ``array_of_map_gen_lookup``: the inner map pointer or NULL
hash                   ``htab_map_gen_lookup``: ``__htab_map_lookup_elem``, + key
percpu hash            ``htab_percpu_map_gen_lookup``: as hash, then this_cpu_ptr
lru hash               ``htab_lru_map_gen_lookup``: as hash, setting the lru ref
hash of maps           ``htab_of_map_gen_lookup``: as hash, the inner map pointer
xskmap                 ``xsk_map_gen_lookup``: the socket at index *r2, or NULL
=====================  =========================================================

LRU percpu hash and every other type keep the call (the kernel only
redirects it to the map's own function, an address xlated does not show
apart).  An array created with ``BPF_F_INNER_MAP`` is not inlined.  The
offsets of ``struct bpf_array`` and ``struct htab_elem`` come from
`bpfpatch.passes.ctx_layout` (the running kernel's BTF, else the 6.18 table).
The kernel functions the sequences call (``__htab_map_lookup_elem``) are
emitted with imm 0: xlated shows them as addresses only the kernel knows.
"""

from __future__ import annotations

from enum import IntEnum

from bpfpatch.analysis.facts import MapRef
from bpfpatch.isa import Insn
from bpfpatch.isa.build import alu64_imm, alu64_reg, ja, jmp_imm, ldx_mem, mov64_imm, st_mem
from bpfpatch.isa.opcodes import AluOp, InsnClass, JmpOp, Size, Source
from bpfpatch.passes.ctx_layout import member

#: BPF_F_INNER_MAP (uapi): an array used as an inner-map template.
BPF_F_INNER_MAP = 1 << 12
#: The off of ``BPF_MOV64_PERCPU_REG``: this_cpu_ptr of the register.
BPF_ADDR_PERCPU = -1


class MapType(IntEnum):
    """The ``enum bpf_map_type`` members whose lookups the kernel inlines."""

    HASH = 1
    ARRAY = 2
    PERCPU_HASH = 5
    PERCPU_ARRAY = 6
    LRU_HASH = 9
    LRU_PERCPU_HASH = 10
    ARRAY_OF_MAPS = 12
    HASH_OF_MAPS = 13
    XSKMAP = 17


def _round8(n: int) -> int:
    return (n + 7) & ~7


def _scale(elem: int) -> Insn:
    """index * elem_size: a shift when it is a power of two."""
    if elem & (elem - 1) == 0:
        return alu64_imm(AluOp.LSH, 0, elem.bit_length() - 1)
    return alu64_imm(AluOp.MUL, 0, elem)


def percpu_mov(reg: int) -> Insn:
    """``BPF_MOV64_PERCPU_REG(reg, reg)``: the register's per-CPU pointer, for this CPU."""
    return Insn(InsnClass.ALU64 | AluOp.MOV | Source.X, reg, reg, BPF_ADDR_PERCPU, 0)


def call_kernel_function() -> Insn:
    """``BPF_EMIT_CALL(fn)`` of a kernel function: its address is the kernel's (imm 0 here)."""
    return Insn(InsnClass.JMP | JmpOp.CALL, 0, 0, 0, 0)


def array_lookup(value_size: int, max_entries: int) -> list[Insn]:
    """array_map_gen_lookup, privileged (no index mask): r0 = &value[*r2] or NULL."""
    elem = _round8(value_size)
    return [alu64_imm(AluOp.ADD, 1, member("bpf_array.value")[0]), ldx_mem(Size.W, 0, 2, 0),
            jmp_imm(JmpOp.JGE, 0, max_entries, 3), _scale(elem), alu64_reg(AluOp.ADD, 0, 1), ja(1), mov64_imm(0, 0)]


def percpu_array_lookup(max_entries: int) -> list[Insn]:
    """percpu_array_map_gen_lookup: this_cpu_ptr(pptrs[*r2]) or NULL."""
    return [alu64_imm(AluOp.ADD, 1, member("bpf_array.value")[0]), ldx_mem(Size.W, 0, 2, 0),
            jmp_imm(JmpOp.JGE, 0, max_entries, 5), alu64_imm(AluOp.LSH, 0, 3), alu64_reg(AluOp.ADD, 0, 1),
            ldx_mem(Size.DW, 0, 0, 0), percpu_mov(0), ja(1), mov64_imm(0, 0)]


def array_of_maps_lookup(max_entries: int) -> list[Insn]:
    """array_of_map_gen_lookup: the inner map pointer at index *r2, or NULL."""
    return [alu64_imm(AluOp.ADD, 1, member("bpf_array.value")[0]), ldx_mem(Size.W, 0, 2, 0),
            jmp_imm(JmpOp.JGE, 0, max_entries, 5), _scale(8), alu64_reg(AluOp.ADD, 0, 1),
            ldx_mem(Size.DW, 0, 0, 0), jmp_imm(JmpOp.JEQ, 0, 0, 1), ja(1), mov64_imm(0, 0)]


def hash_lookup(map_type: int, key_size: int) -> list[Insn]:
    """htab_{,percpu_,lru_,of_}map_gen_lookup: the element, then its value (or what the value holds)."""
    value_off = member("htab_elem.key")[0] + _round8(key_size)
    add_key = alu64_imm(AluOp.ADD, 0, value_off)
    out = [call_kernel_function()]
    if map_type == MapType.HASH:
        return out + [jmp_imm(JmpOp.JEQ, 0, 0, 1), add_key]
    if map_type == MapType.PERCPU_HASH:
        return out + [jmp_imm(JmpOp.JEQ, 0, 0, 3), add_key, ldx_mem(Size.DW, 0, 0, 0), percpu_mov(0)]
    if map_type == MapType.HASH_OF_MAPS:
        return out + [jmp_imm(JmpOp.JEQ, 0, 0, 2), add_key, ldx_mem(Size.DW, 0, 0, 0)]
    ref = member("htab_elem.lru_node")[0] + member("bpf_lru_node.ref")[0]
    return out + [jmp_imm(JmpOp.JEQ, 0, 0, 4), ldx_mem(Size.B, 1, 0, ref), jmp_imm(JmpOp.JNE, 1, 0, 1),
                  st_mem(Size.B, 0, ref, 1), add_key]


def xskmap_lookup(max_entries: int) -> list[Insn]:
    """xsk_map_gen_lookup (net/xdp/xskmap.c): xsk_map[*r2] or NULL (6.18 bounds-checks with a
    64-bit JGE; 6.12's source has JMP32)."""
    return [ldx_mem(Size.W, 0, 2, 0), jmp_imm(JmpOp.JGE, 0, max_entries, 5), alu64_imm(AluOp.LSH, 0, 3),
            alu64_imm(AluOp.ADD, 1, member("xsk_map.xsk_map")[0]), alu64_reg(AluOp.ADD, 0, 1),
            ldx_mem(Size.DW, 0, 0, 0), ja(1), mov64_imm(0, 0)]


def gen_lookup(m: MapRef) -> list[Insn] | None:
    """The inlined ``bpf_map_lookup_elem`` of map `m`, or None where the kernel keeps the call."""
    t = m.map_type
    if t in (MapType.ARRAY, MapType.PERCPU_ARRAY, MapType.ARRAY_OF_MAPS):
        if not m.max_entries or (m.map_flags or 0) & BPF_F_INNER_MAP:
            return None
        if t == MapType.ARRAY:
            return array_lookup(m.value_size, m.max_entries) if m.value_size else None
        if t == MapType.PERCPU_ARRAY:
            return percpu_array_lookup(m.max_entries)
        return array_of_maps_lookup(m.max_entries)
    if t == MapType.XSKMAP and m.max_entries:
        return xskmap_lookup(m.max_entries)
    if t in (MapType.HASH, MapType.PERCPU_HASH, MapType.LRU_HASH, MapType.HASH_OF_MAPS) and m.key_size:
        return hash_lookup(t, m.key_size)
    return None


__all__ = ["BPF_F_INNER_MAP", "MapType", "array_lookup", "array_of_maps_lookup", "gen_lookup", "hash_lookup",
           "percpu_array_lookup", "percpu_mov", "xskmap_lookup"]

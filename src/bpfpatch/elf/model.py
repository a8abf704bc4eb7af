"""The object model of a BPF ELF file: relocations, symbols, map specs, the parsed object.

Nothing here reads or writes bytes: `reader` builds these, `link` and
`writer` consume them.  The per-program containers (`Relocations`,
`Symbols`, `MapRefs`) live in ``Program.meta`` and know how to follow their
instructions through a rewrite (`remap`) and which slots a loader patches by
position (`pinned_slots`), so `Program` needs no knowledge of ELF.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from bpfpatch.btf import Btf, BtfExt
from bpfpatch.elf.kconfig import KconfigExtern
from bpfpatch.program import JUMP_TABLES as PROGRAM_JUMP_TABLES, Program

R_BPF_64_64 = 1  # ld_imm64: map or global data
R_BPF_64_ABS64 = 2
R_BPF_64_ABS32 = 3
R_BPF_64_NODYLD32 = 4  # .BTF.ext insn_off fields
R_BPF_64_32 = 10  # call imm

GLOBAL_DATA_PREFIXES = (".data", ".rodata", ".bss")


@dataclass(frozen=True)
class Relocation:
    """One relocation of a program section, at an instruction slot."""

    slot: int
    type: int
    symbol: str
    symbol_index: int
    symbol_section: str
    symbol_value: int
    symbol_type: str


@dataclass(frozen=True)
class Symbol:
    """A function symbol of a program section, in slots."""

    name: str
    slot: int
    size_slots: int
    binding: str
    type: str


@dataclass(frozen=True)
class MapSpec:
    """What a map is: enough to create a fresh one."""

    name: str
    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int = 0
    initial: bytes | None = None  # value of key 0 (global data sections)
    inner: "MapSpec | None" = None  # a map of maps: the inner map its BTF declares


def _moved(idx_map: np.ndarray, slot: int, new_len: int) -> int:
    return int(idx_map[slot]) if slot < len(idx_map) else new_len


class Relocations(list):
    """The relocations of one program: each follows its instruction; a deleted one is dropped."""

    def remap(self, insn_map: np.ndarray, idx_map: np.ndarray | None, new_len: int) -> "Relocations":
        """The relocations at the new slots of their instructions."""
        return Relocations(dataclasses.replace(r, slot=int(insn_map[r.slot])) for r in self if insn_map[r.slot] >= 0)

    def pinned_slots(self) -> Iterable[int]:
        """Slots the loader patches by position."""
        return (r.slot for r in self)


class Symbols(list):
    """Function symbols: each starts where jumps to its old start land (`idx_map`)."""

    def remap(self, insn_map: np.ndarray, idx_map: np.ndarray | None, new_len: int) -> "Symbols":
        """The symbols at their new starts, sizes stretched or shrunk with their code."""
        if idx_map is None:
            return self
        return Symbols(
            dataclasses.replace(sym, slot=_moved(idx_map, sym.slot, new_len),
                                size_slots=_moved(idx_map, sym.slot + sym.size_slots, new_len) - _moved(idx_map, sym.slot, new_len))
            for sym in self
        )

    def pinned_slots(self) -> Iterable[int]:
        """None: a symbol marks a position, not an instruction's field."""
        return ()


class MapRefs(dict):
    """{slot of an ld_imm64: (map or data section name, value offset or None)} of a linked program."""

    def remap(self, insn_map: np.ndarray, idx_map: np.ndarray | None, new_len: int) -> "MapRefs":
        """The references at the new slots of their loads."""
        return MapRefs({int(insn_map[s]): v for s, v in self.items() if insn_map[s] >= 0})

    def pinned_slots(self) -> Iterable[int]:
        """The map loads (the loader writes the map fd into them)."""
        return (int(s) for s in self)


@dataclass(frozen=True)
class JumpTable:
    """A jump table in ``.jumptables`` (LLVM 20+ for Linux 6.19's ``gotox``), used by one program section.

    libbpf loads each as a BPF_MAP_TYPE_INSN_ARRAY; its entries are byte
    offsets of instructions in the section that loads the table (``r1 = jt ll``).
    ``targets`` are those instructions' slots.
    """

    symbol: str
    offset: int  # of the table in .jumptables, bytes
    targets: tuple[int, ...]


class JumpTables(list):
    """The jump tables of one program: every entry lands where jumps to its instruction land (`idx_map`)."""

    def remap(self, insn_map: np.ndarray, idx_map: np.ndarray | None, new_len: int) -> "JumpTables":
        """The tables with their entries moved to the new slots of their targets."""
        if idx_map is None:
            return self
        return JumpTables(dataclasses.replace(t, targets=tuple(_moved(idx_map, s, new_len) for s in t.targets)) for t in self)

    def pinned_slots(self) -> Iterable[int]:
        """None: the table's load is pinned by its relocation, the targets only move."""
        return ()


#: ``Program.meta`` key of a program's `JumpTables` (defined with the program, which the passes read).
JUMP_TABLES = PROGRAM_JUMP_TABLES
JUMP_TABLE_SECTION = ".jumptables"


@dataclass
class ElfModel:
    """A parsed BPF object: one `Program` per executable section, plus what they refer to."""

    path: str
    data: bytes
    byteorder: str
    programs: dict[str, Program] = field(default_factory=dict)
    btf: Btf | None = None
    btf_ext: BtfExt | None = None
    maps: dict[str, dict[str, int]] = field(default_factory=dict)
    data_sections: dict[str, bytes] = field(default_factory=dict)
    license: str = ""
    #: Program sections read as bytes only (``read_object(..., opaque=True)``): section -> why they do not
    #: decode (e.g. a register past r10).  They are written back as they are; no pass can rewrite them.
    opaque: dict[str, str] = field(default_factory=dict)
    #: Undefined symbols declared ``__weak`` (an extern a loader may leave unresolved, as 0).
    weak_externs: frozenset[str] = frozenset()
    #: Global functions of hidden (or internal) visibility (``__hidden``, usdt.bpf.h's ``bpf_usdt_arg``): libbpf
    #: makes their BTF FUNC static, so the kernel verifies them with their callers' state.
    hidden_funcs: frozenset[str] = frozenset()
    #: ``__kconfig`` externs by name, where libbpf's ``.kconfig`` map holds them (`kconfig_externs`).
    kconfig: dict[str, KconfigExtern] = field(default_factory=dict)

    def sections(self) -> list[str]:
        """The program sections, in file order."""
        return list(self.programs)

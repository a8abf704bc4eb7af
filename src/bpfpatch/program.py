"""`Program`: instruction slots plus the metadata that must survive rewriting.

Positions are kernel positions: slot indices (an ld_imm64 takes two).  The
metadata carried by `PatchList.linearize` is:

* ``subprogs``   -- start slot of every subprogram (0 first), like the
  verifier's ``subprog_info[].start``;
* ``func_info``  -- BTF func_info records, one per subprogram;
* ``line_info``  -- BTF line_info records, sorted by ``insn_off``;
* ``aux``        -- one user object per slot (or ``None``), the analogue of
  the verifier's ``insn_aux_data``;
* ``meta``       -- what a reader attaches; values that are `SlotMetadata`
  (an ELF object's relocations, symbols, map references, CO-RE records)
  remap themselves, so this module knows nothing of ELF.

After `linearize`, ``idx_map`` maps every old slot to its new slot (deleted
slots map to the slot that took their place, like the kernel's remove).
"""

from __future__ import annotations

from typing import Any, Iterable, NamedTuple, Protocol, Sequence, runtime_checkable

import numpy as np

from bpfpatch.isa import (
    SLOT_DTYPE,
    Insn,
    branch_offsets,
    check_jump_targets,
    decode_slots,
    encode_slots,
    insn_starts,
    insns_to_slots,
    slots_to_insns,
    subprog_ref_mask,
    validate_slots,
)
from bpfpatch.isa import ByteOrder
from bpfpatch.isa.opcodes import MAX_USER_REG


class FuncInfo(NamedTuple):
    """A BTF func_info record: the subprogram starting at slot ``insn_off`` has type ``type_id``."""

    insn_off: int
    type_id: int


class LineInfo(NamedTuple):
    """A BTF line_info record: the slot ``insn_off`` begins source line ``line_num``.

    ``file_name_off`` and ``line_off`` are offsets into the BTF string section;
    ``line_col`` packs line number (high 22 bits) and column (low 10 bits).
    """

    insn_off: int
    file_name_off: int
    line_off: int
    line_col: int

    @property
    def line_num(self) -> int:
        """The source line (the upper 22 bits of ``line_col``)."""
        return self.line_col >> 10

    @property
    def col(self) -> int:
        """The source column (the low 10 bits of ``line_col``)."""
        return self.line_col & 0x3FF


@runtime_checkable
class SlotMetadata(Protocol):
    """Per-instruction metadata in ``Program.meta`` that follows its instructions through a rewrite.

    `linearize` calls ``remap`` with the maps of the layout (``insn_map``: old
    slot -> new slot of the instruction, -1 if deleted; ``idx_map``: where
    references to the old slot land); ``pinned_slots`` are the slots whose
    instruction a loader patches by position, which passes leave alone.
    """

    def remap(self, insn_map: np.ndarray, idx_map: np.ndarray | None, new_len: int) -> "SlotMetadata":
        """The same metadata at the new slots."""
        ...

    def pinned_slots(self) -> Iterable[int]:
        """Slots a loader patches by position."""
        ...


#: ``Program.meta`` key of the CO-RE relocation records (`bpfpatch.btf.CoreRelos`).
CORE_RELOS = "core_relos"
#: ``Program.meta`` key of the program's ``gotox`` jump tables (`bpfpatch.elf.model.JumpTables`: each
#: table's ``targets`` are the slots its entries point at).
JUMP_TABLES = "jump_tables"


class Program:
    """An eBPF program: slots (``SLOT_DTYPE``) and optional verifier-level metadata."""

    __slots__ = ("slots", "func_info", "line_info", "aux", "_subprogs", "external", "idx_map", "insn_map", "name", "meta")

    def __init__(
        self,
        slots: np.ndarray,
        *,
        func_info: Sequence[FuncInfo] | None = None,
        line_info: Sequence[LineInfo] | None = None,
        subprogs: Sequence[int] | None = None,
        aux: Sequence[Any] | None = None,
        external: Iterable[int] = (),
        name: str = "",
        meta: dict[str, Any] | None = None,
    ) -> None:
        if slots.dtype != SLOT_DTYPE:
            raise TypeError(f"slots must have dtype SLOT_DTYPE, not {slots.dtype}")
        self.slots = slots
        self.func_info = list(func_info) if func_info is not None else None
        self.line_info = list(line_info) if line_info is not None else None
        self.aux = list(aux) if aux is not None else None
        if self.aux is not None and len(self.aux) != len(slots):
            raise ValueError(f"aux has {len(self.aux)} entries for {len(slots)} slots")
        self._subprogs = list(subprogs) if subprogs is not None else None
        # Slots of calls/jumps whose target lies outside this program (resolved by
        # an ELF relocation, e.g. a call into `.text`): their offsets are left as is.
        self.external: frozenset[int] = frozenset(external)
        # After linearize: old slot -> new slot where jumps and line info to it land
        # (kernel semantics), and old slot -> new slot of the instruction itself (-1 if deleted).
        self.idx_map: np.ndarray | None = None
        self.insn_map: np.ndarray | None = None
        self.name = name
        # Free-form data a reader attaches (ELF section, relocations, BTF) and writers use.
        self.meta: dict[str, Any] = dict(meta) if meta else {}

    # --- construction -------------------------------------------------------------

    @classmethod
    def from_bytes(
        cls,
        raw: bytes | bytearray | memoryview,
        *,
        byteorder: ByteOrder = "little",
        validate: bool = True,
        max_reg: int = MAX_USER_REG,
        offset_base: int = 0,
        **metadata: Any,
    ) -> "Program":
        """Decode raw instruction bytes; raise `DecodeError` naming the bad instruction."""
        slots = decode_slots(raw, byteorder=byteorder)
        if validate:
            validate_slots(slots, max_reg=max_reg, offset_base=offset_base)
            check_jump_targets(slots, metadata.get("external", ()))
        return cls(slots, **metadata)

    @classmethod
    def from_insns(cls, insns: Iterable[Insn], *, validate: bool = True, **metadata: Any) -> "Program":
        """Build from logical instructions (jump offsets already in slots)."""
        slots = insns_to_slots(insns)
        if validate:
            validate_slots(slots, max_reg=11)
            check_jump_targets(slots, metadata.get("external", ()))
        return cls(slots, **metadata)

    # --- views --------------------------------------------------------------------

    def byte_view(self) -> memoryview:
        """The raw little-endian bytes, as `to_bytes` gives them, as a view of the slots (no copy;
        valid while the slots are not changed)."""
        return memoryview(np.ascontiguousarray(self.slots).view(np.uint8))

    def to_bytes(self, byteorder: ByteOrder = "little") -> bytes:
        """Raw instruction bytes, 8 per slot."""
        return encode_slots(self.slots, byteorder=byteorder)

    @property
    def insns(self) -> list[Insn]:
        """The logical instructions (an ld_imm64 is one `Insn`)."""
        return slots_to_insns(self.slots)

    def insn_slots(self) -> np.ndarray:
        """Slot index of every logical instruction, in order."""
        return np.flatnonzero(insn_starts(self.slots))

    def __len__(self) -> int:
        """Number of 8-byte slots (the kernel's ``prog->len``)."""
        return len(self.slots)

    @property
    def subprogs(self) -> list[int]:
        """Start slots of the subprograms, sorted, beginning with 0."""
        if self._subprogs is None:
            self._subprogs = compute_subprogs(self.slots, self.func_info, self.external)
        return self._subprogs

    @subprogs.setter
    def subprogs(self, value: Sequence[int]) -> None:
        self._subprogs = list(value)

    @property
    def core_relos(self) -> list:
        """The CO-RE relocation records (`bpfpatch.btf.CoreRelo`, at slots) an ELF reader found, or []."""
        return list(self.meta.get(CORE_RELOS) or ())

    def copy(self) -> "Program":
        """A program with its own copy of the slots; the metadata objects are shared, not copied."""
        p = Program(
            self.slots.copy(),
            func_info=self.func_info,
            line_info=self.line_info,
            subprogs=self._subprogs,
            aux=self.aux,
            external=self.external,
            name=self.name,
            meta=self.meta,
        )
        p.idx_map = self.idx_map
        p.insn_map = self.insn_map
        return p

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Program):
            return NotImplemented
        return (
            np.array_equal(self.slots, other.slots)
            and self.func_info == other.func_info
            and self.line_info == other.line_info
            and self.subprogs == other.subprogs
            and self.aux == other.aux
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        name = f" {self.name!r}" if self.name else ""
        return f"<Program{name} {len(self.slots)} slots, {len(self.subprogs)} subprogs>"


def compute_subprogs(
    slots: np.ndarray, func_info: Sequence[FuncInfo] | None = None, external: Iterable[int] = ()
) -> list[int]:
    """Subprogram starts as the verifier finds them: 0, pseudo call and pseudo func targets."""
    idx, rel = branch_offsets(slots, external)
    if len(idx):
        is_call = subprog_ref_mask(slots, idx)
        targets = set((idx[is_call] + rel[is_call] + 1).tolist())
    else:
        targets = set()
    targets.add(0)
    if func_info:
        targets.update(fi.insn_off for fi in func_info)
    return sorted(t for t in targets if 0 <= t < max(len(slots), 1))


def remap_meta(
    meta: dict[str, Any], insn_map: np.ndarray, idx_map: np.ndarray | None = None, new_len: int = 0
) -> dict[str, Any]:
    """Metadata keyed by slot moved with its instructions; the rest shared.

    Every value that is `SlotMetadata` (a reader's relocations, symbols, map
    references, CO-RE records) remaps itself; other values are shared as they are.
    """
    return {k: v.remap(insn_map, idx_map, new_len) if isinstance(v, SlotMetadata) else v for k, v in meta.items()}


def compose_maps(source: Program, result: Program) -> None:
    """Chain maps when `source` itself came out of a linearize.

    The result's ``idx_map`` / ``insn_map`` then map from the ORIGINAL program
    (what an ELF writer needs after several linearizes), not from `source`.
    """
    if source.idx_map is None or source.insn_map is None or result.idx_map is None or result.insn_map is None:
        return
    n = len(source.slots)
    new_len = len(result.slots)
    prev_idx = source.idx_map
    inside = prev_idx < n
    idx = np.full(len(prev_idx), new_len, dtype=np.int64)
    idx[inside] = result.idx_map[prev_idx[inside]]
    prev_insn = source.insn_map
    alive = prev_insn >= 0
    insn = np.full(len(prev_insn), -1, dtype=np.int64)
    insn[alive] = result.insn_map[prev_insn[alive]]
    result.idx_map, result.insn_map = idx, insn


def relocated_slots(program: Program) -> frozenset[int]:
    """Slots whose instruction a loader patches by position (`SlotMetadata.pinned_slots`).

    ELF relocations, map references and CO-RE records: passes must leave these
    instructions as they are (e.g. not blind a map load or a CO-RE field offset).
    """
    slots: set[int] = set()
    for v in program.meta.values():
        if isinstance(v, SlotMetadata):
            slots.update(int(s) for s in v.pinned_slots())
    return frozenset(slots)

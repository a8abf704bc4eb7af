"""Which maps a program may write, from the verifier's states: what `check` must compare after a run.

A map's contents change only where the program writes them: a store or an
atomic through a pointer into one of its values (``PTR_TO_MAP_VALUE``, whose
map the verifier tracks, as the kernel's ``reg->map_ptr``), or a call given the
map or a pointer into its values.  A map no path writes holds, after any run,
what it held before: comparing it after every input (katran's 134 MB
``ch_rings`` array takes 20 s to list) tells nothing.

    >>> analysis = analyze(program, "xdp", keep_states=True)
    >>> map_writes(analysis)                  # None: it cannot tell
    MapWrites(referenced=frozenset({'ch_rings', 'stats', ...}), written=frozenset({'stats', ...}))

The rule errs on the side of writing:

* every store and atomic (load-acquire included) through a map value or key
  writes that map;
* a call writes every map it is given, as the map or as a pointer into a value
  or key, except the arguments a helper only reads: the key of
  ``map_lookup_elem``, ``map_lookup_percpu_elem``, ``map_update_elem`` and
  ``map_delete_elem`` (and the map of the two lookups), the value of
  ``map_update_elem``, the map of ``redirect_map`` and the program array of
  ``tail_call``; kfuncs and subprogram calls read none;
* a store through memory whose map cannot be told (``PTR_TO_MEM``: a global
  function's pointer argument, dynptr data; ``PTR_TO_BUF``; an arena), or
  through a map value whose map is unknown, makes the answer None.

Only the instructions some path reaches write (the kernel replaces the others
with traps); the analysis must keep its states (``keep_states=True``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bpfpatch.analysis.facts import RegType
from bpfpatch.isa import InsnClass, Mode
from bpfpatch.isa.helper_ids import HELPER_IDS

#: Helper id -> the argument registers it only reads (keys, values, the map of a lookup).
READ_ONLY_ARGS: dict[int, frozenset[int]] = {
    HELPER_IDS["map_lookup_elem"]: frozenset({1, 2}),
    HELPER_IDS["map_lookup_percpu_elem"]: frozenset({1, 2}),
    HELPER_IDS["map_update_elem"]: frozenset({2, 3}),
    HELPER_IDS["map_delete_elem"]: frozenset({2}),
    HELPER_IDS["redirect_map"]: frozenset({1}),
    HELPER_IDS["tail_call"]: frozenset({2}),
}
#: Kinds of registers that name a map (`Reg.map`).
MAP_KINDS = frozenset({RegType.CONST_PTR_TO_MAP, RegType.PTR_TO_MAP_VALUE, RegType.PTR_TO_MAP_VALUE_OR_NULL,
                       RegType.PTR_TO_MAP_KEY})
#: Memory a store may reach without the verifier knowing the map behind it.
UNTRACKED_MEMORY = frozenset({RegType.PTR_TO_MEM, RegType.PTR_TO_MEM_OR_NULL, RegType.PTR_TO_BUF,
                              RegType.PTR_TO_BUF_OR_NULL, RegType.PTR_TO_ARENA})
_STORE_KINDS = frozenset({RegType.PTR_TO_MAP_VALUE, RegType.PTR_TO_MAP_KEY})


@dataclass(frozen=True)
class MapWrites:
    """The maps (by name) the program's instructions refer to, and those some path may write.

    ``inner_written`` are the shapes (map type, key size, value size) of the inner maps of map-in-maps
    that some path may write: an inner map has no name of its own and may be any map of its shape (an
    outer map's initial values can name the object's own maps), so every referenced map of one of those
    shapes counts as written."""

    referenced: frozenset[str]
    written: frozenset[str]
    shapes: dict[str, tuple[int | None, int | None, int | None]]
    inner_written: frozenset[tuple[int | None, int | None, int | None]] = frozenset()

    def unwritten(self) -> frozenset[str]:
        """Referenced maps no path writes: their contents after a run are their contents before it."""
        return frozenset(n for n in self.referenced - self.written if self.shapes.get(n) not in self.inner_written)


def _shape(m: Any) -> tuple[int | None, int | None, int | None]:
    return (m.map_type, m.key_size, m.value_size)


def map_writes(analysis: Any) -> MapWrites | None:
    """`MapWrites` of an `Analysis` made with ``keep_states=True``; None where some write's map cannot be told."""
    insns = analysis.program.insns
    referenced: set[str] = set()
    written: set[str] = set()
    shapes: dict[str, tuple[int | None, int | None, int | None]] = {}
    inner: set[tuple[int | None, int | None, int | None]] = set()

    def write(reg: Any) -> bool:
        """Count `reg`'s map as written; False where it cannot be told which map that is."""
        m = reg.map
        if m is None:
            return False
        if m.name:
            written.add(m.name)
        elif m.index == -1:  # an inner map's template (a lookup in a map-in-map)
            inner.add(_shape(m))
        else:
            return False
        return True

    slot = 0
    for insn in insns:
        aux = analysis.aux[slot]
        here, slot = slot, slot + insn.nslots
        if aux is not None and aux.map is not None and aux.map.name and insn.code == 0x18:
            referenced.add(aux.map.name)
            shapes[aux.map.name] = _shape(aux.map)
        if aux is None or not aux.seen:
            continue
        states = aux.states
        if not states:
            raise ValueError(f"instruction {here} was reached but has no states: analyze with keep_states=True")
        cls, mode = insn.code & 0x07, insn.code & 0xE0
        if cls in (InsnClass.ST, InsnClass.STX) and mode in (Mode.MEM, Mode.ATOMIC):
            for st in states:
                base = st.frames[-1].regs[insn.dst]
                if base.type in UNTRACKED_MEMORY:
                    return None
                if base.type in _STORE_KINDS and not write(base):
                    return None
        elif insn.code == 0x85:  # a call: helper (src 0), subprogram (1) or kfunc (2)
            read_only = READ_ONLY_ARGS.get(insn.imm, frozenset()) if insn.src == 0 else frozenset()
            for st in states:
                regs = st.frames[-1].regs
                for r in range(1, 6):
                    reg = regs[r]
                    if reg.type in MAP_KINDS and r not in read_only and not write(reg):
                        return None
    return MapWrites(frozenset(referenced), frozenset(written), shapes, frozenset(inner))


__all__ = ["MAP_KINDS", "MapWrites", "READ_ONLY_ARGS", "UNTRACKED_MEMORY", "map_writes"]

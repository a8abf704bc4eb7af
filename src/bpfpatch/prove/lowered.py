"""Reading the kernel's view of a program: the ``kernel`` pass's output (or xlated) as the program it lowers.

The ``kernel`` pass replaces instructions by the kernel's internal sequences:
context accesses by loads and stores of ``struct sk_buff`` / ``xdp_buff`` /
... members (``convert_ctx_accesses``, sometimes several instructions with
jumps), LD_ABS by calls to kernel functions, ``bpf_jiffies64`` and
``bpf_get_smp_processor_id`` by inlined loads, a lookup in an array or hash map by its
``map_gen_lookup`` sequence, plus the unclone prologue.
None of those kernel structures is part of the model.  Instead, a sequence in
the rewritten program that *is* the lowering of an access or call means that
access or call: `find_lowerings` asks the pass's own functions
(`bpfpatch.passes.kernel.lower_ctx_access`, `gen_ld_abs`, `inline_helper`,
`bpfpatch.passes.kernel_maps.gen_lookup`, `bpfpatch.passes.kernel_ctx.prologue`) what each
candidate lowers to and finds those instruction sequences in the rewritten
program, so the model of a sequence comes from the one table the pass uses.
The candidates are the original program's memory accesses and LD_ABS
instructions, the helpers that get inlined, and the maps the programs
reference (array, per-CPU array, hash, per-CPU hash and LRU hash: the model's
lookup is the same for all; maps of maps are not modelled).

A sequence is read as one step only when no jump lands strictly inside it and,
when it runs, its base register holds the context (or r1 the map of the
lookup); its scratch registers (AX, the lowering's temporaries) are unknown
afterwards.  Whatever does not match (a mutated offset, a lowering the pass
added and this module does not know) runs instruction by instruction, and a
context access at a kernel offset then reads bytes of its own (``kctx_O``),
unrelated to any field: such a program is not proved equivalent.

Assumption: the socket buffer is not cloned (as in ``BPF_PROG_TEST_RUN``), so
the unclone prologue does nothing.
"""

from __future__ import annotations

from typing import NamedTuple

from bpfpatch.errors import BpfPatchError
from bpfpatch.isa import KIND_OF, Insn, Kind
from bpfpatch.isa.opcodes import AX_REG, CLASS_MASK, MODE_MASK, InsnClass, Mode
from bpfpatch.program import Program
from bpfpatch.progtype import ProgType

#: Helpers `inline_helper` inlines.
INLINED_HELPERS = (118, 8)  # bpf_jiffies64, bpf_get_smp_processor_id
BPF_FUNC_map_lookup_elem = 1
#: Map types whose inlined lookup is read as the helper call: hash, array, percpu hash, percpu array, LRU hash.
LOOKUP_MAP_TYPES = frozenset({1, 2, 5, 6, 9})


class Lowering(NamedTuple):
    """A sequence of the rewritten program read as one instruction of the program it lowers.

    `what` is "access" (`insn` is the context access), "ld_abs" (`insn`), "helper"
    (`helper` is the call), "lookup" (a lookup in map `map_name`, or in whichever of the maps
    ``a|b`` names r1 holds) or
    "prologue"; `base` the register that must hold the context (or the map); `end` the
    slot after the sequence; `ambiguous` says why the sequence cannot be read (two
    candidates lower to it with different meanings), else "".
    """

    what: str
    start: int
    end: int
    insn: Insn | None = None
    base: int | None = None
    helper: int = 0
    map_name: str = ""
    clobbers: tuple = (AX_REG,)
    ambiguous: str = ""


def _slots(program: Program) -> tuple[dict[int, Insn], list[int]]:
    insns, order = {}, []
    slot = 0
    for insn in program.insns:
        insns[slot] = insn
        order.append(slot)
        slot += insn.nslots
    return insns, order


def _access_kind(insn: Insn) -> str | None:
    cls, mode = insn.code & CLASS_MASK, insn.code & MODE_MASK
    if cls == InsnClass.LDX and mode in (Mode.MEM, Mode.MEMSX):
        return "read"
    if cls in (InsnClass.STX, InsnClass.ST) and mode == Mode.MEM:
        return "write"
    return None


def _candidates(original: Program, ptype: ProgType, maps) -> list[tuple[list[Insn], Lowering]]:
    """(lowered sequence, its meaning) of every access, LD_ABS, inlined helper and map lookup that may occur."""
    from bpfpatch.analysis.facts import MapRef
    from bpfpatch.passes.kernel import gen_ld_abs, lower_ctx_access
    from bpfpatch.passes.kernel_ctx import READ, WRITE
    from bpfpatch.passes.kernel_maps import gen_lookup

    out: list[tuple[list[Insn], Lowering]] = []
    seen: set = set()
    from bpfpatch.prove.model import KERNEL_MEMORY_TYPES

    for insn in original.insns:
        kind = _access_kind(insn)
        if kind is not None and ptype in KERNEL_MEMORY_TYPES:
            continue  # no convert_ctx_access: the kernel leaves a tracing program's context loads as they are
        if kind is not None:
            for field_size in _field_sizes(insn, ptype):
                for tstamp in (False, True):
                    try:
                        seq = lower_ctx_access(ptype, READ if kind == "read" else WRITE, insn, field_size, tstamp)
                    except BpfPatchError:
                        continue
                    key = (tuple(seq), insn)
                    if key in seen:
                        continue
                    seen.add(key)
                    # The lowerings write only the access's destination and AX (a temporary they take,
                    # r9/r8/r7, is saved in the context and restored).
                    out.append((seq, Lowering("access", 0, 0, insn, _base(insn))))
        elif KIND_OF[insn.code] in (Kind.LD_ABS, Kind.LD_IND):
            seq = gen_ld_abs(insn)
            if (tuple(seq), insn) not in seen:
                seen.add((tuple(seq), insn))
                out.append((seq, Lowering("ld_abs", 0, 0, insn, 6)))
    for m in sorted(maps, key=lambda m: m.name):
        if m.map_type not in LOOKUP_MAP_TYPES:
            continue
        seq = gen_lookup(MapRef(0, m.name, map_type=m.map_type, key_size=m.key_size, value_size=m.value_size,
                                max_entries=m.max_entries))
        if seq:
            out.append((seq, Lowering("lookup", 0, 0, base=1, helper=BPF_FUNC_map_lookup_elem, map_name=m.name)))
    return out


def find_lowerings(rewritten: Program, original: Program, ptype: ProgType, maps=()) -> dict[int, Lowering]:
    """slot -> the lowering that starts there, for every sequence of `rewritten` that lowers something.

    `maps` are the programs' maps (`bpfpatch.prove.model.MapInfo`: name, map_type, sizes).
    """
    from bpfpatch.passes.kernel import inline_helper
    from bpfpatch.passes.kernel_ctx import PROLOGUE_TYPES, prologue

    insns, order = _slots(rewritten)
    index = {s: i for i, s in enumerate(order)}
    jumps = []  # (from, to)
    for s, insn in insns.items():
        off = insn.branch_offset
        if off is not None and (insn.is_jump or insn.is_pseudo_call or insn.is_pseudo_func):
            jumps.append((s, s + 1 + off))
    by_first: dict[Insn, list[tuple[list[Insn], Lowering]]] = {}
    for seq, low in _candidates(original, ptype, maps):
        by_first.setdefault(seq[0], []).append((seq, low))
    found: dict[int, Lowering] = {}

    def match(i: int, seq: list[Insn]) -> int | None:
        """The slot after `seq` if it occurs at instruction i with no jump from outside into its middle."""
        if i + len(seq) > len(order) or any(insns[order[i + k]] != x for k, x in enumerate(seq)):
            return None
        start = order[i]
        end = order[i + len(seq)] if i + len(seq) < len(order) else start + sum(x.nslots for x in seq)
        if any(start < t < end and not start <= f < end for f, t in jumps):
            return None
        return end

    i = 0
    while i < len(order):
        s = order[i]
        best: tuple[int, Lowering] | None = None
        meanings: dict[int, set] = {}
        for seq, low in by_first.get(insns[s], ()):
            end = match(i, seq)
            if end is None:
                continue
            meanings.setdefault(end, set()).add((low.what, low.insn, low.map_name))
            if best is None or end > best[0]:
                best = (end, low._replace(start=s, end=end))
        for helper in INLINED_HELPERS:
            seq = _inlined(insns[s], helper, inline_helper)
            if seq is not None and (end := match(i, seq)) is not None and (best is None or end > best[0]):
                best = (end, Lowering("helper", s, end, helper=helper, clobbers=()))
                meanings[end] = {("helper", helper)}
        if s == 0 and ptype in PROLOGUE_TYPES and len(order) > 10:
            seq = prologue(ptype, insns[order[10]])[:-1]
            if (end := match(0, seq)) is not None:
                best = (end, Lowering("prologue", 0, end, base=1, clobbers=(6,)))
                meanings[end] = {("prologue",)}
        if best is not None:
            end, low = best
            means = meanings[end]
            if len(means) > 1:
                valid = [m for m in means if m[0] != "access" or _valid_access(m[1], ptype)]
                if len(valid) == 1 and valid[0][0] == "access":
                    low = low._replace(insn=valid[0][1], base=_base(valid[0][1]))
                elif valid and all(m[0] == "lookup" for m in valid):
                    # maps whose lookups lower alike (two hash maps of one key size): a lookup in whichever
                    # of them r1 holds when it runs
                    low = low._replace(map_name="|".join(sorted(m[2] for m in valid)))
                elif len(valid) > 1:
                    what = "; ".join(sorted(str(m[1]) for m in valid))
                    low = low._replace(ambiguous=f"the sequence at slot {s} lowers {len(valid)} different instructions"
                                                 f" ({what}): the kernel sequence does not say which")
            found[s] = low
            i = index.get(end, len(order))
        else:
            i += 1
    return found


def _field_sizes(insn: Insn, ptype: ProgType) -> tuple[int, ...]:
    """The verifier's ctx_field_size for this access: the field's size in the prover's layout, else any."""
    from bpfpatch.isa.opcodes import SIZE_BYTES, SIZE_MASK, Size
    from bpfpatch.prove import layout as L

    f = L.field_at(L.user_layout(ptype), insn.off, SIZE_BYTES[Size(insn.code & SIZE_MASK)])
    if f is None:
        return (0, 2, 4, 8)
    return (0,) if f.name in L.POINTER_FIELDS else (f.size,)


def _base(insn: Insn) -> int:
    return insn.src if _access_kind(insn) == "read" else insn.dst


def _valid_access(insn: Insn, ptype: ProgType) -> bool:
    """The access is one the verifier allows on this type's context (by the prover's layout table, where it has one)."""
    from bpfpatch.isa.opcodes import SIZE_BYTES, SIZE_MASK, Size
    from bpfpatch.prove import layout as L

    layout = L.user_layout(ptype)
    if not layout:
        return True
    size = SIZE_BYTES[Size(insn.code & SIZE_MASK)]
    f = L.field_at(layout, insn.off, size)
    return f is not None and (f.name not in L.POINTER_FIELDS or (size == 4 and insn.off == f.offset))


def _inlined(first: Insn, helper: int, inline_helper) -> list[Insn] | None:
    """The inlined body of `helper` as it would start with `first` (its kernel address read from `first`)."""
    if KIND_OF[first.code] == Kind.LD_IMM64 and helper == 118:
        return inline_helper(helper, {"jiffies": first.imm})
    if KIND_OF[first.code] == Kind.ALU_K and helper == 8:
        return inline_helper(helper, {"cpu_number": first.imm & 0xFFFFFFFF})
    return None


__all__ = ["INLINED_HELPERS", "LOOKUP_MAP_TYPES", "Lowering", "find_lowerings"]

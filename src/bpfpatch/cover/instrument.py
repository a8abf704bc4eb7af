"""Instrument a BPF ELF object with one counter per basic block (and, optionally, per branch).

The counters live in a global-data section added to the object
(``.data.bpfcover``: ``u64 __bpfcover[n]``), so libbpf creates the map and
relocates the references.  A counted block starts with::

    rA = &__bpfcover[k]        ; ld_imm64, relocated against __bpfcover (imm = 8 * k)
    rB = 1
    lock *(u64 *)(rA + 0) += rB

(4 slots).  ``rA`` / ``rB`` are registers that liveness proves dead at the
block's start; where fewer than two are free, the missing ones are spilled to
stack slots below the subprogram's stack use and restored after the increment
(a block gets no counter when neither is possible; the map says so).  With
``edges=True`` every conditional jump also counts its fall-through edge, so
both outcomes of every branch are known (taken = block count - fall-through).

What each counter means (section, block, first original slot, source lines)
travels inside the object as JSON in a non-allocated ``.bpfcover`` section,
so a report can be made from the instrumented object and a counter dump alone.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bpfpatch.analysis.cfg import FlowGraph
from bpfpatch.elf.addmap import ObjectEditor
from bpfpatch.elf.dwarfline import dwarf_lines, inline_copies, slot_copies, slot_lines
from bpfpatch.elf.reader import ElfObject, read_object
from bpfpatch.elf.writer import build_object
from bpfpatch.errors import BpfPatchError
from bpfpatch.isa import Insn, Size
from bpfpatch.isa import build as b
from bpfpatch.patch import Node, PatchInsn, PatchList
from bpfpatch.program import Program

COUNTERS_SYMBOL = "__bpfcover"
COUNTERS_SECTION = ".data." + COUNTERS_SYMBOL
MAP_SECTION = ".bpfcover"


class CoverError(BpfPatchError):
    """An object that cannot be instrumented or reported on (names the section)."""


class _Mark:
    """The aux of an inserted counter load: which counter it addresses."""

    __slots__ = ("counter",)

    def __init__(self, counter: int) -> None:
        self.counter = counter


@dataclass
class Counter:
    """One counter: a block (kind "block") or a branch's fall-through edge (kind "fallthrough")."""

    index: int
    section: str
    kind: str
    block: int
    slot: int  # the original slot of the block's first instruction (or of the jump)
    lines: list[tuple[str, int]] = field(default_factory=list)  # (file, line) the block's instructions belong to
    function: str = ""
    # (file, line, copy): the inlined copy (DWARF) each line's instructions here belong to, -1 for own code
    copies: list[tuple[str, int, int]] = field(default_factory=list)


@dataclass
class CoverMap:
    """Every counter of an instrumented object, and what it needs to be read back."""

    counters: list[Counter] = field(default_factory=list)
    uninstrumented: list[tuple[str, int]] = field(default_factory=list)  # (section, block) without a counter
    sources: dict[str, dict[int, str]] = field(default_factory=dict)  # file -> line -> text (from BTF)
    functions: dict[str, tuple[str, int]] = field(default_factory=dict)  # name -> (file, first line)
    branches: list[dict] = field(default_factory=list)  # {file, line, block, section, counter, fallthrough}
    added_insns: int = 0
    original_insns: int = 0
    spills: int = 0
    # blocks dead to the verifier (no counter): {section, block, slot, lines: [[file, line]]}
    unreachable: list[dict] = field(default_factory=list)

    def to_json(self) -> str:
        """The map as JSON (what the ``.bpfcover`` section holds)."""
        d = asdict(self)
        d["sources"] = {f: {str(k): v for k, v in lines.items()} for f, lines in self.sources.items()}
        return json.dumps(d, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "CoverMap":
        """The inverse of `to_json`."""
        d = json.loads(text)
        m = cls(
            [Counter(**{**c, "lines": [tuple(x) for x in c["lines"]],
                        "copies": [tuple(x) for x in c.get("copies", [])]}) for c in d["counters"]],
            [tuple(x) for x in d["uninstrumented"]],
            {f: {int(k): v for k, v in lines.items()} for f, lines in d["sources"].items()},
            {k: tuple(v) for k, v in d["functions"].items()},
            d["branches"], d["added_insns"], d["original_insns"], d.get("spills", 0), d.get("unreachable", []),
        )
        return m


def _btf_line_table(obj: ElfObject, prog: Program) -> list[tuple[str, int] | None]:
    """Per original slot: the (file, line) BTF line info says (a record holds up to the next one)."""
    out: list[tuple[str, int] | None] = [None] * len(prog.slots)
    if not prog.line_info or obj.btf is None:
        return out
    recs = sorted(prog.line_info, key=lambda r: r.insn_off)
    for k, r in enumerate(recs):
        end = recs[k + 1].insn_off if k + 1 < len(recs) else len(prog.slots)
        # line 0: code the compiler made up (no source line); it belongs to no line
        where = (obj.btf.string(r.file_name_off), r.line_num) if r.line_num else None
        for s in range(r.insn_off, min(end, len(out))):
            out[s] = where
    return out


def _line_table(obj: ElfObject, section: str, prog: Program,
                dwarf: dict[str, list[tuple[int, str, int]]]) -> list[tuple[str, int] | None]:
    """Per original slot: the (file, line) it belongs to, None for code of no source line.

    From DWARF's line table where the object has one (exact: an instruction
    without a debug location is line 0 there), else from BTF line info,
    where such an instruction takes the preceding record's line.  DWARF's
    file names are spelled as BTF spells them (learned where both tables
    start a row at the same slot with the same line), so sources and line
    text keep their BTF keys.
    """
    btf = _btf_line_table(obj, prog)
    rows = dwarf.get(section)
    if not rows:
        return btf
    exact = slot_lines(rows, len(prog.slots))
    votes: dict[str, dict[str, int]] = {}
    starts = {r.insn_off for r in prog.line_info or ()}
    for s, where in enumerate(exact):
        if where is not None and btf[s] is not None and s in starts and btf[s][1] == where[1]:
            v = votes.setdefault(where[0], {})
            v[btf[s][0]] = v.get(btf[s][0], 0) + 1
    spell = {d: max(v, key=lambda k: v[k]) for d, v in votes.items()}
    return [None if w is None else (spell.get(w[0], w[0]), w[1]) for w in exact]


def _sources(obj: ElfObject, prog: Program, lines: list[tuple[str, int] | None],
             into: dict[str, dict[int, str]]) -> None:
    """Every line the table names (text from BTF line info where it carries some, else "")."""
    text: dict[tuple[str, int], str] = {}
    if obj.btf is not None:
        for r in prog.line_info or ():
            if r.line_num:
                text.setdefault((obj.btf.string(r.file_name_off), r.line_num), obj.btf.string(r.line_off))
    for where in lines:
        if where is not None:
            got = into.setdefault(where[0], {})
            if not got.get(where[1]):
                got[where[1]] = text.get(where, "")


def _functions(obj: ElfObject, prog: Program) -> dict[int, str]:
    """Original slot -> function name, from func_info (else the section's function symbols)."""
    out: dict[int, str] = {}
    if prog.func_info and obj.btf is not None:
        for f in prog.func_info:
            out[f.insn_off] = obj.btf.name_of_func(f.type_id)
    for sym in prog.meta.get("symbols", ()):
        if sym.type == "STT_FUNC":
            out.setdefault(sym.slot, sym.name)
    return out


def _counter_code(counter: int, regs: list[int], slots: list[int]) -> list[Insn | PatchInsn]:
    """The increment of one counter with registers `regs` (2), spilling those listed by stack slot."""
    a, c = regs
    body: list[Insn | PatchInsn] = [
        PatchInsn(b.ld_imm64(a, 8 * counter), aux=_Mark(counter)),
        b.mov64_imm(c, 1),
        b.atomic_add(Size.DW, a, c, 0),
    ]
    if not slots:
        return body
    spilled = list(zip((a, c)[2 - len(slots):], slots))
    save = [b.stx_mem(Size.DW, 10, r, off) for r, off in spilled]
    restore = [b.ldx_mem(Size.DW, r, 10, off) for r, off in spilled]
    return save + body + restore


def _place(g: FlowGraph, node: Node, subprog: int, spill_slots: dict[int, list[int]],
           taken: frozenset[int] = frozenset()) -> tuple[list[int], list[int]] | None:
    """(registers, stack slots to spill them to) for a 4-slot counter before `node`, or None."""
    free = g.free_registers(node, 2, exclude=taken)
    if len(free) == 2:
        return free, []
    need = 2 - len(free)
    slots = spill_slots.setdefault(subprog, g.free_stack_slots(subprog, 2))
    if len(slots) < need:
        return None
    # spill the callee-saved registers the node does not name (r9, r8, ...), not r10
    insn = node.insn
    pick = [r for r in (9, 8, 7, 6) if r not in free and r not in (insn.dst, insn.src) and r not in taken][:need]
    if len(pick) < need:
        return None
    return free + pick, slots[:need]


@dataclass
class _Sub:
    """How one subprogram's counters are reached: a base register set at its entry, or not."""

    base_reg: int | None = None  # holds &counters[base] for the whole subprogram
    one_reg: int | None = None  # holds 1 for the whole subprogram
    base: int = 0  # counter index the base register (or slot) points at
    set_up: bool = False
    base_slot: int | None = None  # else: a stack slot (offset from r10) holding &counters[base]
    setup_reg: int | None = None  # the register that stores it there at the entry

    @property
    def taken(self) -> frozenset[int]:
        return frozenset(r for r in (self.base_reg, self.one_reg) if r is not None)


_MAX_OFF = 32767


def _increment(g: FlowGraph, node: Node, k: int, sub: _Sub, subprog: int, spill_slots: dict[int, list[int]],
               cmap: CoverMap) -> list[Insn | PatchInsn] | None:
    """The cheapest increment of counter `k` before `node`: 1 slot with base and one registers, 2 with a
    base register, 3 with the base in a stack slot and two dead registers, else 4 (plus spills); None
    when no register can be had."""
    off = 8 * (k - sub.base)
    if sub.base_slot is not None and sub.set_up and 0 <= off <= _MAX_OFF:
        free = g.free_registers(node, 2)
        if len(free) == 2:
            a, c = free
            return [b.ldx_mem(Size.DW, a, 10, sub.base_slot), b.mov64_imm(c, 1), b.atomic_add(Size.DW, a, c, off)]
    if sub.base_reg is not None and sub.set_up and 0 <= off <= _MAX_OFF:
        if sub.one_reg is not None:
            return [b.atomic_add(Size.DW, sub.base_reg, sub.one_reg, off)]
        free = g.free_registers(node, 1, exclude=sub.taken)
        if free:
            return [b.mov64_imm(free[0], 1), b.atomic_add(Size.DW, sub.base_reg, free[0], off)]
    where = _place(g, node, subprog, spill_slots, sub.taken)
    if where is None:
        return None
    cmap.spills += len(where[1])
    return _counter_code(k, *where)


TAIL_CALL = 12  # BPF_FUNC_tail_call: a call that, when it succeeds, never returns
_FRAME_LIMIT = 512  # MAX_BPF_STACK: the frames of one call chain together


def _may_grow_frames(g: FlowGraph) -> bool:
    """May a counter base go below every subprogram's frame? Not where the frames of a call chain could
    pass the kernel's 512 bytes (bounded by the sum of all frames), nor with tail calls beside bpf-to-bpf
    calls (the kernel then limits the caller frames to 256 bytes)."""
    n = len(g.subprog_starts)
    total = sum(g.stack_depth(k) + 8 for k in range(n))
    if total > _FRAME_LIMIT:
        return False
    return n == 1 or not any(_is_tail_call(i) for i in g.insns)


def _is_tail_call(insn: Insn) -> bool:
    return insn.code == 0x85 and insn.src == 0 and insn.imm == TAIL_CALL


def _pieces(nodes: list[Node]) -> list[list[Node]]:
    """A block cut after every tail call: what follows one runs only when it fails, so it counts apart."""
    out: list[list[Node]] = [[]]
    for n in nodes:
        out[-1].append(n)
        if _is_tail_call(n.insn):
            out.append([])
    return [p for p in out if p]


def seen_slots(obj: ElfObject, section: str, prog: Program, prog_type: str | None = None) -> list[bool] | None:
    """Per slot of `section`: does some verified path reach it (the verification layer's ``seen``)?

    Each entry function of the section is linked with its callees and
    analyzed as `prog_type` (default: the type the section name says); a
    function without facts (the analysis refuses it or does not model it)
    counts as reached everywhere.  None when no function has facts.
    """
    from bpfpatch.analysis.verifier import analyze
    from bpfpatch.progtype import UnknownProgType, prog_type_of

    try:
        ptype = prog_type_of(prog_type or section)
    except UnknownProgType:
        return None
    n = len(prog.slots)
    starts = sorted({sym.slot: sym.name for sym in prog.meta.get("symbols", ())
                     if sym.type == "STT_FUNC" and 0 <= sym.slot < n}.items())
    if not starts or starts[0][0] != 0:
        starts = [(0, "")] + starts
    out = [True] * n
    known = False
    code = prog.slots["code"].tolist()
    for k, (start, name) in enumerate(starts):
        end = starts[k + 1][0] if k + 1 < len(starts) else n
        try:
            linked = obj.linked_program(f"{section}:{name}" if name else section)
            if linked.slots["code"][:end - start].tolist() != code[start:end]:
                continue  # not laid out from this function's first slot: its facts would not line up
            seen = analyze(linked, ptype, keep_states=False).seen()
        except Exception:  # refused, not modelled, budget: no facts, every block counted
            continue
        out[start:end] = seen[:end - start]
        known = True
    return out if known else None


def instrument_program(obj: ElfObject, section: str, prog: Program, cmap: CoverMap, *, edges: bool = False,
                       base_registers: bool = True, dwarf: dict | None = None, copies: dict | None = None,
                       seen: list[bool] | None = None) -> Program:
    """One section's program with counters added; counters are appended to `cmap`.

    With `base_registers`, a subprogram that leaves a register unused keeps
    ``&counters[base]`` there from its entry on, so a counter costs 2 slots
    (``rB = 1; lock *(u64 *)(rA + off) += rB``), and 1 when a second unused
    register holds the 1; one that names every register keeps it in a
    stack slot below its frame instead (3 slots a counter).  A block is cut after every ``bpf_tail_call``:
    what follows runs only when the tail call fails, and gets its own
    counter.  `seen` (per slot, from `seen_slots`): blocks no verified path
    reaches get no counter; their lines are listed in ``cmap.unreachable``.
    `dwarf` (from `bpfpatch.elf.dwarfline.dwarf_lines`) gives exact lines,
    `copies` (`inline_copies`) which inlined copy each instruction is of.
    """
    pl = PatchList(prog)
    g = FlowGraph(pl)
    lines = _line_table(obj, section, prog, dwarf if dwarf is not None else dwarf_lines(obj.data))
    if copies is None:
        copies = inline_copies(obj.data)
    copy_of = slot_copies(copies.get(section, []), len(prog.slots))
    funcs = _functions(obj, prog)
    _sources(obj, prog, lines, cmap.sources)
    decl = _btf_line_table(obj, prog)
    for slot, name in funcs.items():
        where = decl[slot] if 0 <= slot < len(decl) and decl[slot] is not None else (
            lines[slot] if 0 <= slot < len(lines) else None)
        if where is not None and name:
            cmap.functions.setdefault(name, where)
    spill_slots: dict[int, list[int]] = {}
    sub_names = {}
    subs: dict[int, _Sub] = {}
    for k, start in enumerate(g.subprog_starts):
        o = g.nodes[start].orig_idx
        sub_names[k] = funcs.get(o, section if k == 0 else f"{section}+{o}")
        unused = g.unused_registers(k) if base_registers else []
        subs[k] = _Sub(unused[0] if unused else None, unused[1] if len(unused) > 1 else None)
    if base_registers and _may_grow_frames(g):
        for k, start in enumerate(g.subprog_starts):
            sub = subs[k]
            if sub.base_reg is not None:
                continue
            slots = g.free_stack_slots(k, 3)
            reg = g.free_registers(g.nodes[start], 1)
            if slots and reg:
                # no register to spare for the whole subprogram: &counters[base] lives in a stack slot
                # below its frame (3 slots a counter instead of 4); the other two slots stay for spills
                sub.base_slot, sub.setup_reg = slots[0], reg[0]
                spill_slots[k] = slots[1:]
    plan: list[tuple[Node, list[Insn | PatchInsn], bool]] = []  # (node, code, after the node)

    def lines_of(nodes: list[Node]) -> list[tuple[str, int]]:
        return sorted({lines[n.orig_idx] for n in nodes if 0 <= n.orig_idx < len(lines) and lines[n.orig_idx] is not None})

    def copies_of(nodes: list[Node]) -> list[tuple[str, int, int]]:
        return sorted({(*lines[n.orig_idx], copy_of[n.orig_idx]) for n in nodes
                       if 0 <= n.orig_idx < len(lines) and lines[n.orig_idx] is not None})

    for blk in g.blocks:
        sub = subs[blk.subprog]
        orig = [n.orig_idx for n in blk.nodes if 0 <= n.orig_idx]
        if seen is not None and orig and not any(seen[o] for o in orig if o < len(seen)):
            # dead to the verifier: the kernel removes it, so it needs no counter and no line of it can run
            cmap.unreachable.append({"section": section, "block": blk.index, "slot": blk.first.orig_idx,
                                     "lines": [list(x) for x in lines_of(blk.nodes)]})
            continue
        pieces = _pieces(blk.nodes)
        for p, nodes in enumerate(pieces):
            first = nodes[0]
            k = len(cmap.counters)
            if p == 0 and not sub.set_up and first == g.nodes[g.subprog_starts[blk.subprog]]:
                # at the subprogram's entry: the base register (and the 1), or the base slot, for all its blocks
                setup: list[Insn | PatchInsn] = []
                if sub.base_reg is not None:
                    setup = [PatchInsn(b.ld_imm64(sub.base_reg, 8 * k), aux=_Mark(k))]
                    if sub.one_reg is not None:
                        setup.append(b.mov64_imm(sub.one_reg, 1))
                elif sub.base_slot is not None and sub.setup_reg is not None:
                    setup = [PatchInsn(b.ld_imm64(sub.setup_reg, 8 * k), aux=_Mark(k)),
                             b.stx_mem(Size.DW, 10, sub.setup_reg, sub.base_slot)]
                if setup:
                    sub.base, sub.set_up = k, True
                    plan.append((first, setup, False))
            code = _increment(g, first, k, sub, blk.subprog, spill_slots, cmap)
            if code is None:
                cmap.uninstrumented.append((section, blk.index))
                continue
            cmap.counters.append(Counter(k, section, "block" if p == 0 else "after_tail_call", blk.index,
                                         first.orig_idx, [tuple(x) for x in lines_of(nodes)], sub_names[blk.subprog],
                                         copies_of(nodes)))
            plan.append((first, code, False))
        # the branch's own counter: the last piece's (after a tail call, the failed calls only)
        k = len(cmap.counters) - 1
        if not cmap.counters or cmap.counters[k].block != blk.index or cmap.counters[k].section != section:
            continue
        last = blk.last
        if edges and last.insn.is_jump and len(blk.succs) == 2 and not _unconditional(last.insn):
            fall = last.next
            if fall is None:
                continue
            e = len(cmap.counters)
            code = _increment(g, fall, e, sub, blk.subprog, spill_slots, cmap)
            if code is None:
                continue
            jline = lines[last.orig_idx] if 0 <= last.orig_idx < len(lines) else None
            cmap.counters.append(Counter(e, section, "fallthrough", blk.index, last.orig_idx,
                                         [tuple(jline)] if jline else [], sub_names[blk.subprog]))
            plan.append((last, code, True))
            if jline:
                cmap.branches.append({"file": jline[0], "line": jline[1], "section": section, "block": blk.index,
                                      "counter": k, "fallthrough": e})
    for node, code, after in plan:
        if after:
            pl.append(node, code)
        else:
            pl.prepend(node, code)
    new = pl.linearize()
    cmap.added_insns += len(new.slots) - len(prog.slots)
    cmap.original_insns += len(prog.slots)
    return new


def _unconditional(insn: Insn) -> bool:
    return insn.code in (0x05, 0x06) or insn.code == 0xE5


def counter_slots(prog: Program) -> list[int]:
    """Slots of the counter loads in an instrumented (linearized) program."""
    aux = prog.aux or []
    return [s for s, a in enumerate(aux) if isinstance(a, _Mark)]


def instrument_object(source: str | Path | bytes | ElfObject, *, edges: bool = False,
                      sections: list[str] | None = None, base_registers: bool = True, facts: bool = True,
                      prog_type: str | None = None) -> tuple[bytes, CoverMap]:
    """The object with counters in every basic block of every program section (or of `sections`).

    With `facts`, each section is analyzed (`seen_slots`, as `prog_type` or
    the type its name says): blocks no verified path reaches get no counter.
    """
    obj = source if isinstance(source, ElfObject) else read_object(source)
    if not obj.programs:
        raise CoverError("the object has no program sections")
    if COUNTERS_SECTION in _section_names(obj):
        raise CoverError(f"the object is already instrumented (it has {COUNTERS_SECTION})")
    chosen = list(obj.programs) if sections is None else sections
    for s in chosen:
        if s not in obj.programs:
            raise CoverError(f"no program section {s!r} (have: {', '.join(obj.programs)})")
    cmap = CoverMap()
    programs: dict[str, Program] = {}
    dwarf, copies = dwarf_lines(obj.data), inline_copies(obj.data)
    for sec in chosen:
        prog = obj.programs[sec]
        seen = seen_slots(obj, sec, prog, prog_type) if facts else None
        programs[sec] = instrument_program(obj, sec, prog, cmap, edges=edges, base_registers=base_registers,
                                           dwarf=dwarf, copies=copies, seen=seen)
    if not cmap.counters:
        raise CoverError("no block could be instrumented")
    data = build_object(obj, programs)
    ed = ObjectEditor(data)
    ed.add_data(COUNTERS_SYMBOL, 8 * len(cmap.counters))
    for sec, prog in programs.items():
        slots = counter_slots(prog)
        if slots:
            ed.add_relocations(sec, slots, COUNTERS_SYMBOL)
    ed.add_note(MAP_SECTION, cmap.to_json().encode())
    return ed.to_bytes(), cmap


def _section_names(obj: ElfObject) -> set[str]:
    import io

    from elftools.elf.elffile import ELFFile

    return {s.name for s in ELFFile(io.BytesIO(obj.data)).iter_sections()}


def read_cover_map(source: str | Path | bytes) -> CoverMap:
    """The counter map stored in an instrumented object."""
    import io

    from elftools.elf.elffile import ELFFile

    data = Path(source).read_bytes() if not isinstance(source, (bytes, bytearray)) else bytes(source)
    try:
        sec = ELFFile(io.BytesIO(data)).get_section_by_name(MAP_SECTION)
    except Exception as exc:
        raise CoverError(f"{source}: not an ELF object ({exc})") from exc
    if sec is None:
        raise CoverError(f"{source}: not instrumented by bpfpatch cover (no {MAP_SECTION} section)")
    return CoverMap.from_json(sec.data().decode())


__all__ = ["COUNTERS_SECTION", "COUNTERS_SYMBOL", "TAIL_CALL", "Counter", "CoverError", "CoverMap", "counter_slots",
           "instrument_object", "instrument_program", "read_cover_map", "seen_slots"]

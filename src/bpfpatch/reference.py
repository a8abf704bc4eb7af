"""The kernel's own patching semantics, one patch at a time (quadratic on purpose).

This is the oracle for tests and the baseline for benchmarks, never the fast
path.  It keeps a flat array of slots the way the verifier does and, for each
patch, re-scans every jump -- the algorithm of the kernel's
``bpf_patch_insn_data`` / ``bpf_adj_branches`` / ``adjust_insn_aux_data`` /
``adjust_subprog_starts`` / ``bpf_adj_linfo`` and, for deletion,
``verifier_remove_insns`` / ``adjust_subprog_starts_after_remove`` /
``bpf_adj_linfo_after_remove`` (written from their semantics, not their text).

Nodes are named by *keys* so a test can drive this and a `PatchList` with the
same operations: original instruction ``i`` has key ``i + 1``, and new nodes
get keys from a counter in the order a `PatchList` allocates its node ids.

Semantics beyond the kernel's (documented in `PatchList`):
``retarget=False`` moves whatever landed on the patched position (outside
jumps, line info, subprogram start) onto the node itself; `append` keeps the
node's aux data on the node.
"""

from __future__ import annotations

from typing import Any, Sequence

from bpfpatch.errors import PatchError
from bpfpatch.isa import LD_IMM64, Insn, insns_to_slots, slot_rows
from bpfpatch.isa.refs import TARGET_TABLE, Target, target_of
from bpfpatch.patch.buffer import PatchInsn
from bpfpatch.program import FuncInfo, LineInfo, Program


def _ref_field(code: int, src: int) -> str | None:
    """"off" / "imm": the field holding the instruction's target offset (None: it has none)."""
    return (None, "off", "imm")[target_of(code, src)]


class _Slot:
    """One mutable slot: fields, aux, and the key of the node it starts (None for ld_imm64 high halves)."""

    __slots__ = ("code", "dst", "src", "off", "imm", "aux", "key", "external")

    def __init__(self, code: int, dst: int, src: int, off: int, imm: int, aux: Any, key: int | None, external: bool = False):
        self.code, self.dst, self.src, self.off, self.imm = code, dst, src, off, imm
        self.aux, self.key, self.external = aux, key, external

    @property
    def field(self) -> str | None:
        if self.key is None or self.external:
            return None
        return _ref_field(self.code, self.src)

    def rel(self) -> int:
        return self.off if self.field == "off" else self.imm

    def set_rel(self, value: int) -> None:
        if self.field == "off":
            self.off = value
        else:
            self.imm = value


class ReferencePatcher:
    """Apply patches one at a time to a flat slot array, as the kernel does."""

    def __init__(self, program: Program) -> None:
        rows = slot_rows(program.slots)
        aux = program.aux if program.aux is not None else [None] * len(rows)
        self.slots: list[_Slot] = []
        key = 0
        second = False
        for i, row in enumerate(rows):
            if second:
                self.slots.append(_Slot(*row, aux[i], None))
                second = False
                continue
            key += 1
            self.slots.append(_Slot(*row, aux[i], key, i in program.external))
            second = row[0] == LD_IMM64
        self.next_key = key + 1
        self.subprogs: list[int] = list(program.subprogs)
        fi = {f.insn_off: f.type_id for f in program.func_info} if program.func_info is not None else None
        self.func_types: list[int] | None = [fi.get(st, 0) for st in self.subprogs] if fi is not None else None
        self.line_info: list[LineInfo] | None = list(program.line_info) if program.line_info is not None else None
        self.program = program

    # --- helpers --------------------------------------------------------------------

    def index_of(self, key: int) -> int:
        for i, s in enumerate(self.slots):
            if s.key == key:
                return i
        raise PatchError(f"no live node with key {key}")

    def _width(self, i: int) -> int:
        return 2 if self.slots[i].code == LD_IMM64 else 1

    def _buffer(self, items: Sequence[PatchInsn | Insn], keep_last: _Slot | None) -> tuple[list[_Slot], list[tuple[int, int]]]:
        """Slots for a patch buffer; and (slot index in buffer, target key) for explicit targets."""
        out: list[_Slot] = []
        explicit: list[tuple[int, int]] = []
        items = [it if isinstance(it, PatchInsn) else PatchInsn(it) for it in items]
        for n, it in enumerate(items):
            is_last = n == len(items) - 1
            if is_last and keep_last is not None:
                key, aux = keep_last.key, (it.aux if it.aux is not None else keep_last.aux)
            else:
                key, aux = self.next_key, it.aux
                self.next_key += 1
            first = len(out)
            for j, r in enumerate(slot_rows(insns_to_slots([it.insn]))):
                out.append(_Slot(*r, aux if j == 0 else None, key if j == 0 else None))
            if it.target is not None:
                explicit.append((first, it.target._id))
        return out, explicit

    def _patch(self, off: int, width: int, new: list[_Slot], explicit: list[tuple[int, int]], kept: int | None = None) -> None:
        """Replace slots [off, off+width) with `new`: the kernel's patch + branch adjustment.

        `kept` is the index in `new` of the original instruction when the patch
        keeps it (prepend/append): its own target reference is kept too, as if
        it were outside the patch.
        """
        delta = len(new) - width
        end_old = off + width
        # 1. Adjust every jump outside the patch (bpf_adj_branches): targets after the
        #    patched instruction move by delta; a target AT it stays, landing on the patch start.
        for i, s in enumerate(self.slots):
            if s.field is None or (off <= i < end_old and kept is None):
                continue
            t = i + s.rel() + 1
            ni = i if i < off else (off + kept if i < end_old else i + delta)
            nt = t if t <= off else t + delta
            s.set_rel(nt - ni - 1)
        self.slots[off:end_old] = new
        # 2. Explicit targets of the buffer, resolved against the new array.
        for bi, key in explicit:
            t = self.index_of(key)
            self.slots[off + bi].set_rel(t - (off + bi) - 1)
        # 3. Subprogram starts (adjust_subprog_starts) and line info (bpf_adj_linfo).
        if delta:
            self.subprogs = [st + delta if st > off else st for st in self.subprogs]
            if self.line_info is not None:
                self.line_info = [li._replace(insn_off=li.insn_off + delta) if li.insn_off > off else li for li in self.line_info]

    def _move_landing(self, off: int, to: int, end_patch: int, kept: int | None = None) -> None:
        """retarget=False: what landed on `off` (from outside the patch, or the kept insn) lands on `to`."""
        for i, s in enumerate(self.slots):
            if s.field is None or (off <= i < end_patch and i != kept):
                continue
            if i + s.rel() + 1 == off:
                s.set_rel(to - i - 1)
        self.subprogs = [to if st == off else st for st in self.subprogs]
        if self.line_info is not None:
            self.line_info = [li._replace(insn_off=to) if li.insn_off == off else li for li in self.line_info]

    # --- operations (mirror PatchList) -------------------------------------------------

    def replace(self, key: int, items: Sequence[PatchInsn | Insn], *, retarget: bool = True) -> None:
        off = self.index_of(key)
        width = self._width(off)
        new, explicit = self._buffer(items, keep_last=self.slots[off])
        self._patch(off, width, new, explicit)
        if not retarget:
            last = max(i for i, s in enumerate(new) if s.key is not None)
            if last:
                self._move_landing(off, off + last, off + len(new))

    def prepend(self, key: int, items: Sequence[PatchInsn | Insn], *, retarget: bool = True) -> None:
        off = self.index_of(key)
        width = self._width(off)
        x = self.slots[off : off + width]
        new, explicit = self._buffer(items, keep_last=None)
        self._patch(off, width, new + x, explicit, kept=len(new))
        if not retarget:
            self._move_landing(off, off + len(new), off + len(new) + width, kept=off + len(new))

    def append(self, key: int, items: Sequence[PatchInsn | Insn]) -> None:
        off = self.index_of(key)
        width = self._width(off)
        x = self.slots[off : off + width]
        new, explicit = self._buffer(items, keep_last=None)
        self._patch(off, width, x + new, [(bi + width, k) for bi, k in explicit], kept=0)

    def delete(self, key: int) -> None:
        off = self.index_of(key)
        cnt = self._width(off)
        # bpf_remove_insns: targets after the range move back; a target inside it lands on off.
        for i, s in enumerate(self.slots):
            if s.field is None or off <= i < off + cnt:
                continue
            t = i + s.rel() + 1
            ni = i if i < off else i - cnt
            nt = t if t <= off else (t - cnt if t >= off + cnt else off)
            s.set_rel(nt - ni - 1)
        del self.slots[off : off + cnt]
        self._subprogs_after_remove(off, cnt)
        self._linfo_after_remove(off, cnt)

    def _subprogs_after_remove(self, off: int, cnt: int) -> None:
        starts = self.subprogs + [len(self.slots) + cnt]  # the fake 'exit' subprog
        n = len(self.subprogs)
        i = next((k for k in range(n) if starts[k] >= off), n)
        j = next((k for k in range(i, n) if starts[k] >= off + cnt), n)
        if starts[j] != off + cnt:
            j -= 1
        if j > i:
            # Subprograms i..j-1 are gone entirely, with their func_info.
            del starts[i:j]
            if self.func_types is not None:
                del self.func_types[i:j]
        elif i < n and starts[i] == off:
            i += 1  # only the front of subprog i was removed: its start stays at off
        for k in range(i, len(starts)):
            starts[k] -= cnt
        self.subprogs = starts[:-1]

    def _linfo_after_remove(self, off: int, cnt: int) -> None:
        li = self.line_info
        if not li:
            return
        n = len(li)
        i = next((k for k in range(n) if li[k].insn_off >= off), n)
        l_off, l_cnt = i, 0
        while i < n and li[i].insn_off < off + cnt:
            l_cnt += 1
            i += 1
        # The first live instruction after the range inherits the last removed line
        # unless it has one of its own (and unless nothing follows the range).
        if len(self.slots) != off and l_cnt and (i == n or li[i].insn_off != off + cnt):
            l_cnt -= 1
            i -= 1
            li[i] = li[i]._replace(insn_off=off + cnt)
        if l_cnt:
            del li[l_off : l_off + l_cnt]
        for k in range(l_off, len(li)):
            li[k] = li[k]._replace(insn_off=li[k].insn_off - cnt)

    # --- result ---------------------------------------------------------------------

    def program_out(self) -> Program:
        rows = [(s.code, s.dst, s.src, s.off, s.imm) for s in self.slots]
        from bpfpatch.isa import slots_from_rows  # noqa: PLC0415

        slots = slots_from_rows(rows)
        func_info = None
        if self.func_types is not None:
            func_info = [FuncInfo(st, t) for st, t in zip(self.subprogs, self.func_types)]
        return Program(
            slots,
            subprogs=self.subprogs or [0],  # every subprogram start removed: the program still starts one
            func_info=func_info,
            line_info=self.line_info,
            aux=[s.aux for s in self.slots] if (self.program.aux is not None or any(s.aux is not None for s in self.slots)) else None,
            external=frozenset(i for i, s in enumerate(self.slots) if s.external),
        )


def patch_sites_one_at_a_time(program: Program, sites: Sequence[int], patch: Sequence[Insn]) -> Program:
    """The kernel's quadratic loop, array-based like its C: for each site, re-copy and re-scan.

    Each site (an original slot, single-slot instruction) is replaced by
    `patch` whose LAST item stands for the site's own instruction.  This is
    the benchmark baseline: per patch it copies the whole program
    (bpf_patch_insn_single) and re-adjusts every jump (bpf_adj_branches),
    with NumPy doing the inner loops the way C would.  Jumps only (no
    metadata), which is what the kernel's cost is made of.
    """
    import numpy as np

    slots = program.slots.copy()
    buf = insns_to_slots(patch[:-1])
    extra = len(buf)
    off_codes = TARGET_TABLE[:, 0] == Target.OFF  # jumps keep their target in off whatever their src
    shift = 0
    for site in sites:
        off = site + shift
        site_slot = slots[off : off + 1].copy()
        slots = np.concatenate([slots[:off], buf, site_slot, slots[off + 1 :]])
        # Re-scan every jump of the new program (the kernel's bpf_adj_branches).
        is_jump = off_codes[slots["code"]]
        is_jump[off : off + extra + 1] = False  # the patch's own jumps are local
        idx = np.flatnonzero(is_jump)
        cur = idx
        old_cur = np.where(cur < off, cur, cur - extra)
        tgt = old_cur + slots["off"][idx].astype(np.int64) + 1
        new_tgt = np.where(tgt <= off, tgt, tgt + extra)
        slots["off"][idx] = new_tgt - cur - 1
        shift += extra
    return Program(slots)

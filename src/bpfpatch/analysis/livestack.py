"""Live stack slots as the 6.18 verifier computes them while it walks (kernel/bpf/liveness.c, from Eduard
Zingerman's 2025 series replacing the path-sensitive read marks by this path-insensitive analysis).

The kernel records, per *function instance* (a call chain: the call sites leading to a subprogram
plus its start) and per instruction, the stack slots (8-byte ``spi`` bits, per frame of the chain)
the walk saw the instruction read (``may_read``, a union over visits) and write whole
(``must_write``, an intersection over visits; an instruction that may write the stack and did not
on some visit writes nothing).  At the end of each path and at each subprogram exit, an instance
whose marks changed is solved again, a backward data flow over the subprogram's instructions::

    live_before[i] = (U live_before[s] for s in successors(i)) - must_write[i]  |  may_read[i]
    must_write_acc[i] = (n must_write_acc[s] for s in successors(i))  |  must_write[i]

and what a callee instance finds at its entry for the caller's frames (slots it may read, slots it
surely writes) becomes the call instruction's marks in the caller's instance.  A finished
checkpoint is *cleaned* once, when it is first compared: the slots not live there (in its own
frame after the instruction, in a caller's after its call) are forgotten, so they no longer keep
states apart.  An exit has no successors and is never solved (nothing is live before it).

A solve gives what sweeping the whole subprogram backwards until nothing changes gives, but it
evaluates only the instructions whose inputs changed (their own marks since the last solve, or a
successor's result): an instruction whose inputs are as at its last evaluation would compute the
same again.  Each sweep takes its instructions in the same descending order as a whole sweep.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from heapq import heapify, heappop, heappush
from types import MappingProxyType
from typing import Any

U64 = (1 << 64) - 1


#: An instance's frames while it has no marks (one for all: most subprograms of a call-heavy program read and
#: write no stack).
_NO_FRAMES = MappingProxyType({})
#: An instance's changed instructions while there are none (one for all: a subprogram's set costs 216 bytes).
_NO_DIRTY: frozenset[int] = frozenset()


class Successors:
    """Where control goes next from each instruction within its subprogram (``bpf_insn_successors``), as two
    int32 columns: ``fall``, the next instruction on the straight path (i + 1, an ld_imm64's i + 2), and
    ``jump``, a jump's target; -1 where there is none.  8 bytes an instruction (a tuple each cost 60-85)."""

    __slots__ = ("fall", "jump")

    def __init__(self, fall: array, jump: array) -> None:
        self.fall, self.jump = fall, jump

    @classmethod
    def of(cls, lists: Sequence[Sequence[int]]) -> "Successors":
        """From one sequence of at most two successors per instruction (the first is taken as ``fall``)."""
        fall, jump = array("i", [-1]) * len(lists), array("i", [-1]) * len(lists)
        for i, ss in enumerate(lists):
            if len(ss) > 0:
                fall[i] = ss[0]
            if len(ss) > 1:
                jump[i] = ss[1]
        return cls(fall, jump)

    def __len__(self) -> int:
        return len(self.fall)

    def __getitem__(self, i: int) -> tuple[int, ...]:
        f, t = self.fall[i], self.jump[i]
        return (f, t) if f >= 0 and t >= 0 else (f,) if f >= 0 else (t,) if t >= 0 else ()


def _dirty(inst: "_Instance", j: int) -> None:
    d = inst.dirty
    if d is _NO_DIRTY:
        d = inst.dirty = set()
    d.add(j)


class _Instance:
    """``func_instance``: per frame of the chain, four masks per instruction of one subprogram."""

    __slots__ = ("chain", "start", "end", "frames", "written", "updated", "dropped", "dirty")

    def __init__(self, chain: tuple[int, ...], start: int, end: int) -> None:
        self.chain = chain
        self.start, self.end = start, end
        # frame -> [may_read, must_write, must_write_acc, live_before], each a list over start..end
        self.frames: "dict[int, list[list[int]]] | MappingProxyType" = _NO_FRAMES  # a dict from the first marks
        self.written = bytearray(end - start)  # must_write_set
        self.updated = False
        self.dropped = False
        # instructions (relative) whose own marks changed since the last solve (a set made at the first)
        self.dirty: "set[int] | frozenset[int]" = _NO_DIRTY

    def masks(self, frame: int) -> list[list[int]]:
        m = self.frames.get(frame)
        if m is None:
            n = self.end - self.start
            if self.frames is _NO_FRAMES:
                self.frames = {}
            m = self.frames[frame] = [[0] * n, [0] * n, [0] * n, [0] * n]
        return m

    def live_before(self, frame: int, idx: int) -> int:
        m = self.frames.get(frame)
        if m is None or not self.start <= idx < self.end:
            return 0
        return m[3][idx - self.start]


class LiveStack:
    """The live stack analysis of one walk (``bpf_liveness``)."""

    def __init__(self, n: int, subprog_starts: Sequence[int], successors: Successors) -> None:
        self.succ = successors
        self.n = n
        self.pred_at: array | None = None  # predecessors, compressed: pred[pred_at[i]:pred_at[i + 1]] (made at a solve)
        self.pred: array | None = None
        self.starts = array("i", sorted(set(subprog_starts) | {0}))  # the subprograms' first instructions
        self.instances: dict[tuple[int, ...], _Instance] = {}
        self.write_acc: dict[int, int] = {}
        self.write_idx = -1
        self.callback_sites: set[int] = set()  # calls that call a callback: what it reads is live at the call

    # --- instances -------------------------------------------------------------------------

    @staticmethod
    def chain_of(frames: Sequence[Any], frame: int) -> tuple[int, ...]:
        """``compute_callchain``: the call sites of the frames above `frame`, then `frame`'s subprogram start."""
        if frame == 0:
            return (frames[0].subprog,)
        return (*[frames[i + 1].callsite for i in range(frame)], frames[frame].subprog)

    def instance(self, chain: tuple[int, ...]) -> _Instance:
        inst = self.instances.get(chain)
        if inst is None:
            start = chain[-1]
            inst = self.instances[chain] = _Instance(chain, start, self._end_of(start))
        return inst

    # --- marks -----------------------------------------------------------------------------

    def read(self, frames: Sequence[Any], idx: int, frame: int, mask: int) -> None:
        """``bpf_mark_stack_read``: at `idx`, the walk read slots `mask` of frame `frame`."""
        inst = self.instance(self.chain_of(frames, len(frames) - 1))
        self._read(inst, frame, idx, mask)

    @staticmethod
    def _read(inst: _Instance, frame: int, idx: int, mask: int) -> None:
        m = inst.masks(frame)
        j = idx - inst.start
        new = m[0][j] | mask
        if new != m[0][j]:
            _dirty(inst, j)
            if (new | m[3][j]) != m[3][j]:
                inst.updated = True
        m[0][j] = new

    def begin(self, idx: int) -> None:
        """``bpf_reset_stack_write_marks``: an instruction that may write the stack starts."""
        self.write_idx = idx
        self.write_acc = {}

    def write(self, frame: int, mask: int) -> None:
        """``bpf_mark_stack_write``: the instruction wrote slots `mask` of frame `frame` whole."""
        self.write_acc[frame] = self.write_acc.get(frame, 0) | mask

    def commit(self, frames: Sequence[Any]) -> None:
        """``bpf_commit_stack_write_marks``: the instruction's writes join what other visits wrote."""
        self._commit(self.instance(self.chain_of(frames, len(frames) - 1)))

    def _commit(self, inst: _Instance) -> None:
        idx = self.write_idx
        if idx < 0:
            return
        j = idx - inst.start
        for frame in range(len(inst.chain)):
            mask = self.write_acc.get(frame, 0)
            if mask == 0 and not inst.written[j]:
                continue
            m = inst.masks(frame)
            old = m[1][j]
            if inst.written[j]:
                mask &= old
            if old != mask:
                m[1][j] = mask
                inst.updated = True
                _dirty(inst, j)
            if old & ~mask:
                inst.dropped = True
        inst.written[j] = 1
        self.write_idx = -1

    # --- solving ---------------------------------------------------------------------------

    def update(self, frames: Sequence[Any]) -> None:
        """``bpf_update_live_stack``: solve the instances of a state's call chain whose marks changed, callee first."""
        for frame in range(len(frames) - 1, -1, -1):
            inst = self.instances.get(self.chain_of(frames, frame))  # none yet: no marks, nothing to solve
            if inst is not None and inst.updated:
                self._solve(inst)
                inst.updated = inst.dropped = False

    def _predecessors(self) -> tuple[array, array]:
        """The flow graph's predecessor lists as two int32 columns (offsets, sources): 8 bytes an edge and an
        instruction, where lists would cost a hundred."""
        if self.pred is None:
            n = self.n
            at = array("i", bytes(4 * (n + 1)))
            columns = (self.succ.fall, self.succ.jump)
            for col in columns:
                for t in col:
                    if 0 <= t < n:
                        at[t + 1] += 1
            for i in range(n):
                at[i + 1] += at[i]
            pos = array("i", at)
            pred = array("i", bytes(4 * at[n]))
            for i in range(n):  # by source, the fall-through before the jump (the old lists' order)
                for col in columns:
                    t = col[i]
                    if 0 <= t < n:
                        pred[pos[t]] = i
                        pos[t] += 1
            self.pred_at, self.pred = at, pred
        return self.pred_at, self.pred

    def _solve(self, inst: _Instance) -> None:
        start, end = inst.start, inst.end
        if inst.dropped:
            for m in inst.frames.values():
                m[2] = [0] * (end - start)
        if inst.dropped or len(inst.dirty) * 8 > end - start:
            self._sweep(inst)  # every accumulated write forgotten, or much changed: whole sweeps are cheaper
        else:
            self._worklist(inst)
        inst.dirty = _NO_DIRTY
        if len(inst.chain) > 1:
            self._to_caller(inst)

    def _sweep(self, inst: _Instance) -> None:
        """Sweep the instance's instructions backwards until nothing changes."""
        start, end = inst.start, inst.end
        fall, jump = self.succ.fall, self.succ.jump
        for m in inst.frames.values():
            may_read, must_write, acc, live = m
            changed = True
            while changed:
                changed = False
                for i in range(end - 1, start - 1, -1):
                    f, t = fall[i], jump[i]
                    if f < 0 and t < 0:
                        continue
                    j = i - start
                    after = 0
                    wacc = U64
                    for s in (f, t):
                        if s < 0:
                            continue
                        if start <= s < end:
                            after |= live[s - start]
                            wacc &= acc[s - start]
                        else:
                            wacc = 0
                    wacc |= must_write[j]
                    before = (after & ~must_write[j]) | may_read[j]
                    if before != live[j] or wacc != acc[j]:
                        live[j] = before
                        acc[j] = wacc
                        changed = True

    def _worklist(self, inst: _Instance) -> None:
        """`_sweep`'s result, evaluating only the instructions whose inputs changed, in the sweeps' order."""
        start, end = inst.start, inst.end
        fall, jump = self.succ.fall, self.succ.jump
        pred_at, pred = self._predecessors()
        seeds = inst.dirty
        for m in inst.frames.values():
            may_read, must_write, acc, live = m
            todo = [-j for j in seeds]
            while todo:
                heapify(todo)
                queued = set(todo)
                later: set[int] = set()  # for the next sweep: predecessors already passed in this one
                while todo:
                    j = -heappop(todo)
                    i = j + start
                    f, t = fall[i], jump[i]
                    if f < 0 and t < 0:
                        continue
                    after = 0
                    wacc = U64
                    for s in (f, t):
                        if s < 0:
                            continue
                        if start <= s < end:
                            after |= live[s - start]
                            wacc &= acc[s - start]
                        else:
                            wacc = 0
                    wacc |= must_write[j]
                    before = (after & ~must_write[j]) | may_read[j]
                    if before != live[j] or wacc != acc[j]:
                        live[j] = before
                        acc[j] = wacc
                        for k in range(pred_at[i], pred_at[i + 1]):
                            p = pred[k]
                            if start <= p < end:
                                q = p - start
                                if q < j:
                                    if -q not in queued:
                                        queued.add(-q)
                                        heappush(todo, -q)
                                else:
                                    later.add(q)
                todo = [-q for q in later]

    def _to_caller(self, inst: _Instance) -> None:
        """``propagate_to_outer_instance``: the callee's entry marks become its call's in the caller."""
        chain = inst.chain
        callsite = chain[-2]
        caller_start = self._start_of(callsite)
        outer = self.instance(chain[:-2] + (caller_start,))
        self.begin(callsite)
        for frame in range(len(chain) - 1):
            m = inst.frames.get(frame)
            if m is None:
                continue
            self.write(frame, m[2][0])
            self._read(outer, frame, callsite, m[3][0])
        self._commit(outer)

    def _start_of(self, idx: int) -> int:
        """The first instruction of the subprogram holding `idx`."""
        return self.starts[bisect_right(self.starts, idx) - 1]

    def _end_of(self, start: int) -> int:
        """One past the last instruction of the subprogram starting at `start` (start + 1 if none starts there)."""
        starts = self.starts
        i = bisect_left(starts, start)
        if i < len(starts) and starts[i] == start:
            return starts[i + 1] if i + 1 < len(starts) else self.n
        return start + 1

    # --- queries ---------------------------------------------------------------------------

    def alive(self, frames: Sequence[Any], idx: int, frameno: int, spi: int) -> bool:
        """``bpf_stack_slot_alive`` for a state at `idx` (its last frame there, the others at their calls)."""
        bit = 1 << spi
        last = len(frames) - 1
        cur = self.instances.get(self.chain_of(frames, last))
        if cur is not None and cur.live_before(frameno, idx) & bit:
            return True
        for i in range(frameno, last):
            inst = self.instances.get(self.chain_of(frames, i))
            site = frames[i + 1].callsite
            if inst is not None and inst.live_before(frameno, site if site in self.callback_sites else site + 1) & bit:
                return True
        return False


__all__ = ["LiveStack", "Successors"]

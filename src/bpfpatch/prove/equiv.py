"""Prove two programs equivalent for all inputs, or find an input on which they differ.

`prove_equivalent` encodes both programs in one `Env` (see `bpfpatch.prove.model`)
and asks z3 whether some input makes an observable differ: the return value
(the low 32 bits, what the kernel hands back), the packet bytes and length,
context stores, map value memory, global data, and the sequence of helper
calls with their arguments (map updates and deletes included).

When the rewritten program differs from the original only in one region (the
instruction streams agree before and after it, jumps included), only the
region is encoded twice: the shared prefix is executed once to give the exact
symbolic state on entry to the region, and the two regions are compared at
every exit (same exit taken under the same inputs; registers live there, all
memory, the call trace).  The suffix is the same code in both programs, so
equal states at its entry mean equal behaviour.  A region that cannot be
compared that way (a jump into its middle, inside a subprogram) or whose
comparison fails falls back to the whole-program proof.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import z3

from bpfpatch.analysis.liveness import regs_of, slot_liveness
from bpfpatch.errors import BpfPatchError
from bpfpatch.isa import KIND_OF, Kind
from bpfpatch.program import Program
from bpfpatch.progtype import ProgType, prog_type_of
from bpfpatch.prove import layout as L
from bpfpatch.prove.region import entry_state, pointer_kinds
from bpfpatch.prove.model import (
    KERNEL_MEMORY_TYPES,
    TRUE,
    Encoder,
    lo32,
    Env,
    Event,
    Exit,
    ProofTimeout,
    State,
    Unsupported,
    deadline,
    is_unsupported,
    map_infos,
    merge_all,
)


class ProofVerdict(Enum):
    """What the prover concluded."""

    PROVED = "proved"
    COUNTEREXAMPLE = "counterexample"
    UNDECIDED = "undecided"


@dataclass
class Counterexample:
    """A concrete input on which the model says the programs differ."""

    packet: bytes  # what BPF_PROG_TEST_RUN gets (the Ethernet header included)
    ctx: dict[str, int]
    maps: dict[str, dict[bytes, bytes]]
    model_retvals: tuple[int, int]
    differs: list[str]
    helper_results: dict[int, int] = field(default_factory=dict)
    map_keys: dict[str, set[bytes]] = field(default_factory=dict)  # keys either program touches


@dataclass
class ProofResult:
    """The verdict, why, how long it took, and where the programs were compared."""

    verdict: ProofVerdict
    reason: str = ""
    seconds: float = 0.0
    max_len: int = 0
    region: tuple[int, int, int, int] | None = None  # (a_start, a_end, b_start, b_end) slots
    counterexample: Counterexample | None = None
    stats: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        if self.verdict is ProofVerdict.PROVED:
            where = f" (changed region: slots {self.region[0]}-{self.region[1]} -> {self.region[2]}-{self.region[3]})" if self.region else ""
            return f"proved equivalent for all inputs [packets up to {self.max_len} bytes]{where}"
        if self.verdict is ProofVerdict.COUNTEREXAMPLE:
            return f"counterexample: {self.reason}"
        return f"undecided: {self.reason}"


# --- observables -------------------------------------------------------------------------

OBSERVED_REGIONS = ("pkt", "ctx", "mv:", "gd:")


def _byte_of(enc: Encoder, st: State, name: str, key) -> z3.BitVecRef:
    b = st.mem.get(name, {}).get(key)
    return b if b is not None else enc.init_byte(name, key)


def memory_equal(ea: Encoder, sa: State, eb: Encoder, sb: State, *, stacks: bool) -> list[tuple[str, z3.BoolRef]]:
    """Equalities of every byte written on either side (regions both sides see alike)."""
    out = []
    for name in sorted(set(sa.mem) | set(sb.mem), key=str):
        # at a region's exit the rest of the program sees the stacks and the ring buffer records not yet submitted
        if not (name.startswith(OBSERVED_REGIONS) or (stacks and name.startswith(("stack", "rb:")))):
            continue
        ma, mb = sa.mem.get(name, {}), sb.mem.get(name, {})
        if ma is mb:
            continue
        if name.startswith("mv:") and (name not in ea.regions or name not in eb.regions):
            out += map_value_equal(ea, sa, eb, sb, name)
            continue
        for k in set(ma) | set(mb):
            va, vb = _byte_of(ea, sa, name, k), _byte_of(eb, sb, name, k)
            if not va.eq(vb):
                out.append((f"{name}[{k}]", va == vb))
    return out


#: Map types whose lookups `map_value_equal` may fold again at an exit (hash, array and their per-CPU and LRU kinds).
FOLDED_MAP_TYPES = frozenset({1, 2, 5, 6, 9, 10})


def map_value_equal(ea: Encoder, sa: State, eb: Encoder, sb: State, name: str) -> list[tuple[str, z3.BoolRef]]:
    """A map value region one program made and the other did not (a lookup one makes and the other does not, or
    lookups numbered apart): each program's content of that key's element at the exit (`Encoder.map_fold` over
    all its calls), present alike and equal where present.  Unsupported for other maps."""
    enc = ea if name in ea.regions else eb
    e = next((x for x in enc.events if x.kind.startswith("lookup:") and x.extra.get("region") == name), None)
    info = enc.env.maps.get(e.kind[7:]) if e is not None else None
    if info is None or info.map_type not in FOLDED_MAP_TYPES or e.fields[0].size() != 8 * info.key_size:
        raise Unsupported(f"unknown memory region {name}")
    key = e.fields[0]
    pa, ca = ea.map_fold(sa, info, key, Event(len(ea.events), TRUE, z3.BitVecVal(0, 32), "exit", ()))
    pb, cb = eb.map_fold(sb, info, key, Event(len(eb.events), TRUE, z3.BitVecVal(0, 32), "exit", ()))
    return [(f"{name}: its key's element at the exit", z3.And(pa == pb, z3.Implies(pa, ca == cb)))]


def trace_equal(ta: list[Event], tb: list[Event]) -> list[tuple[str, z3.BoolRef]]:
    """The two call sequences are the same on every input (helper, arguments, bytes read)."""
    if len(ta) == len(tb) and all(_same_event(x, y) for x, y in zip(ta, tb)):
        return []
    out = []
    one = z3.BitVecVal(1, 32)
    zero = z3.BitVecVal(0, 32)
    count_a = z3.Sum([z3.If(e.guard, one, zero) for e in ta]) if ta else zero
    count_b = z3.Sum([z3.If(e.guard, one, zero) for e in tb]) if tb else zero
    out.append(("number of helper calls", count_a == count_b))
    for x in ta:
        for y in tb:
            same = _event_eq(x, y)
            if z3.is_true(same):
                continue
            out.append((f"helper call {x.kind} (call #{x.seq} vs #{y.seq})",
                        z3.Implies(z3.And(x.guard, y.guard, x.pos == y.pos), same)))
    return out


def _same_event(x: Event, y: Event) -> bool:
    return x.kind == y.kind and x.guard.eq(y.guard) and x.pos.eq(y.pos) and len(x.fields) == len(y.fields) and all(
        a.eq(b) for a, b in zip(x.fields, y.fields))


def _event_eq(x: Event, y: Event) -> z3.BoolRef:
    if x.kind != y.kind or len(x.fields) != len(y.fields):
        return z3.BoolVal(False)
    eqs = []
    for a, b in zip(x.fields, y.fields):
        if a.size() != b.size():
            return z3.BoolVal(False)
        if not a.eq(b):
            eqs.append(a == b)
    return z3.And(eqs) if eqs else TRUE


def exit_equal(ea: Encoder, sa: State, eb: Encoder, sb: State) -> list[tuple[str, z3.BoolRef]]:
    """Observables of a program exit."""
    out = []
    ra, rb = lo32(sa.regs[0][0]), lo32(sb.regs[0][0])
    if not ra.eq(rb):
        out.append(("return value", ra == rb))
    if not sa.plen.eq(sb.plen):
        out.append(("packet length", sa.plen == sb.plen))
    return out + memory_equal(ea, sa, eb, sb, stacks=False)


def state_equal(ea: Encoder, sa: State, eb: Encoder, sb: State, live: frozenset[int]) -> list[tuple[str, z3.BoolRef]]:
    """Everything the rest of the program can see at a region exit."""
    out = []
    for r in sorted(live):
        va, vb = sa.regs[r][0], sb.regs[r][0]
        if not va.eq(vb):
            out.append((f"r{r}", va == vb))
    if not sa.plen.eq(sb.plen):
        out.append(("packet length", sa.plen == sb.plen))
    return out + memory_equal(ea, sa, eb, sb, stacks=True)


# --- liveness (registers read before written, per slot) ------------------------------------


def live_registers(program: Program) -> dict[int, frozenset[int]]:
    """Registers live on entry to each instruction's slot, r10 always (`bpfpatch.analysis.liveness`: calls
    are opaque, they read r1-r5 and write r0-r5)."""
    slots = program.slots
    regs = slots["regs"].tolist()
    live, _ = slot_liveness(slots["code"].tolist(), [r & 0xF for r in regs], [r >> 4 for r in regs],
                            slots["off"].tolist(), slots["imm"].tolist())
    out: dict[int, frozenset[int]] = {}
    slot = 0
    for insn in program.insns:
        out[slot] = regs_of(live[slot]) | {10}
        slot += insn.nslots
    return out


# --- alignment of the two instruction streams ------------------------------------------


def _targets(program: Program) -> dict[int, int]:
    """slot -> target slot of every jump, pseudo call and pseudo func reference."""
    out = {}
    slot = 0
    for insn in program.insns:
        off = insn.branch_offset
        if off is not None and (insn.is_jump or insn.is_pseudo_call or insn.is_pseudo_func):
            out[slot] = slot + 1 + off
        slot += insn.nslots
    return out


def map_refs(program: Program) -> dict[int, Any]:
    """slot -> (map, value offset) of each ld_imm64 the linker resolved to a map (``meta["map_refs"]``)."""
    return {int(k): v for k, v in (program.meta.get("map_refs") or {}).items()}


def changed_region(a: Program, b: Program) -> tuple[int, int, int, int] | None:
    """(a_start, a_end, b_start, b_end): the slots where the programs differ, when the rest agrees.

    The prefix and suffix must be the same instructions with jumps to the
    same places (a jump into the region may only land on its first slot), and
    the region must lie in the main function.  None when no such region exists
    or the programs are identical.
    """
    sa, sb = a.slots, b.slots
    na, nb = len(sa), len(sb)
    ta, tb = _targets(a), _targets(b)
    if any(t <= s for s, t in ta.items()) or any(t <= s for s, t in tb.items()):
        return None  # loops: the whole programs are unrolled and compared

    def shape(slots, i):
        w = slots[i]
        return (int(w["code"]), int(w["regs"]), int(w["off"]), int(w["imm"]))

    refs_a, refs_b = map_refs(a), map_refs(b)

    def same(i, j):
        x, y = shape(sa, i), shape(sb, j)
        if refs_a.get(i) != refs_b.get(j):  # the same bytes loading another map
            return False
        if i in ta or j in tb:  # offsets may differ: the targets are checked below
            return (i in ta) == (j in tb) and x[:2] == y[:2]
        return x == y

    p = 0
    while p < min(na, nb) and same(p, p):
        p += 1
    s = 0
    while s < min(na, nb) - p and same(na - 1 - s, nb - 1 - s):
        s += 1
    if p == na and p == nb:
        return None
    starts_a, starts_b = set(int(x) for x in a.insn_slots()), set(int(x) for x in b.insn_slots())
    # A replaced instruction is the last of its patch and the patch may jump over it
    # (the guards do): the region ends one instruction later than the streams differ.
    if s > 0:
        s -= 1
        while s > 0 and (na - s not in starts_a or nb - s not in starts_b):
            s -= 1
    ea, eb = na - s, nb - s
    # A region boundary inside an ld_imm64 pair: widen to whole instructions.
    while p > 0 and (p not in starts_a or p not in starts_b):
        p -= 1
    while (ea < na and ea not in starts_a) or (eb < nb and eb not in starts_b):
        ea, eb = ea + 1, eb + 1

    def key(t, n, end):
        if t < p:
            return ("pre", t)
        if t >= end:
            return ("suf", n - t)
        return ("entry",) if t == p else None

    for i in list(range(p)) + [na - k for k in range(1, na - ea + 1)]:
        j = i if i < p else i - na + nb
        if (i in ta) != (j in tb):
            return None
        if i in ta:
            ka, kb = key(ta[i], na, ea), key(tb[j], nb, eb)
            if ka is None or ka != kb:
                return None
            x, y = shape(sa, i), shape(sb, j)
            if x[:2] != y[:2]:
                return None
    subs_a, subs_b = a.subprogs, b.subprogs
    main_end_a = subs_a[1] if len(subs_a) > 1 else na
    main_end_b = subs_b[1] if len(subs_b) > 1 else nb
    if ea > main_end_a or eb > main_end_b:
        return None
    return p, ea, p, eb


# --- the proof ---------------------------------------------------------------------------


@dataclass
class _Side:
    enc: Encoder
    exits: list[Exit]


def _group(exits: list[Exit], enc: Encoder, start: int, end: int, n: int) -> dict[Any, tuple]:
    groups: dict[Any, list] = {}
    for e in exits:
        if e.key == "exit":
            k = "exit"
        else:
            t = e.key[1]
            k = ("pre", t) if t < start else ("suf", n - t)
        groups.setdefault(k, []).append((e.pc, e.state))
    return {k: merge_all(v, enc.init_byte) for k, v in groups.items()}


def _solve(checks: list[tuple[str, z3.BoolRef]], env: Env, timeout_ms: int, extra: list[z3.BoolRef] = ()):
    solver = z3.Solver()
    solver.set("timeout", timeout_ms)
    solver.add(*env.assumptions)
    solver.add(*extra)
    solver.add(z3.Or([z3.Not(c) for _, c in checks]))
    return solver, solver.check()


#: How the rewritten program may read its context: as the original does, through struct sk_buff (the ctx
#: pass), or as the kernel's view of the original (the kernel pass).
REWRITTEN_VIEWS = ("user", "kernel", "xlated")


#: Encoding the programs stops (undecided) at this many times the timeout: the solver's phases share the
#: timeout itself, so a proof ends within about three times it however large its model.
ENCODE_BUDGET = 2.0


def prove_equivalent(original: Program, rewritten: Program, prog_type: "ProgType | int | str" = "socket_filter", *,
                     max_len: int = 128, timeout: float = 60.0, rewritten_ctx: str = "user",
                     use_region: bool = True) -> ProofResult:
    """Prove `rewritten` behaves as `original` on every input (packets up to `max_len` bytes).

    ``rewritten_ctx="kernel"`` reads the rewritten program's context loads
    through the kernel's ``struct sk_buff`` layout (what the ``ctx`` pass emits);
    ``rewritten_ctx="xlated"`` reads the rewritten program as the kernel's view
    of the original (the ``kernel`` pass's output: `bpfpatch.prove.lowered`).
    `timeout` bounds the solver; encoding the programs gives up (undecided) at
    `ENCODE_BUDGET` times it.
    """
    t0 = time.perf_counter()
    ptype = prog_type_of(prog_type)
    if rewritten_ctx not in REWRITTEN_VIEWS:
        raise BpfPatchError(f"prove: rewritten_ctx {rewritten_ctx!r} is none of {', '.join(REWRITTEN_VIEWS)}")
    stats: dict[str, Any] = {}
    region = changed_region(original, rewritten) if use_region else None
    if (use_region and region is None and len(original.slots) == len(rewritten.slots)
            and (original.slots == rewritten.slots).all() and map_refs(original) == map_refs(rewritten)):
        return ProofResult(ProofVerdict.PROVED, "identical", time.perf_counter() - t0, max_len, None, None, stats)
    try:
        with deadline(ENCODE_BUDGET * timeout):
            res = _prove(original, rewritten, ptype, region, max_len, timeout, rewritten_ctx, stats, t0)
    except ProofTimeout as exc:
        return ProofResult(ProofVerdict.UNDECIDED, f"gave up after {time.perf_counter() - t0:.0f} s, the timeout: {exc}",
                           time.perf_counter() - t0, max_len, region, None, stats)
    except Unsupported as exc:
        return ProofResult(ProofVerdict.UNDECIDED, str(exc), time.perf_counter() - t0, max_len, region, None, stats)
    except z3.Z3Exception as exc:
        return ProofResult(ProofVerdict.UNDECIDED, f"solver error: {exc}", time.perf_counter() - t0, max_len, region, None, stats)
    res.seconds = time.perf_counter() - t0
    return res


def _prove(original, rewritten, ptype, region, max_len, timeout, rewritten_ctx, stats, t0) -> ProofResult:
    """`prove_equivalent`'s phases: the changed region alone where it can, else the whole programs."""
    if rewritten_ctx == "xlated":
        layout_b = _Lowered(_find_lowerings(original, rewritten, ptype))
    else:
        layout_b = L.kernel_skb_layout() if rewritten_ctx == "kernel" else None
    hint = None
    if region is not None:
        res = _prove_region(original, rewritten, ptype, region, max_len, timeout, layout_b, stats)
        if isinstance(res, ProofResult):
            return res
        hint = res
    else:  # (loops, or changes all over): concrete runs first, a counterexample without solving the unrolled loops
        res = _probe(original, rewritten, ptype, max_len, layout_b, stats)
        if res is not None:
            return res
    return _prove_whole(original, rewritten, ptype, max_len, max(timeout - (time.perf_counter() - t0), 1.0), layout_b,
                        stats, hint)


@dataclass
class _Lowered:
    """The rewritten program is the kernel's view: these sequences lower the original's instructions."""

    lowerings: dict


def _find_lowerings(original: Program, rewritten: Program, ptype: ProgType) -> dict:
    from bpfpatch.prove.lowered import find_lowerings

    return find_lowerings(rewritten, original, ptype, map_infos(original, rewritten).values())


def _encoders(original, rewritten, ptype, max_len, layout_b):
    env = Env(ptype, max_len, map_infos(original, rewritten))
    if isinstance(layout_b, _Lowered):
        return env, Encoder(original, env, side="a"), Encoder(rewritten, env, side="b", lowerings=layout_b.lowerings)
    return env, Encoder(original, env, side="a"), Encoder(rewritten, env, ctx_layout=layout_b, side="b")


def _prove_whole(original, rewritten, ptype, max_len, timeout, layout_b, stats, hint=None) -> ProofResult:
    env, ea, eb = _encoders(original, rewritten, ptype, max_len, layout_b)
    t = time.perf_counter()
    xa = ea.run(((), 0), ea.initial_state())
    xb = eb.run(((), 0), eb.initial_state())
    stats["encode_s"] = time.perf_counter() - t
    bound = [e.pc for e in xa + xb if e.key == "bound"]
    if bound:
        solver, verdict = _solve([("unroll bound", z3.Not(z3.Or(bound)))], env, int(timeout * 500))
        if verdict != z3.unsat:
            return ProofResult(ProofVerdict.UNDECIDED, f"a loop may run beyond the unroll bound ({ea.unroll} jumps back"
                               f" on a path){'' if verdict == z3.sat else ': the solver gave up on the bound'}", 0,
                               max_len, None, None, stats)
        xa, xb = [e for e in xa if e.key != "bound"], [e for e in xb if e.key != "bound"]
    xa, xb = _unreachable_unsupported(xa, xb, env, timeout)
    pa, fa = merge_all([(e.pc, e.state) for e in xa], ea.init_byte)
    pb, fb = merge_all([(e.pc, e.state) for e in xb], eb.init_byte)
    checks = exit_equal(ea, fa, eb, fb) + trace_equal(ea.events, eb.events)
    stats["checks"] = len(checks)
    if not checks:
        return ProofResult(ProofVerdict.PROVED, "", 0, max_len, None, None, stats)
    if hint is not None:
        # The region's comparison found an input on which the states at its exits differ:
        # if the whole programs differ on it too, that is the counterexample (no solving).
        try:
            m = _model(hint, env)
        except z3.Z3Exception:  # the re-check with the test run's preferences gave up: no hint
            m = None
        if m is not None and any(z3.is_false(m.eval(c, model_completion=True)) for _, c in checks):
            stats["counterexample_from"] = "region"
            cex = _counterexample(m, checks, env, ea, eb, fa, fb)
            return ProofResult(ProofVerdict.COUNTEREXAMPLE, ", ".join(cex.differs[:4]) + " differ", 0, max_len, None, cex, stats)
    t = time.perf_counter()
    solver, verdict = _solve(checks, env, int(timeout * 1000))
    stats["solve_s"] = time.perf_counter() - t
    if verdict == z3.unsat:
        return ProofResult(ProofVerdict.PROVED, "", 0, max_len, None, None, stats)
    if verdict == z3.unknown:
        return ProofResult(ProofVerdict.UNDECIDED, f"solver gave up ({solver.reason_unknown()}) after {timeout:.0f} s", 0,
                           max_len, None, None, stats)
    cex = _counterexample(_model(solver, env), checks, env, ea, eb, fa, fb)
    return ProofResult(ProofVerdict.COUNTEREXAMPLE, ", ".join(cex.differs[:4]) + " differ", 0, max_len, None, cex, stats)


def _unreachable_unsupported(xa: list[Exit], xb: list[Exit], env: Env, timeout: float, pc=TRUE):
    """The exits without the paths the model could not follow, once the solver shows no input takes them;
    else `Unsupported` with the first reason."""
    bad = [e for e in xa + xb if is_unsupported(e)]
    if not bad:
        return xa, xb
    _, verdict = _solve([("unmodelled path", z3.Not(z3.And(pc, z3.Or([e.pc for e in bad]))))], env,
                        int(max(timeout, 1.0) * 500))
    if verdict != z3.unsat:
        first = min(bad, key=lambda e: e.where)
        raise Unsupported(first.key[1])
    return [e for e in xa if not is_unsupported(e)], [e for e in xb if not is_unsupported(e)]


def _region_mentions_maps(program: Program, a0: int, a1: int) -> bool:
    slot = 0
    for insn in program.insns:
        if a0 <= slot < a1 and KIND_OF[insn.code] == Kind.CALL and insn.src == 0 and insn.imm in (1, 2, 3):
            return True
        slot += insn.nslots
    return False


def _prove_region_symbolic(original, rewritten, ptype, region, max_len, timeout, layout_b, stats) -> ProofResult | None:
    """The region proved from a symbolic entry state (fresh values, pointer kinds kept), or None."""
    a0, a1, b0, b1 = region
    kinds = pointer_kinds(original, a0, L.user_layout(ptype), kernel_memory=ptype in KERNEL_MEMORY_TYPES) if a0 > 0 else None
    if kinds is None:
        return None
    holders = [k for k in list(kinds[0]) + [v for _, v in kinds[1]] if (k[0] or "").startswith("mv:")]
    if len(holders) > 1 or (holders and (_region_mentions_maps(original, a0, a1) or _region_mentions_maps(rewritten, b0, b1))):
        return None  # which map values alias is not kept by the abstraction
    env, ea, eb = _encoders(original, rewritten, ptype, max_len, layout_b)
    entry = entry_state(ea, kinds)
    eb.fresh = ea.fresh
    res = _region_checks(original, rewritten, region, env, ea, eb, TRUE, entry, timeout, stats)
    if isinstance(res, ProofResult):
        stats["entry"] = "symbolic"
        return res
    return None


def _prove_region(original, rewritten, ptype, region, max_len, timeout, layout_b, stats) -> "ProofResult | z3.Solver | None":
    """Proved, or the solver whose model makes the region's exits differ (a candidate input), or None."""
    res = _prove_region_symbolic(original, rewritten, ptype, region, max_len, min(timeout / 10, 2.0), layout_b, stats)
    if res is not None:
        return res
    res = _probe(original, rewritten, ptype, max_len, layout_b, stats)
    if res is not None:
        return res
    a0, a1, b0, b1 = region
    if a1 - a0 > len(original.slots) // 2:
        return None  # the region is most of the program: prove the whole program at once
    env, ea, eb = _encoders(original, rewritten, ptype, max_len, layout_b)
    t = time.perf_counter()
    if a0 == 0:
        entry_pc, entry = TRUE, ea.initial_state()
    else:
        pre = ea.run(((), 0), ea.initial_state(), stop=lambda n: n[0] == () and n[1] >= a0)
        try:  # a prefix path the model cannot follow may go on into the region: it must be unreachable
            _unreachable_unsupported([e for e in pre if is_unsupported(e)], [], env, timeout / 4)
        except Unsupported:
            return None  # the whole programs decide (and say why)
        entries = [(e.pc, e.state) for e in pre if e.key != "bound" and e.key[:2] == ((), a0)]
        if not entries:
            return ProofResult(ProofVerdict.PROVED, "the changed region is unreachable", 0, max_len, region, None, stats)
        entry_pc, entry = merge_all(entries, ea.init_byte)
    stats["prefix_s"] = time.perf_counter() - t
    res = _region_checks(original, rewritten, region, env, ea, eb, entry_pc, entry, timeout / 2, stats)
    if isinstance(res, ProofResult):
        stats["entry"] = "exact"
    return res


def _probe(original, rewritten, ptype, max_len, layout_b, stats) -> ProofResult | None:
    """A counterexample from concrete runs of both programs (`bpfpatch.prove.probe`), or None."""
    from bpfpatch.prove.probe import ConcreteEnv, completion, inputs

    t = time.perf_counter()
    m = completion()
    try:
        for k, (values, plen, helpers) in enumerate(inputs(ptype, max_len)):
            env = ConcreteEnv(ptype, max_len, map_infos(original, rewritten), values, plen, helpers)
            if isinstance(layout_b, _Lowered):
                ea, eb = Encoder(original, env, side="a"), Encoder(rewritten, env, side="b", lowerings=layout_b.lowerings)
            else:
                ea, eb = Encoder(original, env, side="a"), Encoder(rewritten, env, ctx_layout=layout_b, side="b")
            xa = ea.run(((), 0), ea.initial_state())
            xb = eb.run(((), 0), eb.initial_state())
            if any(e.key == "bound" or is_unsupported(e) for e in xa + xb):
                continue
            pa, fa = merge_all([(e.pc, e.state) for e in xa], ea.init_byte)
            pb, fb = merge_all([(e.pc, e.state) for e in xb], eb.init_byte)
            checks = exit_equal(ea, fa, eb, fb) + trace_equal(ea.events, eb.events)
            if any(z3.is_false(m.eval(c, model_completion=True)) for _, c in checks):
                stats["counterexample_from"] = f"probe {k}"
                stats["probe_s"] = time.perf_counter() - t
                cex = _counterexample(m, checks, env, ea, eb, fa, fb)
                return ProofResult(ProofVerdict.COUNTEREXAMPLE, ", ".join(cex.differs[:4]) + " differ", 0, max_len, None,
                                   cex, stats)
    except Unsupported:
        pass
    stats["probe_s"] = time.perf_counter() - t
    return None


def _region_checks(original, rewritten, region, env, ea, eb, entry_pc, entry, timeout, stats):
    a0, a1, b0, b1 = region
    max_len = env.max_len
    t = time.perf_counter()
    eb.adopt(ea)
    xa = ea.run(((), a0), entry, entry_pc, stop=lambda n: n[0] == () and not (a0 <= n[1] < a1))
    xb = eb.run(((), b0), entry, entry_pc, stop=lambda n: n[0] == () and not (b0 <= n[1] < b1))
    stats["encode_s"] = time.perf_counter() - t
    if any(e.key == "bound" for e in xa + xb):
        return None  # a callback loop in the region may run past the unroll bound: the whole programs decide
    try:
        xa, xb = _unreachable_unsupported(xa, xb, env, timeout, entry_pc)
    except Unsupported:
        return None  # the whole programs decide (and say why)
    ga = _group(xa, ea, a0, a1, len(original.slots))
    gb = _group(xb, eb, b0, b1, len(rewritten.slots))
    live = live_registers(original)
    checks: list[tuple[str, z3.BoolRef]] = []
    for k in sorted(set(ga) | set(gb), key=str):
        if k not in ga or k not in gb:
            pc = (ga.get(k) or gb.get(k))[0]
            checks.append((f"exit {k} taken by one program only", z3.Not(pc)))
            continue
        (pa, sa), (pb, sb) = ga[k], gb[k]
        if not pa.eq(pb):
            checks.append((f"exit {k} condition", pa == pb))
        if k == "exit":
            eqs = exit_equal(ea, sa, eb, sb)
        else:
            target = k[1] if k[0] == "pre" else len(original.slots) - k[1]
            eqs = state_equal(ea, sa, eb, sb, live.get(target, frozenset(range(11))) - {11})
        checks += [(f"{name} at exit {k}", z3.Implies(pa, c)) for name, c in eqs]
    checks += trace_equal(ea.events, eb.events)
    stats["checks"] = len(checks)
    stats["region"] = region
    if not checks:
        return ProofResult(ProofVerdict.PROVED, "", 0, max_len, region, None, stats)
    t = time.perf_counter()
    solver, verdict = _solve(checks, env, int(timeout * 1000))
    stats["solve_s"] = time.perf_counter() - t
    if verdict == z3.unsat:
        return ProofResult(ProofVerdict.PROVED, "", 0, max_len, region, None, stats)
    stats["region_result"] = str(verdict)
    return solver if verdict == z3.sat else None  # not proved locally: the whole program decides


# --- counterexamples -------------------------------------------------------------------------


def _preferences(env: Env) -> list[z3.BoolRef]:
    """Constraints that make a counterexample one BPF_PROG_TEST_RUN can reproduce."""
    out = []
    syms = env.symbols()
    skb = env.prog_type in L.SKB_TYPES
    defaults = L.SKB_TEST_RUN_DEFAULTS if skb else L.XDP_TEST_RUN_DEFAULTS if env.prog_type == ProgType.XDP else {}
    for name, value in defaults.items():
        s = syms.get(f"ctx_{name}")
        if s is not None:
            out.append(s == value)
    if not skb:
        return out
    # The test run parses the Ethernet type (eth_type_trans) and refuses IPv4 / IPv6
    # packets shorter than their header.
    if env.prog_type == ProgType.SOCKET_FILTER:
        proto = env.sym("ctx_protocol", 16)
        be = z3.Concat(z3.Extract(7, 0, proto), z3.Extract(15, 8, proto))
        hlen = z3.BitVecVal(0, 64)
    else:
        hi, lo = env.pkt_byte(12), env.pkt_byte(13)
        be = z3.Concat(hi, lo)
        out.append(env.sym("ctx_protocol", 16) == z3.Concat(lo, hi))
        hlen = z3.BitVecVal(14, 64)
    out.append(z3.ULE(0x0600, be))
    out.append(z3.Implies(be == 0x0800, z3.UGE(env.plen, hlen + 20)))
    out.append(z3.Implies(be == 0x86DD, z3.UGE(env.plen, hlen + 40)))
    return out


def _model(solver: z3.Solver, env: Env) -> z3.ModelRef:
    """A model of a satisfiable query, one the test run can reproduce where there is one."""
    solver.push()
    solver.add(*_preferences(env))
    solver.set("timeout", 10000)
    if solver.check() == z3.sat:
        m = solver.model()
        solver.pop()
        return m
    solver.pop()
    solver.check()
    return solver.model()


def _counterexample(m: z3.ModelRef, checks, env: Env, ea: Encoder, eb: Encoder, fa: State, fb: State) -> Counterexample:

    def val(e) -> int:
        return m.eval(e, model_completion=True).as_long()

    plen = val(env.plen)
    payload = bytes(val(env.pkt_byte(i)) for i in range(plen))
    ctx: dict[str, int] = {}
    for name, s in env.symbols().items():
        if name.startswith("ctx_"):
            ctx[name[4:]] = val(s)
    if env.prog_type == ProgType.SOCKET_FILTER:
        proto = ctx.get("protocol", 0x0008)
        packet = bytes(12) + bytes([proto & 0xFF, proto >> 8]) + payload
    else:
        packet = payload
    maps: dict[str, dict[bytes, bytes]] = {}
    keys: dict[str, set[bytes]] = {}
    for enc in (ea, eb):
        for e in enc.events:
            kind, _, mname = e.kind.partition(":")
            if mname not in env.maps or not z3.is_true(m.eval(e.guard, model_completion=True)):
                continue
            info = env.maps[mname]
            if e.fields[0].size() != 8 * info.key_size:
                continue  # a local storage's element, keyed by its owner's address: no test run sets it
            key = val(e.fields[0]).to_bytes(info.key_size, "little")
            keys.setdefault(mname, set()).add(key)
            if kind != "lookup":
                continue
            content = z3.Function(f"mapval_{mname}", z3.BitVecSort(8 * info.key_size), z3.BitVecSort(8 * info.value_size))
            present = True
            if info.map_type not in (2, 6):
                pf = z3.Function(f"mappresent_{mname}", z3.BitVecSort(8 * info.key_size), z3.BoolSort())
                present = z3.is_true(m.eval(pf(e.fields[0]), model_completion=True))
            if present:
                maps.setdefault(mname, {})[key] = val(content(e.fields[0])).to_bytes(info.value_size, "little")
    differs = [name for name, c in checks if z3.is_false(m.eval(c, model_completion=True))]
    rets = (val(z3.Extract(31, 0, fa.regs[0][0])), val(z3.Extract(31, 0, fb.regs[0][0])))
    helpers = {}
    for e in ea.events:
        if z3.is_true(m.eval(e.guard, model_completion=True)):
            k = val(e.pos)
            helpers[k] = val(env.helper_ret(e.pos))
    return Counterexample(packet, ctx, maps, rets, differs, helpers, keys)


__all__ = ["Counterexample", "ProofResult", "ProofVerdict", "changed_region", "live_registers", "prove_equivalent"]

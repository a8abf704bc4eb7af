"""`check`: run an original and a rewrite on the same inputs and compare everything a test run shows.

    >>> report = check("orig.o", "rewritten.o")            # ELF objects, loaded through libbpf
    >>> report.verdict, report.exit_code, report.line()

What is compared, after every input (see `ctxlayout` for what each program type
reports): the return value, the packet out, the context out, and the contents
of every map the program references (each side has its own maps, created by
libbpf from the object and initialized identically; global data included;
``.rodata`` is frozen and not compared).  Maps keep their state from one input
to the next, and both sides get the same sequence.  The process is pinned to
one CPU while it runs, so per-CPU values are compared slot by slot without
false alarms.  Maps larger than `BIG_MAP_BYTES` are compared every
`BIG_MAP_EVERY` inputs and at the end; a difference found there is located by
replaying the sequence on fresh loads.  Where the big maps are worth it
(`ANALYZE_MAPS_BYTES`), the verifier's analysis of both programs says which maps
some path may write (`bpfpatch.analysis.mapwrites`): a big map neither writes
holds what libbpf put in it and is not listed at all (a note says so).

Inputs: the user's (``inputs=``), or packets of every common shape with the
program's own constants, context fields varied, then a coverage-guided search
on a block-counter copy of the original (`cover`): inputs that reach new
blocks are kept and mutated, until every block the verifier kept is covered or
the budget ends.

Verdicts (`Verdict`, each its own exit code): different (1), no difference
found (0), rejected (3: the kernel refused one of the programs), undecided (2).
A difference is confirmed by replaying the inputs on two fresh loads of the
original: if the original disagrees with itself the verdict is undecided.
"""

from __future__ import annotations

import ctypes
import errno as E
import os
import random
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Iterable

from bpfpatch.errors import BpfPatchError, KernelError, NotPrivilegedError, VerifierError
from bpfpatch.kernel.bpf_sys import Cmd, TestRunAttr, addr, bpf
from bpfpatch.kernel.cover import Coverage, CoverageError
from bpfpatch.kernel.ctxlayout import ContextLayout, layout_of
from bpfpatch.kernel.libbpf import LibbpfError, LoadedObject, ObjectMap, load_object, remap_map_fds, verifier_reason
from bpfpatch.kernel.packets import Harvest, describe, harvest, mutate, shapes
from bpfpatch.progtype import ProgType, prog_type_of, untyped_section

BIG_MAP_BYTES = 1 << 16
BIG_MAP_EVERY = 256
#: Big maps of at least this many bytes in all are worth the verifier's analysis of both programs: the
#: maps neither writes are then not listed (katran's two control-plane arrays, 192 MB, take 34 s a listing).
ANALYZE_MAPS_BYTES = 1 << 24
#: The analysis's budget there (processed instructions): a program it does not finish keeps every map compared.
ANALYZE_MAPS_BUDGET = 250_000
DEFAULT_INPUTS = 2000
DEFAULT_SECONDS = 8.0
MIN_INPUTS = 2000  # the search goes on to this many inputs even when every block is covered
HASH_LIKE = frozenset({1, 5, 9, 10})  # hash, percpu hash, lru hash, lru percpu hash: order differs per map
RDONLY_PROG = 0x80  # BPF_F_RDONLY_PROG: .rodata and other maps programs cannot write


class Verdict(Enum):
    """What `check` concluded; `EXIT_CODES` gives each its exit code."""

    NO_DIFFERENCE = "no difference found"
    DIFFERENT = "different"
    REJECTED = "rejected"
    UNDECIDED = "undecided"


EXIT_CODES = {Verdict.NO_DIFFERENCE: 0, Verdict.DIFFERENT: 1, Verdict.UNDECIDED: 2, Verdict.REJECTED: 3}
USAGE_EXIT = 64  # usage and input errors (EX_USAGE): never 1, never a verdict
_SEVERITY = (Verdict.DIFFERENT, Verdict.REJECTED, Verdict.UNDECIDED, Verdict.NO_DIFFERENCE)


class CheckInputError(BpfPatchError):
    """A check that cannot start: a missing or unreadable object, a bad count, an unknown program."""


@dataclass(frozen=True)
class Input:
    """One test-run input: packet bytes and/or a context."""

    label: str
    data: bytes = b""
    ctx: bytes | None = None


@dataclass(frozen=True)
class Relocated:
    """Instructions as libbpf would load them (CO-RE applied, subprograms linked), to load in
    place of a program of the original object.  `maps`: the fd each ld_imm64 carries -> map name,
    so they can be pointed at a fresh load's maps."""

    insns: bytes
    maps: dict[int, str]

    @classmethod
    def of(cls, obj: LoadedObject, program: str | None = None) -> "Relocated":
        prog = obj.program(program)
        return cls(prog.insns(), {m.fd: m.name for m in obj.maps.values()})


@dataclass
class Observation:
    """What one test run showed."""

    retval: int
    data_out: bytes
    ctx_out: bytes
    maps: dict[str, tuple[bytes, bytes, int]]


@dataclass
class ProgramResult:
    """The verdict on one program of the object."""

    program: str
    section: str
    prog_type: str
    verdict: Verdict
    reason: str = ""
    inputs_run: int = 0
    inputs_skipped: int = 0
    blocks_covered: int | None = None
    blocks_total: int | None = None
    difference: dict[str, Any] | None = None
    not_compared: list[str] = field(default_factory=list)
    run_seconds: float = 0.0  # time of the input loop (coverage copy, both programs, map dumps)

    @property
    def coverage(self) -> str:
        if self.blocks_total is None:
            return "coverage unknown"
        pct = 100.0 * (self.blocks_covered or 0) / self.blocks_total if self.blocks_total else 100.0
        return f"covering {self.blocks_covered} of {self.blocks_total} blocks ({pct:.0f}%)"

    def line(self) -> str:
        """The verdict in one line."""
        head = f"{self.program}: {self.verdict.value}"
        if self.verdict is Verdict.NO_DIFFERENCE:
            skipped = f" ({self.inputs_skipped} inputs refused by the kernel, skipped)" if self.inputs_skipped else ""
            return f"{head} on {self.inputs_run} inputs, {self.coverage}{skipped}"
        if self.verdict is Verdict.DIFFERENT and self.difference:
            d = self.difference
            return f"{head} on input {d['input']} ({d['decoded']}): {d['what']}"
        return f"{head}: {self.reason}"

    def record(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "verdict"}
        out["verdict"] = self.verdict.value
        out["exit_code"] = EXIT_CODES[self.verdict]
        out["line"] = self.line()
        return out


@dataclass
class CheckReport:
    """Verdicts on every program checked; the worst decides the exit code."""

    results: list[ProgramResult]

    @property
    def verdict(self) -> Verdict:
        for v in _SEVERITY:
            if any(r.verdict is v for r in self.results):
                return v
        return Verdict.UNDECIDED

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    def lines(self) -> list[str]:
        return [r.line() for r in self.results]

    def record(self) -> dict[str, Any]:
        return {"verdict": self.verdict.value, "exit_code": self.exit_code, "programs": [r.record() for r in self.results]}


# --- running one program fast ----------------------------------------------------------------

class Runner:
    """BPF_PROG_TEST_RUN on one fd with buffers allocated once."""

    MAX_DATA = 4096

    def __init__(self, fd: int, layout: ContextLayout) -> None:
        self.fd = fd
        self.layout = layout
        self.din = ctypes.create_string_buffer(self.MAX_DATA)
        self.dout = ctypes.create_string_buffer(self.MAX_DATA + 1024)
        n = max(layout.ctx_size, 1)
        self.cin = ctypes.create_string_buffer(n)
        self.cout = ctypes.create_string_buffer(n)
        self.attr = TestRunAttr()

    def run(self, inp: Input) -> tuple[int, bytes, bytes] | int:
        """(retval, data out, ctx out), or the errno of a refused run."""
        lay, a = self.layout, self.attr
        ctypes.memset(addr(a), 0, ctypes.sizeof(a))
        a.prog_fd = self.fd
        if lay.data:
            n = len(inp.data)
            ctypes.memmove(self.din, inp.data, n)
            a.data_in, a.data_size_in = addr(self.din), n
            a.data_out, a.data_size_out = addr(self.dout), len(self.dout)
        if lay.ctx_size and inp.ctx is not None:
            ctypes.memmove(self.cin, inp.ctx, len(inp.ctx))
            a.ctx_in, a.ctx_size_in = addr(self.cin), len(inp.ctx)
            if lay.ctx_out:
                ctypes.memset(self.cout, 0, lay.ctx_size)
                a.ctx_out, a.ctx_size_out = addr(self.cout), lay.ctx_size
        if lay.repeat_allowed:
            a.repeat = 1
        try:
            bpf(Cmd.PROG_TEST_RUN, a)
        except OSError as exc:
            return exc.errno or E.EINVAL
        dout = self.dout.raw[: min(a.data_size_out, len(self.dout))] if lay.data else b""
        if lay.ctx_back_in_place and inp.ctx is not None:
            cout = self.cin.raw[: len(inp.ctx)]
        elif lay.ctx_out and inp.ctx is not None:
            cout = self.cout.raw[: a.ctx_size_out]
        else:
            cout = b""
        return int(a.retval), dout, cout


class Side:
    """One program under test with its own object (and so its own maps)."""

    def __init__(self, obj: LoadedObject | None, fd: int, layout: ContextLayout, watched: list[ObjectMap], owned=None) -> None:
        self.obj = obj
        self.runner = Runner(fd, layout)
        self.small = [m for m in watched if m.info.max_entries * m.value_bytes <= BIG_MAP_BYTES]
        self.big = [m for m in watched if m not in self.small]
        self._owned = owned

    def run(self, inp: Input, all_maps: bool) -> Observation | int:
        res = self.runner.run(inp)
        if isinstance(res, int):
            return res
        maps = {m.name: m.dump() for m in self.small}
        if all_maps:
            for m in self.big:
                maps[m.name] = m.dump()
        return Observation(res[0], res[1], res[2], maps)

    def maps_only(self) -> Observation:
        """Every watched map now (no run)."""
        return Observation(0, b"", b"", {m.name: m.dump() for m in self.small + self.big})

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()
        if self.obj is not None:
            self.obj.close()


def referenced_fds(raw: bytes) -> set[int]:
    """Map fds the relocated instructions load (ld_imm64 with src MAP_FD or MAP_VALUE)."""
    out = set()
    for i in range(0, len(raw) - 15, 8):
        if raw[i] == 0x18 and raw[i + 1] >> 4 in (1, 2):
            out.add(int.from_bytes(raw[i + 4:i + 8], "little", signed=True))
    return out


def watched_maps(obj: LoadedObject | None, raw: bytes) -> tuple[list[ObjectMap], list[str]]:
    """Maps a program references that can change and can be listed; and notes on those left out."""
    if obj is None:
        return [], []
    fds = referenced_fds(raw)
    keep, notes = [], []
    for m in obj.maps.values():
        if m.fd not in fds:
            continue
        if m.info.flags & RDONLY_PROG:
            continue  # .rodata: frozen, programs cannot write it
        if not m.listable:
            notes.append(f"map {m.name} ({m.info.type_name}) is not compared: its contents cannot be listed")
            continue
        keep.append(m)
    return keep, notes


# --- comparing ----------------------------------------------------------------------------------

def _first_byte(a: bytes, b: bytes) -> int:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def _map_entries(m: ObjectMap, dump: tuple[bytes, bytes, int]) -> dict[bytes, bytes]:
    keys, vals, n = dump
    ks, vs = m.entry_key_size, m.value_bytes
    return {keys[i * ks:(i + 1) * ks]: vals[i * vs:(i + 1) * vs] for i in range(n)}


def compare(layout: ContextLayout, maps: dict[str, ObjectMap], a: Observation | int, b: Observation | int) -> str | None:
    """The first difference between two observations, in words, or None."""
    if isinstance(a, int) or isinstance(b, int):
        if isinstance(a, int) and isinstance(b, int):
            return None
        which = "original" if isinstance(a, int) else "rewritten"
        err = a if isinstance(a, int) else b
        return f"the kernel refused the test run of the {which} only ({E.errorcode.get(err, err)})"
    if a.retval != b.retval:
        return f"return value {a.retval} vs {b.retval}"
    if a.data_out != b.data_out:
        if len(a.data_out) != len(b.data_out):
            return f"{layout.data_out_is} out: length {len(a.data_out)} vs {len(b.data_out)}"
        off = _first_byte(a.data_out, b.data_out)
        f = layout.field_at(off) if layout.data_out_is == "flow keys" else None
        where = f"field {f.name} (byte offset {off})" if f else f"byte offset {off}"
        return f"{layout.data_out_is} out differs at {where}: {a.data_out[off]:#04x} vs {b.data_out[off]:#04x}"
    if a.ctx_out != b.ctx_out:
        off = _first_byte(a.ctx_out, b.ctx_out)
        f = layout.field_at(off)
        name = f.name if f else f"byte {off}"
        if f:
            va = int.from_bytes(a.ctx_out[f.offset:f.offset + f.size], "little")
            vb = int.from_bytes(b.ctx_out[f.offset:f.offset + f.size], "little")
            return f"ctx_out field {name} (offset {f.offset}): {va:#x} vs {vb:#x}"
        return f"ctx_out differs at byte offset {off}"
    for name, da in a.maps.items():
        db = b.maps.get(name)
        if db is None or da == db:
            continue
        m = maps[name]
        if m.info.map_type not in HASH_LIKE and da[2] == db[2] and da[0] == db[0]:
            ea, eb = _map_entries(m, da), _map_entries(m, db)
        else:
            ea, eb = _map_entries(m, da), _map_entries(m, db)
            if ea == eb:
                continue  # same entries, another order (hash maps)
        for k in sorted(set(ea) | set(eb)):
            va, vb = ea.get(k), eb.get(k)
            if va == vb:
                continue
            if va is None or vb is None:
                return f"map {name} key {k.hex()}: {'absent' if va is None else 'present'} vs {'absent' if vb is None else 'present'}"
            off = _first_byte(va, vb)
            where = f"byte offset {off}"
            if m.info.percpu:
                stride = m.value_bytes // max(len(m.per_cpu(va)), 1)
                where = f"cpu {off // stride} byte offset {off % stride}"
            return f"map {name} key {k.hex()}: value differs at {where}: {va[off]:#04x} vs {vb[off]:#04x}"
    return None


# --- inputs -------------------------------------------------------------------------------------

def context_variants(layout: ContextLayout, h: Harvest, rng: random.Random) -> list[bytes | None]:
    """Context inputs for a type: zero, then settable fields set to the program's constants."""
    if not layout.ctx_size:
        return [None]
    out: list[bytes | None] = [layout.build({})]
    vals = [v for v in h.values[:16]] + [1, 0xFFFFFFFF]
    for name in layout.settable:
        if name in ("ingress_ifindex", "ifindex"):
            out.append(layout.build({name: 1}))  # lo: the only device every kernel has
            continue
        out.append(layout.build({name: rng.choice(vals)}))
    out.append(layout.build({n: rng.choice(vals) for n in layout.settable if "ifindex" not in n}))
    return out


def _with_ctx(layout: ContextLayout, ctx: bytes | None, data: bytes) -> bytes | None:
    """xdp_md must say where the packet ends."""
    if ctx is None or layout.prog_type is not ProgType.XDP:
        return ctx
    b = bytearray(ctx)
    b[4:8] = len(data).to_bytes(4, "little")
    return bytes(b)


def seed_inputs(layout: ContextLayout, h: Harvest, rng: random.Random) -> list[Input]:
    """Structured inputs before the search: every packet shape with the zero context, then the
    context variants on a few shapes."""
    ctxs = context_variants(layout, h, rng)
    out: list[Input] = []
    if layout.data:
        pk = shapes(h)
        for label, data in pk:
            out.append(Input(label, data, _with_ctx(layout, ctxs[0], data)))
        for k, ctx in enumerate(ctxs[1:]):
            label, data = pk[k % 8]
            out.append(Input(f"{label} ctx#{k + 1}", data, _with_ctx(layout, ctx, data)))
    else:
        for k, ctx in enumerate(ctxs):
            out.append(Input(f"ctx#{k}", b"", ctx))
        for v in h.values[:64]:
            for arg in range(min(3, layout.ctx_size // 8)):
                vals = {f: 0 for f in layout.settable}
                name = layout.settable[arg] if arg < len(layout.settable) else None
                if name:
                    vals[name] = v
                    out.append(Input(f"{name}={v:#x}", b"", layout.build(vals)))
    return [inp for inp in out if layout.runnable(inp.data)]  # frames the kernel refuses are not generated


def mutate_input(layout: ContextLayout, inp: Input, rng: random.Random, h: Harvest, n: int) -> Input:
    if layout.data and (inp.ctx is None or rng.random() < 0.85):
        data = mutate(inp.data, rng, h, h.packet_offsets())
        if len(data) > Runner.MAX_DATA:
            data = data[: Runner.MAX_DATA]
        return Input(f"search#{n}", data, _with_ctx(layout, inp.ctx, data))
    if inp.ctx is not None and layout.settable:
        name = rng.choice(layout.settable)
        if "ifindex" in name:
            return Input(f"search#{n}", inp.data, inp.ctx)
        f = layout.by_name(name)
        b = bytearray(inp.ctx)
        v = rng.choice(h.values) if h.values and rng.random() < 0.7 else rng.getrandbits(8 * f.size)
        b[f.offset:f.offset + f.size] = (v & ((1 << (8 * f.size)) - 1)).to_bytes(f.size, "little")
        return Input(f"search#{n}", inp.data, _with_ctx(layout, bytes(b), inp.data))
    return Input(f"search#{n}", inp.data, inp.ctx)


class InputSearch:
    """The inputs of one program's check, one at a time (iterate): the user's inputs, or the
    structured seeds (`seed_inputs`) and then mutations of the inputs that reached new blocks.

    Tell it which blocks an input reached (`observe`, from a block-counter copy of the
    program): the search keeps such inputs and mutates them.  It ends after `budget` inputs,
    after `seconds`, or once all `blocks` are covered and `MIN_INPUTS` (or the budget) ran.
    `n` inputs have been handed out (`given`); `seen` holds the blocks reached so far.
    """

    def __init__(self, layout: ContextLayout, h: Harvest, rng: random.Random, user: list[tuple[str, bytes]] | None,
                 budget: int, seconds: float, blocks: int | None = None) -> None:
        self.layout, self.h, self.rng, self.budget, self.blocks = layout, h, rng, budget, blocks
        self.user = user is not None
        self.deadline = time.perf_counter() + seconds
        self.queue = [Input(lbl, d, _with_ctx(layout, layout.build({}) if layout.ctx_size else None, d)) for lbl, d in user] \
            if user is not None else seed_inputs(layout, h, rng)
        self.corpus: list[Input] = []
        self.given: list[Input] = []
        self.seen: set[int] = set()
        self.n = 0
        self._drawn = 0

    def observe(self, inp: Input, hit: set[int]) -> None:
        """`inp` reached the blocks `hit`: keep it for mutation if any of them is new."""
        if not hit <= self.seen:
            self.seen |= hit
            self.corpus.append(inp)

    def __iter__(self) -> "InputSearch":
        return self

    def __next__(self) -> Input:
        layout, rng = self.layout, self.rng
        while self.n < self.budget:
            if self.queue:
                inp = self.queue.pop(0)
            elif self.user:
                break
            else:
                if self.blocks is not None and len(self.seen) >= self.blocks and self.n >= min(self.budget, MIN_INPUTS):
                    break  # every block the kernel kept is covered
                if time.perf_counter() > self.deadline:
                    break
                pool = self.corpus[-32:] if self.corpus and rng.random() < 0.7 else (self.corpus or self.given)
                inp = mutate_input(layout, rng.choice(pool), rng, self.h, self.n)
                if not layout.runnable(inp.data) and self._drawn < 20 * self.budget:
                    self._drawn += 1
                    continue  # the kernel refuses this frame for the type: draw another
            if layout.data and len(inp.data) > Runner.MAX_DATA:
                inp = Input(inp.label, inp.data[: Runner.MAX_DATA], _with_ctx(layout, inp.ctx, inp.data[: Runner.MAX_DATA]))
            self.given.append(inp)
            self.n += 1
            return inp
        raise StopIteration


# --- loading ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Raw:
    """Bare instructions (a .bin file): loaded with BPF_PROG_LOAD as they are, no maps."""

    insns: bytes
    name: str = "raw"


Source = Any  # a path, ELF bytes, Relocated (loaded against the original's object) or Raw


@dataclass
class _Opened:
    obj: LoadedObject | None
    fd: int
    owned: Any
    insns: bytes  # as loaded (map fds of `obj`)
    prog_type: ProgType
    section: str


def _open(source: Source, base: Source, program: str | None, prog_type) -> _Opened:
    """Load one side."""
    if isinstance(source, Raw):
        from bpfpatch.kernel.loader import load_program

        pt = prog_type_of(prog_type or "socket_filter")
        prog = load_program(source.insns, pt)
        return _Opened(None, prog.fd, prog, source.insns, pt, "")
    if isinstance(source, Relocated):
        obj = load_object(base, prog_type=prog_type, programs=[program] if program else None)
        try:
            like = obj.program(program)
            names = {m.name: m.fd for m in obj.maps.values()}
            fd_map = {fd: names[n] for fd, n in source.maps.items() if n in names}
            prog = obj.load_insns(source.insns, like, fd_map=fd_map)
            insns = remap_map_fds(source.insns, fd_map)
        except BaseException:
            obj.close()
            raise
        return _Opened(obj, prog.fd, prog, insns, like.prog_type, like.section)
    obj = load_object(source, prog_type=prog_type, programs=[program] if program else None)
    p = obj.program(program)
    return _Opened(obj, p.fd, None, p.insns(), p.prog_type, p.section)


def _drop_unwritten_maps(original: Source, rewritten: Source, name: str, ptype: ProgType, sides: list[Side]) -> list[str]:
    """Stop listing the big maps neither program writes (`bpfpatch.analysis.mapwrites`), where the big maps
    are worth the two analyses (`ANALYZE_MAPS_BYTES`) and both sides are ELF objects the analysis reads; the
    notes say which.  A map either program may write, or any doubt (an analysis that gives up, a write
    whose map cannot be told), keeps every map compared."""
    big = {m.name: m for m in sides[0].big if not m.info.internal}
    if sum(m.info.max_entries * m.value_bytes for m in big.values()) < ANALYZE_MAPS_BYTES:
        return []
    unwritten = set(big)
    for src in (original, rewritten):
        if isinstance(src, (Raw, Relocated)):
            return []
        writes = _map_writes(src, name, ptype)
        if writes is None:
            return []
        unwritten &= writes.unwritten()
    for side in sides:
        side.big = [m for m in side.big if m.name not in unwritten]
    return [f"map {n} is not compared: neither program writes it (the verifier's analysis of both)"
            for n in sorted(unwritten)]


def _map_writes(source: Source, name: str, ptype: ProgType):
    """`MapWrites` of the program `name` of the ELF object `source` (a path or bytes), or None."""
    from bpfpatch.analysis.mapwrites import map_writes
    from bpfpatch.analysis.verifier import AnalysisError
    from bpfpatch.elf import read_object
    from bpfpatch.kernel.analysis import analyze_object_program

    try:
        obj = read_object(source)
        program = obj.linked_program(name)
        analysis = analyze_object_program(program, obj, ptype, budget=ANALYZE_MAPS_BUDGET, keep_states=True)
    except (AnalysisError, BpfPatchError, OSError):
        return None
    return map_writes(analysis)


def _refusal(exc: KernelError) -> str:
    if isinstance(exc, VerifierError):
        for line in reversed(exc.log.splitlines()):
            if line.strip() and not line.startswith(("processed ", "verification time", "stack depth")):
                return line.strip()
    return verifier_reason(exc.log) or (exc.log_tail(1) if exc.log else str(exc))


def _is_refusal(exc: KernelError) -> bool:
    return isinstance(exc, VerifierError) or bool(verifier_reason(exc.log))


class _Pinned:
    """Pin this process to the CPU it runs on (per-CPU map values then land in one slot)."""

    def __enter__(self):
        self.prev = None
        if hasattr(os, "sched_setaffinity"):
            try:
                self.prev = os.sched_getaffinity(0)
                os.sched_setaffinity(0, {sorted(self.prev)[0]})
            except OSError:
                self.prev = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.prev is not None:
            os.sched_setaffinity(0, self.prev)


def program_names(source: Source, prog_type=None, program: str | None = None) -> list[tuple[str, str]]:
    """(name, section) of every program of an object (or of `program`, a name or section), read through libbpf.

    Without `prog_type`, a program whose section name gives no type (suricata's ``filter``) is a
    `CheckInputError` naming it: libbpf would refuse to load it, the user must say what it is.
    """
    if isinstance(source, Raw):
        return [(source.name, "")]
    with load_object(source, prog_type=prog_type, programs=[]) as obj:
        progs = [obj.program(program)] if program is not None else list(obj.programs.values())
        for p in progs:
            if p.prog_type is ProgType.UNSPEC:
                raise CheckInputError(f"{obj.name}: program {p.name!r}: {untyped_section(p.section)}")
        return [(p.name, p.section) for p in progs]


def check(
    original: Source,
    rewritten: Source,
    *,
    program: str | None = None,
    prog_type: "ProgType | int | str | None" = None,
    inputs: Iterable[tuple[str, bytes]] | None = None,
    budget: int = DEFAULT_INPUTS,
    seconds: float = DEFAULT_SECONDS,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> CheckReport:
    """Compare every program of `original` with the same program of `rewritten` (or only
    `program`, a name or section).  `inputs`: user packets (label, bytes) instead of the
    generated ones.  `budget`: at most this many inputs per program; `seconds`: time per program."""
    if budget <= 0:
        raise CheckInputError(f"--inputs {budget}: the number of inputs must be at least 1")
    for src in (original, rewritten):
        if isinstance(src, (str, os.PathLike)) and not os.path.isfile(src):
            raise CheckInputError(f"{src}: no such file")
    try:
        names = program_names(original, prog_type, program)
    except LibbpfError as exc:
        raise CheckInputError(str(exc)) from exc
    user = list(inputs) if inputs is not None else None
    results = []
    with _Pinned():
        for name, section in names:
            results.append(_check_one(original, rewritten, name, section, prog_type, user, budget, seconds, seed, progress))
    return CheckReport(results)


def _check_one(original, rewritten, name, section, prog_type, user, budget, seconds, seed, progress) -> ProgramResult:
    ptype_name = ""
    sides: list[Side] = []
    cov: Coverage | None = None
    cov_obj = None
    notes: list[str] = []
    try:
        errors: list[tuple[str, KernelError]] = []
        opened: list[_Opened] = []
        order = sorted((("original", original), ("rewritten", rewritten)), key=lambda ws: isinstance(ws[1], Raw))
        elf_type = None
        for which, src in order:
            try:
                if isinstance(src, Raw):
                    op = _open(src, original, None, prog_type or elf_type)
                else:
                    op = _open(src, original, name, prog_type)
                    elf_type = op.prog_type
            except NotPrivilegedError as exc:
                return ProgramResult(name, section, ptype_name, Verdict.UNDECIDED, f"needs root or CAP_BPF ({exc})")
            except KernelError as exc:
                errors.append((which, exc))
                continue
            ptype = op.prog_type
            ptype_name = ptype.name.lower()
            layout = layout_of(ptype)
            watched, notes_side = watched_maps(op.obj, op.insns)
            if which == "original":
                notes = notes_side
            side = Side(op.obj, op.fd, layout, watched, op.owned) if layout else _Loaded(op.obj, op.owned)
            if which == "original":
                sides.insert(0, side)
                opened.insert(0, op)
            else:
                sides.append(side)
                opened.append(op)
        raws = [op for op in opened if op.obj is None]
        if raws and len(raws) < len(opened) and any(referenced_fds(op.insns) for op in opened if op.obj is not None):
            return ProgramResult(name, section, ptype_name, Verdict.UNDECIDED,
                                 "the two programs do not reference the same maps (one is raw instructions, "
                                 "whose map references cannot be resolved: write an object with -o OUT.o)")
        if errors:
            which, exc = errors[0]
            both = len(errors) == 2
            if all(_is_refusal(e) for _, e in errors):
                who = "both programs were" if both else f"the {which} was"
                return ProgramResult(name, section, ptype_name, Verdict.REJECTED,
                                     f"{who} refused by the kernel: {_refusal(exc)}")
            return ProgramResult(name, section, ptype_name, Verdict.UNDECIDED, f"{which} cannot be loaded: {exc}")
        layout = layout_of(ptype)
        if layout is None:
            return ProgramResult(name, section, ptype_name, Verdict.UNDECIDED,
                                 f"both load, but this kernel has no test run for {ptype_name} programs")
        a, b = sides
        notes += _drop_unwritten_maps(original, rewritten, name, ptype, sides)
        h = harvest(opened[0].insns)
        if opened[0].obj is not None:
            h.add_data(m.initial_value() for m in opened[0].obj.maps.values() if m.info.internal)
        cov, cov_obj, cov_reason = _coverage_copy(original, name, prog_type, ptype)
        crun = Runner(cov.program.fd, layout) if cov else None
        result = ProgramResult(name, section, ptype_name, Verdict.NO_DIFFERENCE, not_compared=notes)
        seq: list[Input] = []
        maps = {m.name: m for m in a.small + a.big}
        t_start = time.perf_counter()
        search = InputSearch(layout, h, random.Random(seed), user, budget, seconds, cov.blocks if cov else None)
        for inp in search:
            seq.append(inp)
            if crun is not None and not isinstance(crun.run(inp), int):
                search.observe(inp, cov.hit())
            n = search.n
            full = n % BIG_MAP_EVERY == 0
            oa, ob = a.run(inp, full), b.run(inp, full)
            if isinstance(oa, int) and isinstance(ob, int):
                result.inputs_skipped += 1
                continue
            what = compare(layout, maps, oa, ob)
            if what is not None:
                return _confirm(result, original, rewritten, name, prog_type, layout, seq, what)
        if a.big:
            what = compare(layout, maps, a.maps_only(), b.maps_only())
            if what is not None:
                return _confirm(result, original, rewritten, name, prog_type, layout, seq, what)
        n = search.n
        result.inputs_run = n - result.inputs_skipped
        result.run_seconds = time.perf_counter() - t_start
        if result.inputs_run == 0:
            result.verdict = Verdict.UNDECIDED
            result.reason = f"the kernel refused all {n} test runs"
        if cov is not None:
            result.blocks_covered = len(search.seen & set(cov.kept))
            result.blocks_total = cov.blocks
        elif cov_reason:
            result.not_compared.append(cov_reason)
        return result
    finally:
        for s in sides:
            s.close()
        if cov is not None:
            cov.close()
        if cov_obj is not None:
            cov_obj.close()


def _coverage_copy(original: Source, name: str, prog_type, ptype: ProgType) -> tuple[Coverage | None, Any, str]:
    """(block-counter copy of the original's program, the object it was loaded with, why there is none)."""
    cov_obj = None
    try:
        if isinstance(original, Raw):
            from bpfpatch.kernel.loader import load_program

            return Coverage.instrument(original.insns, lambda code: load_program(code, ptype)), None, ""
        cov_obj = load_object(original, prog_type=prog_type, programs=[name])
        cprog = cov_obj.program(name)
        return Coverage.instrument(cprog.insns(), lambda code: cov_obj.load_insns(code, cprog)), cov_obj, ""
    except (CoverageError, KernelError) as exc:
        if cov_obj is not None:
            cov_obj.close()
        return None, None, f"no coverage ({exc})"


@dataclass
class Explored:
    """The inputs the check's search ran on one program (`explore`), and the blocks they reached."""

    program: str
    section: str
    inputs: list[Input]
    blocks_covered: int
    blocks_total: int


def explore(source: Source, *, program: str | None = None, prog_type: "ProgType | int | str | None" = None,
            budget: int = DEFAULT_INPUTS, seconds: float = DEFAULT_SECONDS, seed: int = 0) -> list[Explored]:
    """The inputs `check` would generate for each program of `source` (or `program`): the same
    seeds and coverage-guided search on a block-counter copy, run on the original alone.

    A tool that needs inputs reaching as much of a program as the check does (a coverage
    report, a fuzzer's corpus) takes them from here.  Programs of a type without a test run
    are left out.
    """
    if budget <= 0:
        raise CheckInputError(f"--inputs {budget}: the number of inputs must be at least 1")
    out: list[Explored] = []
    with _Pinned():
        for name, section in program_names(source, prog_type):
            if program is not None and program not in (name, section):
                continue
            op = _open(source, source, None if isinstance(source, Raw) else name, prog_type)
            cov = cov_obj = None
            try:
                layout = layout_of(op.prog_type)
                if layout is None:
                    continue
                h = harvest(op.insns)
                if op.obj is not None:
                    h.add_data(m.initial_value() for m in op.obj.maps.values() if m.info.internal)
                cov, cov_obj, _why = _coverage_copy(source, name, prog_type, op.prog_type)
                crun = Runner(cov.program.fd, layout) if cov else None
                search = InputSearch(layout, h, random.Random(seed), None, budget, seconds, cov.blocks if cov else None)
                for inp in search:
                    if crun is not None and not isinstance(crun.run(inp), int):
                        search.observe(inp, cov.hit())
                covered = len(search.seen & set(cov.kept)) if cov else 0
                out.append(Explored(name, section, search.given, covered, cov.blocks if cov else 0))
            finally:
                for x in (cov, cov_obj, op.owned, op.obj):
                    if x is not None:
                        x.close()
    return out


class _Loaded:
    """A side that loaded but cannot run (no test run for its type)."""

    def __init__(self, obj, owned) -> None:
        self.obj, self._owned = obj, owned

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()
        if self.obj is not None:
            self.obj.close()


def _replay(source, base, name, prog_type, layout, seq: list[Input]) -> list[Observation | int]:
    op = _open(source, base, None if isinstance(source, Raw) else name, prog_type)
    side = Side(op.obj, op.fd, layout, watched_maps(op.obj, op.insns)[0], op.owned)
    try:
        return [side.run(inp, True) for inp in seq]
    finally:
        side.close()


def _confirm(result: ProgramResult, original, rewritten, name, prog_type, layout, seq, what) -> ProgramResult:
    """Replay on fresh loads: find the first input that shows the difference, and make sure the
    original agrees with itself on the same sequence (else undecided)."""
    probe = seq + [seq[-1]] * 16  # the last input again and again: randomness shows quickly
    ra = _replay(original, original, name, prog_type, layout, probe)
    ra2 = _replay(original, original, name, prog_type, layout, probe)
    rb = _replay(rewritten, original, name, prog_type, layout, seq)
    maps_obj = None if isinstance(original, Raw) else load_object(original, prog_type=prog_type, programs=[name])
    try:
        maps = {m.name: m for m in maps_obj.maps.values()} if maps_obj else {}
        for k, (x, x2) in enumerate(zip(ra, ra2)):
            if compare(layout, maps, x, x2) is not None:
                result.verdict = Verdict.UNDECIDED
                at = f"input {k + 1}" if k < len(seq) else f"input {len(seq)} run again"
                result.reason = (f"the original itself behaves differently on the same inputs ({at}: "
                                 f"{compare(layout, maps, x, x2)}): it depends on time, randomness or the CPU")
                result.inputs_run = min(k + 1, len(seq))
                return result
        for k, (x, y) in enumerate(zip(ra, rb)):
            found = compare(layout, maps, x, y)
            if found is not None:
                inp = seq[k]
                result.verdict = Verdict.DIFFERENT
                result.inputs_run = k + 1
                ctx_fields = {f: v for f, v in layout.decode(inp.ctx).items() if f not in ("data_end",)} if inp.ctx else {}
                ctx_text = ", ".join(f"{f}={v:#x}" for f, v in ctx_fields.items())
                decoded = describe(inp.data) if layout.data else ""
                if ctx_text or not layout.data:
                    decoded = (decoded + "; " if decoded else "") + f"ctx {ctx_text or 'all zero'}"
                result.difference = {
                    "input": f"#{k + 1} {inp.label}", "decoded": decoded,
                    "hex": inp.data.hex(), "ctx_hex": inp.ctx.hex() if ctx_fields else None, "what": found,
                    "inputs_before": k,
                }
                return result
    finally:
        if maps_obj is not None:
            maps_obj.close()
    result.verdict = Verdict.UNDECIDED
    result.reason = f"a difference ({what}) did not show again when replayed on fresh loads"
    return result


__all__ = ["BIG_MAP_BYTES", "CheckInputError", "CheckReport", "DEFAULT_INPUTS", "DEFAULT_SECONDS", "EXIT_CODES",
           "Input", "Observation", "ProgramResult", "Raw", "Relocated", "Runner", "Side", "USAGE_EXIT", "Verdict", "check",
           "compare", "program_names", "referenced_fds", "seed_inputs", "watched_maps"]

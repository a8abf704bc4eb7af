"""Benchmarks: the seed's workload, every series in one run, one table.

Workload (the seed's and the kernel's): a program of N register divisions
``r0 /= r1``, each replaced by the kernel's 4-instruction divide-by-zero guard
(``if r1 != 0 goto +2; w0 ^= w0; goto +1; r0 /= r1``).  Every series is timed
end to end -- decode the bytes, patch, linearize, encode -- and shown next
to a floor measured in the same run: one NumPy copy of the output array for
the vectorized series, a bare Python loop (``py-floor``) for the one-node API.

Series: ``bulk`` (`replace_sites`), ``node`` (the one-node `PatchList` API),
``pipeline`` (``dce``, ``div-guard``, ``blind`` on one list), ``reference`` (the kernel's
one-patch-at-a-time algorithm, quadratic: stopped once a run would exceed the
budget), ``kernel`` (BPF_PROG_LOAD of the same program on the running
kernel, whose verifier does the same patching; ``kernel-nopatch`` loads the
same size without divisions, so the difference is the kernel's patching).
"""

from __future__ import annotations

import gc
import json
import os
import platform
import resource
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable

import numpy as np

from bpfpatch.fileio import atomic_path
from bpfpatch.isa import SLOT_DTYPE, Insn
from bpfpatch.isa import build as b
from bpfpatch.patch import SITE, PatchList, Row, S, replace_sites
from bpfpatch.program import Program

SEED_SIZES = (15_000, 45_000, 95_000, 195_000, 1_000_000)
#: The full run: the seed's sizes, 20k (where the README loop is compared with the kernel) and
#: 100k, the base of the growth target time(1M)/time(100k).
FULL_SIZES = (15_000, 20_000, 45_000, 95_000, 100_000, 195_000, 1_000_000)
QUICK_SIZES = (15_000, 20_000, 45_000, 100_000)
#: The README loop against the kernel's own patching: N and the issue's factor.
KERNEL_COMPARE_N, KERNEL_COMPARE_FACTOR = 20_000, 200.0
#: The seed thread's figures (2019, C, quadratic kernel code), seconds.
SEED_FIGURES = {15_000: 3.0, 45_000: 29.0, 95_000: 125.0, 195_000: 712.0, 1_000_000: 5100.0}

# The kernel's 64-bit unsigned guard (NOTES.md), as a bulk template.
DIV_GUARD_TEMPLATE = [Row(0x55, dst=S.src, off=2), Row(0xAC, dst=S.dst, src=S.dst), Row(0x05, off=1), SITE]


def division_program(n: int, *, op: int = 0x3F) -> bytes:
    """``r0 = 7; r1 = 2; (r0 op= r1) x n; exit`` as raw bytes (op 0x0f = add: no patching)."""
    s = np.zeros(n + 3, dtype=SLOT_DTYPE)
    s[0] = (0xB7, 0, 0, 7)
    s[1] = (0xB7, 1, 0, 2)
    s["code"][2 : n + 2] = op
    s["regs"][2 : n + 2] = 1 << 4  # src = r1
    s[n + 2] = (0x95, 0, 0, 0)
    return Program(s).to_bytes()


def run_bulk(raw: bytes) -> bytes:
    prog = Program.from_bytes(raw)
    sites = np.flatnonzero(prog.slots["code"] == 0x3F)
    return replace_sites(prog, [(sites, DIV_GUARD_TEMPLATE)]).to_bytes()


def run_node(raw: bytes) -> bytes:
    prog = Program.from_bytes(raw)
    pl = PatchList(prog)
    guards: dict[Insn, tuple[Insn, ...]] = {}
    for node in pl:
        insn = node.insn
        if insn.code == 0x3F:
            guard = guards.get(insn)
            if guard is None:  # one immutable guard per register pair: parsed once by the list
                guard = guards[insn] = (Insn(0x55, insn.src, 0, 2, 0), Insn(0xAC, insn.dst, insn.dst), Insn(0x05, 0, 0, 1), insn)
            pl.replace(node, guard)
    return pl.linearize().to_bytes()


def readme_list(raw: bytes) -> bytes:
    """The README loop as the issue writes it: a fresh list of new `Insn`s at every site."""
    prog = Program.from_bytes(raw)
    pl = PatchList(prog)
    for node in pl:
        insn = node.insn
        if insn.code == 0x3F:
            pl.replace(node, [Insn(0x55, insn.src, 0, 2, 0), Insn(0xAC, insn.dst, insn.dst), Insn(0x05, 0, 0, 1, 0), insn])
    return pl.linearize().to_bytes()


def readme_tuple(raw: bytes) -> bytes:
    """The README loop with an equal but new tuple at every site."""
    prog = Program.from_bytes(raw)
    pl = PatchList(prog)
    for node in pl:
        insn = node.insn
        if insn.code == 0x3F:
            pl.replace(node, (Insn(0x55, insn.src, 0, 2, 0), Insn(0xAC, insn.dst, insn.dst), Insn(0x05, 0, 0, 1, 0), insn))
    return pl.linearize().to_bytes()


def readme_asm(raw: bytes) -> bytes:
    """The README loop with assembly text at every site."""
    prog = Program.from_bytes(raw)
    pl = PatchList(prog)
    for node in pl:
        insn = node.insn
        if insn.code == 0x3F:
            pl.replace(node, f"if r{insn.src} != 0 goto +2\nw{insn.dst} ^= w{insn.dst}\ngoto +1\nr{insn.dst} /= r{insn.src}")
    return pl.linearize().to_bytes()


def readme_build(raw: bytes) -> bytes:
    """The README's "Using it" code verbatim: every node tested against a `build.div64_reg`, the guard
    made of named constructors."""
    prog = Program.from_bytes(raw)
    pl = PatchList(prog)
    for node in pl:
        insn = node.insn
        if insn == b.div64_reg(insn.dst, insn.src):
            pl.replace(node, [b.jne_imm(insn.src, 0, 2), b.xor32_reg(insn.dst, insn.dst), b.ja(1), insn])
    return pl.linearize().to_bytes()


def readme_floor(raw: bytes) -> bytes:
    """The shared-tuple loop (`run_node`) that also makes the README's three `Insn`s and its list at every
    site and drops them: the least the fresh-list loop can cost, whatever `replace` does with the list."""
    prog = Program.from_bytes(raw)
    pl = PatchList(prog)
    guards: dict[Insn, tuple[Insn, ...]] = {}
    for node in pl:
        insn = node.insn
        if insn.code == 0x3F:
            [Insn(0x55, insn.src, 0, 2, 0), Insn(0xAC, insn.dst, insn.dst), Insn(0x05, 0, 0, 1, 0), insn]  # made, then dropped
            guard = guards.get(insn)
            if guard is None:
                guard = guards[insn] = (Insn(0x55, insn.src, 0, 2, 0), Insn(0xAC, insn.dst, insn.dst), Insn(0x05, 0, 0, 1), insn)
            pl.replace(node, guard)
    return pl.linearize().to_bytes()


#: The README-loop series, each shown as a ratio to the shared-tuple `node` series: one function per
#: form, so a series times the loop a user writes and no choice of the harness inside it.
README_LOOPS: dict[str, Callable[[bytes], bytes]] = {"readme": readme_list, "readme-tuple": readme_tuple,
                                                      "readme-asm": readme_asm, "readme-build": readme_build,
                                                      "readme-floor": readme_floor}
README_FORMS = {"readme": "list", "readme-tuple": "tuple", "readme-asm": "asm", "readme-build": "build", "readme-floor": "floor"}
_LOOP_OF_FORM = {form: README_LOOPS[name] for name, form in README_FORMS.items()}


def run_readme(raw: bytes, form: str = "list") -> bytes:
    """The README loop in one of its forms (`README_FORMS`): a new patch at every site -- a fresh list,
    an equal new tuple, assembly text, or the README's named constructors -- where `run_node` reuses one tuple."""
    return _LOOP_OF_FORM[form](raw)


# The insert forms' guard, before the division and without jumping over it (a prepend cannot):
# ``if rS != 0 goto +2`` (onto the division); ``wD ^= wD``; ``rS = 1`` -- a zero divisor gives 0.
INSERT_GUARD_TEMPLATE = [Row(0x55, dst=S.src, off=2), Row(0xAC, dst=S.dst, src=S.dst), Row(0xB7, dst=S.src, imm=1), SITE]


def run_bulk_insert(raw: bytes) -> bytes:
    """The insert series' program by the bulk form: what `prepend_list` and `append_list` must write."""
    prog = Program.from_bytes(raw)
    sites = np.flatnonzero(prog.slots["code"] == 0x3F)
    return replace_sites(prog, [(sites, INSERT_GUARD_TEMPLATE)]).to_bytes()


def prepend_list(raw: bytes) -> bytes:
    """The README loop with `prepend`: a fresh list of three new `Insn`s before every division."""
    prog = Program.from_bytes(raw)
    pl = PatchList(prog)
    for node in pl:
        insn = node.insn
        if insn.code == 0x3F:
            pl.prepend(node, [Insn(0x55, insn.src, 0, 2, 0), Insn(0xAC, insn.dst, insn.dst), Insn(0xB7, insn.src, 0, 0, 1)])
    return pl.linearize().to_bytes()


def append_list(raw: bytes) -> bytes:
    """The README loop with `append`: the same fresh list after the instruction before every division."""
    prog = Program.from_bytes(raw)
    pl = PatchList(prog)
    before = None
    for node in pl:
        insn = node.insn
        if insn.code == 0x3F:
            pl.append(before, [Insn(0x55, insn.src, 0, 2, 0), Insn(0xAC, insn.dst, insn.dst), Insn(0xB7, insn.src, 0, 0, 1)])
        before = node
    return pl.linearize().to_bytes()


#: The insert forms of the README loop (same guard, same program: `run_bulk_insert`), shown as ratios
#: to the shared-tuple `node` series beside the `replace` ones.
INSERT_LOOPS: dict[str, Callable[[bytes], bytes]] = {"prepend-list": prepend_list, "append-list": append_list}


#: The pipeline series: the kernel's rewrites of a loaded program, on one patch list.
PIPELINE = ("dce", "div-guard", "blind")


def interpreter_floor(n: int) -> Callable[[], object]:
    """A Python loop over `n` items with one function call each: what any pure-Python
    one-instruction-at-a-time API pays before doing anything (the `node` series' floor)."""
    items = list(range(n))

    def visit(x: int) -> None:
        pass

    def loop() -> None:
        for x in items:
            visit(x)

    return loop


def run_pipeline(raw: bytes, passes: tuple[str, ...] = PIPELINE) -> bytes:
    from bpfpatch.passes import PassContext, run_passes

    return run_passes(Program.from_bytes(raw), passes, PassContext(seed=1)).to_bytes()


def run_reference(raw: bytes) -> bytes:
    from bpfpatch.reference import patch_sites_one_at_a_time

    prog = Program.from_bytes(raw)
    sites = np.flatnonzero(prog.slots["code"] == 0x3F).tolist()
    guard = [Insn(0x55, 1, 0, 2), Insn(0xAC), Insn(0x05, 0, 0, 1), Insn(0x3F, 0, 1)]
    return patch_sites_one_at_a_time(prog, sites, guard).to_bytes()


def copy_floor(raw: bytes, out_slots: int) -> Callable[[], object]:
    """One copy of the output array, as plain 8-byte words (the fastest NumPy copy)."""
    arr = np.zeros(out_slots, dtype=np.uint64)
    return lambda: arr.copy()


@dataclass
class Measurement:
    series: str
    n: int
    seconds: float | None
    note: str = ""


@dataclass
class BenchResult:
    machine: str
    measurements: list[Measurement] = field(default_factory=list)
    peak_rss_mib: float | None = None
    #: Peak RSS of each series' largest case, each in a fresh process.
    case_peak_mib: dict[str, float] = field(default_factory=dict)

    def get(self, series: str, n: int) -> float | None:
        for m in self.measurements:
            if m.series == series and m.n == n:
                return m.seconds
        return None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def machine_name() -> str:
    cpu = "unknown cpu"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Linux {platform.release()}, Python {platform.python_version()}, NumPy {np.__version__}"


def timed(fn: Callable[[], object]) -> float:
    """CPU seconds of one run of `fn` (GC collected first).

    CPU time, not wall time: on a shared VM a run may wait for the CPU, which is
    not the code's cost; page faults and other kernel work done for us still count.
    Best-of is taken over interleaved rounds (`run_benchmarks`), not here.
    """
    gc.collect()
    t = time.process_time()
    fn()
    return time.process_time() - t


_CASE_SCRIPT = """
import resource, sys
from bpfpatch.runtime import keep_freed_memory
keep_freed_memory()  # as the command line runs
from bpfpatch import bench
fn = {"bulk": bench.run_bulk, "node": bench.run_node, "pipeline": bench.run_pipeline}[sys.argv[1]]
fn(bench.division_program(int(sys.argv[2])))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def case_peak_rss_mib(series: str, n: int) -> float | None:
    """Peak RSS of one end-to-end run of `series` at size `n`, in a fresh Python process
    (interpreter and imports included), so no other case's memory is counted."""
    import subprocess
    import sys

    try:
        done = subprocess.run([sys.executable, "-c", _CASE_SCRIPT, series, str(n)], capture_output=True, text=True,
                              timeout=600, check=True)
        return int(done.stdout.split()[-1]) / 1024
    except (subprocess.SubprocessError, OSError, ValueError, IndexError):
        return None


def kernel_load_seconds(raw: bytes) -> float | None:
    """CPU time of BPF_PROG_LOAD for a socket filter (the verifier runs in our process,
    as system time), or None where bpf() is refused."""
    try:
        from bpfpatch.kernel import load_program
    except ImportError:
        return None
    t = time.process_time()
    try:
        with load_program(raw, "socket_filter"):
            pass
    except Exception:  # noqa: BLE001 - refused or rejected: no figure
        return None
    return time.process_time() - t


#: Whole-process series: one `bpfpatch` command on the N-division program, wall time from start to exit.
CLI_COMMANDS = {
    "cli-patch": ("patch", "{src}", "-o", "{out}", "--pass", "div-guard"),
    "cli-disasm": ("disasm", "{src}"),
}


def cli_seconds(series: str, src: str, out: str, pycache: str | None = None) -> tuple[float, float]:
    """(wall, CPU) seconds of one `python -m bpfpatch.cli` process running `series`' command (start-up
    included; CPU: the child's user + system time, which a busy shared machine does not inflate).

    `pycache`: a directory for the child's compiled modules, as an installed package has them
    (``PYTHONPYCACHEPREFIX``; a ``PYTHONDONTWRITEBYTECODE`` of this environment is dropped), so a
    run does not compile bpfpatch's sources again (about 0.07 s of CPU here).
    """
    import subprocess
    import sys

    import bpfpatch

    root = os.path.dirname(os.path.dirname(os.path.abspath(bpfpatch.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = pycache
    argv = [sys.executable, "-m", "bpfpatch.cli"] + [a.format(src=src, out=out) for a in CLI_COMMANDS[series]]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run_benchmarks(
    sizes: Iterable[int] = FULL_SIZES,
    *,
    budget: float = 30.0,
    series: Iterable[str] = ("floor", "bulk", "py-floor", "node", *README_FORMS, *INSERT_LOOPS, "pipeline", "reference", "kernel",
                             "cli-patch", "cli-disasm"),
    progress: Callable[[str], None] | None = None,
    rounds: int = 5,
) -> BenchResult:
    """Run every series at every size in this process; skip what would blow `budget` seconds."""
    sizes = sorted(sizes)
    want = set(series)
    result = BenchResult(machine_name())
    ref_last: tuple[int, float] | None = None
    kern_last: tuple[int, float] | None = None

    def note(msg: str) -> None:
        if progress:
            progress(msg)

    # The quadratic series start small so their curve shows before the budget stops them.
    if "reference" in want or "kernel" in want:
        for n in (2_500, 5_000, 10_000):
            if n < sizes[0]:
                raw = division_program(n)
                if "reference" in want:
                    note(f"reference n={n}")
                    ref_last = (n, timed(lambda: run_reference(raw)))
                    result.measurements.append(Measurement("reference", n, ref_last[1]))
                if "kernel" in want:
                    note(f"kernel n={n}")
                    t = kernel_load_seconds(raw)
                    if t is not None:
                        kern_last = (n, t)
                    result.measurements.append(Measurement("kernel", n, t, "" if t is not None else "bpf() refused"))
                    result.measurements.append(Measurement("kernel-nopatch", n, kernel_load_seconds(division_program(n, op=0x0F))))
    # The linear series run in interleaved rounds (every size once a round, best of the
    # rounds): a slow spell of this shared machine then hits one round of every size
    # alike instead of one size's every run, which is what the growth ratios compare.
    linear = [name for name in ("floor", "bulk", "node", *README_FORMS, *INSERT_LOOPS, "py-floor", "pipeline") if name in want]
    best: dict[tuple[str, int], float] = {}
    outputs: dict[int, int] = {}
    notes: dict[tuple[str, int], str] = {}
    raws = {n: division_program(n) for n in sizes}
    for n, raw in raws.items():
        expected = run_bulk(raw)
        outputs[n] = len(expected) // 8
        if n == sizes[-1]:
            for name in ("bulk", "node", "pipeline"):
                if name in want:
                    note(f"{name} n={n}: peak RSS in a fresh process")
                    peak = case_peak_rss_mib(name, n)
                    if peak is not None:
                        result.case_peak_mib[name] = peak
        if "pipeline" in want and n <= 200_000 and run_pipeline(raw, ("div-guard",)) != expected:
            # The div-guard pass alone must give the bulk form's bytes (checked, not timed).
            notes["pipeline", n] = "div-guard differs from bulk!"
        for name, loop in README_LOOPS.items():  # every form of the README loop gives the bulk form's bytes
            if name in want and n <= 200_000 and loop(raw) != expected:
                notes[name, n] = "differs from bulk!"
        inserted = run_bulk_insert(raw) if any(name in want for name in INSERT_LOOPS) and n <= 200_000 else None
        for name, loop in INSERT_LOOPS.items():  # the insert forms give the bulk form's bytes of their guard
            if name in want and inserted is not None and loop(raw) != inserted:
                notes[name, n] = "differs from bulk!"
    for r in range(rounds):
        for n, raw in raws.items():
            runs: dict[str, Callable[[], object]] = {
                "floor": copy_floor(raw, outputs[n]),
                "bulk": lambda: run_bulk(raw),
                "node": lambda: run_node(raw),
                "py-floor": interpreter_floor(n),
                "pipeline": lambda: run_pipeline(raw),
                **{name: (lambda loop=loop: loop(raw)) for name, loop in {**README_LOOPS, **INSERT_LOOPS}.items()},
            }
            for name in linear:
                note(f"{name} n={n} (round {r + 1}/{rounds})")
                # One run a round at every size: as many samples of a small size as of a
                # large one, so the minimum is not biased toward the small (warm) sizes.
                t = timed(runs[name])
                best[name, n] = min(best.get((name, n), t), t)
    cli = [name for name in CLI_COMMANDS if name in want]
    if cli:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="bpfpatch-bench-") as tmp:
            for n, raw in raws.items():
                with open(os.path.join(tmp, f"div{n}.bin"), "wb") as f:
                    f.write(raw)
            pycache = os.path.join(tmp, "pycache")
            for name in cli:  # an untimed first run of each command compiles the modules it imports
                note(f"{name}: compiling")
                cli_seconds(name, os.path.join(tmp, f"div{sizes[0]}.bin"), os.path.join(tmp, "out.bin"), pycache)
            for r in range(rounds):
                for n in raws:
                    for name in cli:
                        note(f"{name} n={n} (round {r + 1}/{rounds})")
                        t, cpu = cli_seconds(name, os.path.join(tmp, f"div{n}.bin"), os.path.join(tmp, "out.bin"), pycache)
                        best[name, n] = min(best.get((name, n), t), t)
                        best[name + "-cpu", n] = min(best.get((name + "-cpu", n), cpu), cpu)
    for n in sizes:
        for name in linear + cli + [name + "-cpu" for name in cli]:
            result.measurements.append(Measurement(name, n, best[name, n], notes.get((name, n), "")))
    for n, raw in raws.items():
        if "reference" in want:
            # Quadratic: predict from the last run and stop before the budget.
            if ref_last is None or ref_last[1] * (n / ref_last[0]) ** 2 <= budget:
                note(f"reference n={n}")
                t = timed(lambda: run_reference(raw))
                ref_last = (n, t)
                result.measurements.append(Measurement("reference", n, t))
            else:
                result.measurements.append(Measurement("reference", n, None, f"skipped: predicted > {budget:.0f} s"))
        if "kernel" in want:
            if n > 1_000_000 // 2:
                result.measurements.append(Measurement("kernel", n, None, "skipped: above the verifier's 1M limit"))
            elif kern_last is None or kern_last[1] * (n / kern_last[0]) ** 2 <= budget:
                note(f"kernel n={n}")
                t = kernel_load_seconds(raw)
                t0 = kernel_load_seconds(division_program(n, op=0x0F))
                if t is not None:
                    kern_last = (n, t)
                result.measurements.append(Measurement("kernel", n, t, "" if t is not None else "bpf() refused"))
                result.measurements.append(Measurement("kernel-nopatch", n, t0))
            else:
                result.measurements.append(Measurement("kernel", n, None, f"skipped: predicted > {budget:.0f} s"))
    result.peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the whole run
    return result


def growth(result: BenchResult, series: str, big: int, small: int) -> float | None:
    a, b = result.get(series, big), result.get(series, small)
    return a / b if a and b else None


#: Size pairs a growth figure is reported for, best first (1M/100k is the issues' target).
GROWTH_PAIRS = ((1_000_000, 100_000, "1M/100k"), (1_000_000, 95_000, "1M/95k"), (100_000, 15_000, "100k/15k"))


def headline_growth(result: BenchResult, series: str) -> tuple[str, float] | None:
    """The series' growth over the first size pair of `GROWTH_PAIRS` it was run at."""
    for big, small, label in GROWTH_PAIRS:
        g = growth(result, series, big, small)
        if g:
            return label, g
    return None


def plot(result: BenchResult, path: str) -> None:
    """Log-log chart of time vs N for every series (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5.5))
    names = [s for s in SERIES_ORDER if any(m.series == s for m in result.measurements)]
    colors = plt.get_cmap("tab20").colors  # one colour per series (the default cycle repeats after ten)
    for k, name in enumerate(names):
        pts = sorted((m.n, m.seconds) for m in result.measurements if m.series == name and m.seconds)
        if pts:
            wall = name in CLI_COMMANDS  # whole processes: wall time, dashed
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=colors[k % len(colors)],
                    linestyle="--" if wall else "-", label=name + (" (wall)" if wall else ""))
    ax.plot(list(SEED_FIGURES), list(SEED_FIGURES.values()), "k--", marker="x", label="seed thread (2019 kernel, C)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("patched instructions N")
    ax.set_ylabel("seconds, CPU (decode + patch + linearize + encode)")
    ax.set_title("bpfpatch: divide-by-zero guard at N sites")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    # Atomic like every output: a temp file beside the target, then rename.
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
    finally:
        plt.close(fig)


SERIES_ORDER = ("floor", "bulk", "py-floor", "node", *README_FORMS, *INSERT_LOOPS, "pipeline", "reference", "kernel", "kernel-nopatch",
                "cli-patch", "cli-patch-cpu", "cli-disasm", "cli-disasm-cpu")
# Each bpfpatch series is also shown as a ratio to its floor (the README loop: to the shared-tuple loop).
_FLOOR_OF = {"bulk": "floor", "pipeline": "floor", "node": "py-floor", **{name: "node" for name in (*README_FORMS, *INSERT_LOOPS)}}


def fmt_seconds(sec: float | None) -> str:
    if sec is None:
        return "-"
    return f"{sec * 1000:.1f} ms" if sec < 1 else f"{sec:.2f} s"


def table_rows(result: BenchResult) -> tuple[list[int], list[list[str]]]:
    """(sizes, rows of cells): the table both `bpfpatch bench` and the README print."""
    sizes = sorted({m.n for m in result.measurements})
    rows = []
    for s in SERIES_ORDER:
        if not any(m.series == s and m.seconds for m in result.measurements):
            continue
        row = [s]
        for n in sizes:
            t, floor = result.get(s, n), result.get(_FLOOR_OF.get(s, ""), n)
            # The README loop against the shared tuple: the 2x / 2.5x targets need the decimals.
            digits = 2 if s in README_FORMS or s in INSERT_LOOPS else 0
            row.append(fmt_seconds(t) + (f" ({t / floor:.{digits}f}x)" if t and floor else ""))
        rows.append(row)
    rows.append(["seed thread (2019, C)"] + [fmt_seconds(SEED_FIGURES.get(n)) for n in sizes])
    return sizes, rows


def kernel_factor(result: BenchResult, series: str = "readme", n: int = KERNEL_COMPARE_N) -> float | None:
    """How many times faster `series` is than the kernel's load of the same N divisions (both CPU time, one run)."""
    t, k = result.get(series, n), result.get("kernel", n)
    return k / t if t and k else None


def own_cost_ratio(result: BenchResult, series: str, n: int) -> float | None:
    """The library's own per-site cost for `series`' patch form over the shared tuple's, the user's making
    of the instructions taken out: (series - readme-floor + node) / node at size `n`.

    readme-floor is the shared-tuple loop that also makes the README's three `Insn`s and their list at
    every site and drops them, so series - readme-floor is what `replace` pays for a new patch beyond a
    shared one (for the fresh list and the equal new tuple, whose making costs the same)."""
    t, floor, node = result.get(series, n), result.get("readme-floor", n), result.get("node", n)
    return (t - floor + node) / node if t and floor and node else None


def markdown_table(result: BenchResult) -> str:
    """The table as Markdown (for the README), seconds with the ratio to each series' floor."""
    sizes, rows = table_rows(result)
    lines = ["| series | " + " | ".join(f"{n:,}" for n in sizes) + " |", "|---" * (len(sizes) + 1) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)

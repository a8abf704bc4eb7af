"""Adversarial programs for the passes, and their growth table (issue 20: no super-linear input).

Each generator builds a program of about `n` instructions whose shape has made
a pass super-linear before: chains of dead subprograms (``call next; exit``),
live call chains, chains of backward gotos, deeply nested loops, many jumps
into one instruction, thousands of subprograms, long ld_imm64 runs, and
``n`` unpredictable branches.  `growth_table` times every pass and analysis on every
generator at N and 4N in this process (CPU time, best of `rounds`) and
measures the peak Python allocation per instruction at N and 4N (tracemalloc,
in a separate run after the timed ones, so imports and caches are not
counted), so that ``time(4N) / time(N) <= 5`` and ``<= 300`` bytes per
instruction can be read off one table.  The verifier (and the kernel pass, which
runs it) gets a budget that grows with the program, `verifier_budget`: 1.25
processed instructions an instruction, so that on a program that is a state
explosion by design (nested loops, unknown branches: every run ends at the
budget) time(4N)/time(N) measures the cost of a processed instruction as the
program grows instead of two runs of the same fixed length, and the bytes per
instruction at N and 4N are the same measure.  The verifier's rows also give the
peak per processed instruction: it keeps a state per processed instruction
(``keep_states``) and one per checkpoint.  Printed by ``bpfpatch bench
--adversarial``; it is a benchmark, not a timed test.
"""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from dataclasses import dataclass
from typing import Callable

from bpfpatch.isa import Insn
from bpfpatch.program import Program

EXIT = Insn(0x95)
PRANDOM = Insn(0x85, 0, 0, 0, 7)  # r0 = bpf_get_prandom_u32(): a value no analysis knows


def dead_subprogram_chain(n: int) -> Program:
    """main returns; n/2 subprograms nobody calls, each ``call next; exit``."""
    k = max(1, n // 2 - 1)
    insns = [Insn(0xB7, 0, 0, 0, 0), EXIT]
    for i in range(k):
        insns += [Insn(0x85, 0, 1, 0, 1) if i < k - 1 else Insn(0xB7, 0, 0, 0, 0), EXIT]
    return Program.from_insns(insns)


def live_call_chain(n: int) -> Program:
    """main calls subprogram 0, which calls 1, ... (n/2 deep), the last returns."""
    k = max(1, n // 2 - 1)
    insns = [Insn(0x85, 0, 1, 0, 1), EXIT]
    for i in range(k):
        insns += [Insn(0x85, 0, 1, 0, 1) if i < k - 1 else Insn(0xB7, 0, 0, 0, 0), EXIT]
    return Program.from_insns(insns)


def backward_goto_chain(n: int) -> Program:
    """``w0 = 0; goto last``; block k: ``r2 = 1; goto block k-1``; block 0 goes to the exit."""
    k = max(1, n // 2 - 1)
    insns = [Insn(0xB4, 0, 0, 0, 0), Insn(0x05, 0, 0, 2 * k - 2, 0)]
    for i in range(k):
        here = 3 + 2 * i
        dest = 2 + 2 * (i - 1) if i else 2 + 2 * k
        insns += [Insn(0xB7, 2, 0, 0, 1), Insn(0x05, 0, 0, dest - here - 1, 0)]
    return Program.from_insns(insns + [EXIT])


def nested_loops(n: int) -> Program:
    """n/2 loops nested in each other: headers ``r2 += 1`` in a row, then the back edges
    ``if r6 > i goto header_i`` innermost first (r6 unknown)."""
    k = max(1, (n - 5) // 2)
    insns = [PRANDOM, Insn(0xBF, 6, 0), Insn(0xB4, 0, 0, 0, 0), Insn(0xB7, 2, 0, 0, 0)]
    insns += [Insn(0x07, 2, 0, 0, 1)] * k
    base = 4
    for j in range(k):
        i = k - 1 - j  # innermost loop closes first
        here = base + k + j
        insns.append(Insn(0x25, 6, 0, base + i - here - 1, i))
    return Program.from_insns(insns + [EXIT])


def jump_fan_in(n: int) -> Program:
    """n-3 conditional jumps on an unknown value, all into the final exit."""
    k = max(1, n - 3)
    insns = [PRANDOM, Insn(0xBF, 1, 0)]
    insns += [Insn(0x15, 1, 0, k - 1 - i, i) for i in range(k)]
    return Program.from_insns(insns + [EXIT])


def many_subprograms(n: int) -> Program:
    """main calls n/3 subprograms one after another; each is ``r0 = 1; exit``."""
    k = max(1, n // 3)
    insns = []
    for i in range(k):
        insns.append(Insn(0x85, 0, 1, 0, (k - i) + 2 * i))  # the i-th subprogram after main's exit
    insns.append(EXIT)
    for _ in range(k):
        insns += [Insn(0xB7, 0, 0, 0, 1), EXIT]
    return Program.from_insns(insns)


def ld_imm64_run(n: int) -> Program:
    """n/2 ld_imm64 (two slots each) into r0, then exit."""
    k = max(1, n // 2)
    return Program.from_insns([Insn(0x18, 0, 0, 0, (i << 33) | 5) for i in range(k)] + [EXIT])


def unknown_branches(n: int) -> Program:
    """n/2 branches ``if r1 == i goto +1; r0 += 1`` on an unknown r1 (dce on 1M branches)."""
    k = max(1, (n - 4) // 2)
    insns = [PRANDOM, Insn(0xBF, 1, 0), Insn(0xB7, 0, 0, 0, 0)]
    for i in range(k):
        insns += [Insn(0x15, 1, 0, 1, i), Insn(0x07, 0, 0, 0, 1)]
    return Program.from_insns(insns + [EXIT])


GENERATORS: dict[str, Callable[[int], Program]] = {
    "dead-subprogram chain": dead_subprogram_chain,
    "live call chain": live_call_chain,
    "backward-goto chain": backward_goto_chain,
    "nested loops": nested_loops,
    "jump fan-in": jump_fan_in,
    "many subprograms": many_subprograms,
    "ld_imm64 run": ld_imm64_run,
    "unknown branches": unknown_branches,
}
PASSES = ("dce", "zext", "div-guard", "blind", "ctx", "kernel")
#: The analyses timed beside the passes: the flow graph (blocks, dominators, liveness), the
#: register liveness alone, and the verifier's abstract interpretation (with a bounded budget: a
#: program it gives up on, or rejects, is a result too; the kernel pass runs it with the same budget).
ANALYSES = ("flowgraph", "liveness", "verifier")
#: The program type the kernel pass and the verifier take the generators for.
PROG_TYPE = "socket_filter"
#: The verifier's budget per instruction of the program (`verifier_budget`): on nested loops and unknown
#: branches every run ends at it; every other generator is verified within it.  (The kernel's 1M
#: processed instructions are about as many for a program of its largest size, 1M instructions.)
VERIFIER_BUDGET_PER_INSN = 1.25


def verifier_budget(prog: Program) -> int:
    """The budget of processed instructions the verifier and the kernel pass get on `prog` in the table:
    `VERIFIER_BUDGET_PER_INSN` an instruction (20,000 at 16,000 instructions)."""
    return max(1, int(VERIFIER_BUDGET_PER_INSN * len(prog.slots)))
#: The issue's limits.
MAX_GROWTH, MAX_BYTES_PER_INSN = 5.0, 300.0
#: The running kernel's structures a pending branch and an instruction cost it at least (sizes from its BTF,
#: `kernel_floor`): a pending branch is a ``bpf_verifier_stack_elem`` (which holds the ``bpf_verifier_state``)
#: and one ``bpf_func_state`` a frame (R0-R10 as ``bpf_reg_state``, kzalloc'd); every instruction has a
#: ``bpf_insn_aux_data``.
KERNEL_STRUCTS = ("bpf_verifier_stack_elem", "bpf_func_state", "bpf_insn_aux_data")


@dataclass
class GrowthRow:
    """One generator and pass: CPU seconds at N and 4N, their ratio, peak bytes per instruction at 4N
    (`bytes_n`: at N; `bytes_per_processed`: the verifier's peak per processed instruction at 4N)."""

    generator: str
    pass_name: str
    n: int
    t_n: float
    t_4n: float
    bytes_per_insn: float
    bytes_n: float | None = None
    bytes_per_processed: float | None = None
    #: the verifier's most pending branches at once at 4N, and what the running kernel's structures for
    #: them and its per-instruction data take at least, per input instruction (`kernel_floor`)
    pending: int | None = None
    kernel_floor: float | None = None
    #: the median over the rounds of time(4N) / time(N) within a round (`_cpu_pair`), or None: t_4n / t_n
    ratio: float | None = None

    @property
    def growth(self) -> float:
        """time(4N) / time(N): the median of the rounds' ratios where measured, else the two bests' ratio."""
        if self.ratio is not None:
            return self.ratio
        return self.t_4n / self.t_n if self.t_n > 0 else float("inf")

    @property
    def ok(self) -> bool:
        return self.growth <= MAX_GROWTH and self.bytes_per_insn <= MAX_BYTES_PER_INSN


def _run(prog: Program, name: str, budget: int | None = None) -> object:
    from bpfpatch.errors import BpfPatchError

    budget = verifier_budget(prog) if budget is None else budget

    if name == "liveness":
        from bpfpatch.analysis.liveness import list_liveness
        from bpfpatch.patch import PatchList

        return list_liveness(PatchList(prog))
    if name == "flowgraph":
        from bpfpatch.analysis.cfg import FlowGraph
        from bpfpatch.patch import PatchList

        graph = FlowGraph(PatchList(prog))
        graph.dominators(0)
        return graph.live_before(graph.nodes[0])
    if name == "verifier":
        from bpfpatch.analysis.verifier import analyze

        try:
            return analyze(prog, PROG_TYPE, budget=budget)
        except BpfPatchError as exc:  # rejected or over the budget: what the kernel would say too
            return exc
    from bpfpatch.passes import PassContext, run_passes

    ctx = PassContext(seed=1, prog_type=PROG_TYPE, options={"kernel": {"analysis": {"budget": budget}}})
    try:
        return run_passes(prog, [name], ctx, relax_long_jumps=True)
    except BpfPatchError as exc:  # the kernel pass: its analysis rejected the program or ran out of budget
        if name != "kernel":
            raise
        return exc


#: `growth_table`'s timing: each pair of sizes runs at least its rounds, and more (up to `MAX_ROUNDS`) until
#: it has taken this much CPU time.
MIN_PAIR_SECONDS, MAX_ROUNDS = 1.0, 30


def _cpu_pair(small: Callable[[], object], big: Callable[[], object], rounds: int,
              min_seconds: float = MIN_PAIR_SECONDS) -> tuple[float, float, float]:
    """The least CPU time of `small` and of `big` over `rounds` rounds, each round one run of each, and the
    median over the rounds of big's time / small's: a slow spell of the machine reaches both runs of a round
    alike (a growth ratio of two bests taken a few seconds apart flapped past 5x; so did the two bests of
    alternating rounds, 3.7x alone, 5.0-5.4x in the table, each best from another spell).  What the process held before a run is frozen out of the
    cycle collector's reach (`gc.freeze`) while it runs: a full collection the run triggers walks the run's own
    objects, as in a fresh process, not every earlier row's too (jump fan-in's flow graph: 72 ms at 16k alone,
    118 ms as a row of the table)."""
    best = [float("inf"), float("inf")]
    ratios: list[float] = []
    spent, done = 0.0, 0
    # short runs (a flow graph of 16k instructions takes 30-100 ms) get more rounds, until the pair has taken
    # `min_seconds`: the best of three of a few milliseconds flapped a linear 3.8x past 5x
    while done < rounds or (spent < min_seconds and done < MAX_ROUNDS):
        done += 1
        took_pair = [0.0, 0.0]
        for k, fn in enumerate((small, big)):
            gc.collect()
            gc.freeze()
            try:
                t = time.process_time()
                fn()
                took = time.process_time() - t
                best[k] = min(best[k], took)
                took_pair[k] = took
                spent += took
            finally:
                gc.unfreeze()
        ratios.append(took_pair[1] / took_pair[0] if took_pair[0] > 0 else float("inf"))
    return best[0], best[1], statistics.median(ratios)


def peak_stats(prog: Program, name: str, budget: int | None = None) -> tuple[int, int | None, int | None]:
    """(peak Python allocation of one run, tracemalloc; the instructions the verifier processed and its most
    pending branches at once, or None).  `budget`: the verifier's and the kernel pass's (`verifier_budget`
    unless given).  The process-wide bounds memo is emptied first, so the run pays for
    its own entries as a fresh process does (earlier runs of the same program would have filled it)."""
    from bpfpatch.analysis.state import forget_synced

    forget_synced()
    gc.collect()
    tracemalloc.start()
    try:
        out = _run(prog, name, budget)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    analysis = getattr(out, "analysis", out)
    return peak, getattr(analysis, "processed", None), getattr(analysis, "peak_pending", None)


def peak_bytes(prog: Program, name: str, budget: int | None = None) -> tuple[int, int | None]:
    """(peak Python allocation of one run, tracemalloc; the instructions the verifier processed, or None;
    `budget` as `peak_stats`'s)."""
    return peak_stats(prog, name, budget)[:2]


def kernel_floor(pending: int, slots: int, sizes: "dict[str, int]") -> float:
    """The bytes per instruction the running kernel's verifier takes at least for `pending` branches waiting at
    once on a program of `slots` instructions: a stack element and one frame a branch, an aux record an
    instruction (`sizes`: `KERNEL_STRUCTS` from its BTF).  Its slab rounding (a 1,280-byte frame takes 2 KiB),
    jump histories and explored states come on top."""
    per_branch = sizes["bpf_verifier_stack_elem"] + sizes["bpf_func_state"]
    return (pending * per_branch + slots * sizes["bpf_insn_aux_data"]) / max(1, slots)


def peak_bytes_per_insn(prog: Program, name: str) -> float:
    """Peak Python allocation of one pass run (tracemalloc), per instruction of the input."""
    return peak_bytes(prog, name)[0] / max(1, len(prog.slots))


def growth_table(n: int = 4_000, *, passes: tuple[str, ...] = PASSES + ANALYSES, rounds: int = 3,
                 progress: Callable[[str], None] | None = None, min_seconds: float = MIN_PAIR_SECONDS,
                 kernel_sizes: "dict[str, int] | None" = None) -> list[GrowthRow]:
    """Every generator x pass (and analysis) at `n` and `4n` instructions (`kernel_sizes`: the running kernel's
    `KERNEL_STRUCTS`, for the verifier rows' `kernel_floor`; `min_seconds`: each pair's least CPU time, in more
    rounds than `rounds` where the runs are short, `_cpu_pair`)."""
    rows = []
    for gname, gen in GENERATORS.items():
        small, big = gen(n), gen(4 * n)
        for name in passes:
            if progress:
                progress(f"{gname} / {name}")
            t_n, t_4n, ratio = _cpu_pair(lambda: _run(small, name), lambda: _run(big, name), rounds, min_seconds)
            peak_n = peak_bytes(small, name)[0]
            peak_4n, processed, pending = peak_stats(big, name)
            verifier = name == "verifier"
            rows.append(GrowthRow(gname, name, n, t_n, t_4n, peak_4n / max(1, len(big.slots)),
                                  peak_n / max(1, len(small.slots)),
                                  peak_4n / processed if verifier and processed else None,
                                  pending if verifier else None,
                                  kernel_floor(pending or 0, len(big.slots), kernel_sizes)
                                  if verifier and kernel_sizes else None, ratio))
    return rows


def format_growth_table(rows: list[GrowthRow]) -> str:
    """The table as Markdown."""
    out = ["| generator | pass or analysis | N | time(N) | time(4N) | growth | bytes/insn (N) | bytes/insn (4N) "
           "| bytes/processed insn (4N) | pending branches (4N) | kernel floor bytes/insn (4N) | ok |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        b_n = "" if r.bytes_n is None else f"{r.bytes_n:.0f}"
        b_p = "" if r.bytes_per_processed is None else f"{r.bytes_per_processed:.0f}"
        pend = "" if r.pending is None else f"{r.pending:,}"
        floor = "" if r.kernel_floor is None else f"{r.kernel_floor:.0f}"
        out.append(f"| {r.generator} | {r.pass_name} | {r.n:,} | {r.t_n * 1e3:.1f} ms | {r.t_4n * 1e3:.1f} ms | "
                   f"{r.growth:.1f} | {b_n} | {r.bytes_per_insn:.0f} | {b_p} | {pend} | {floor} | "
                   f"{'yes' if r.ok else 'NO'} |")
    return "\n".join(out)


__all__ = ["ANALYSES", "GENERATORS", "GrowthRow", "KERNEL_STRUCTS", "MAX_BYTES_PER_INSN", "MAX_GROWTH", "MAX_ROUNDS", "MIN_PAIR_SECONDS", "PASSES", "PROG_TYPE",
           "VERIFIER_BUDGET_PER_INSN", "format_growth_table", "growth_table", "kernel_floor", "peak_bytes", "peak_bytes_per_insn", "peak_stats",
           "verifier_budget"]

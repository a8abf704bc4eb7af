"""`bpfpatch bench`: the seed's table, every series in one run."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from bpfpatch import bench as B
from bpfpatch.cli.app import app
from bpfpatch.cli.output import write_atomic
from bpfpatch.errors import BpfPatchError


def render(result: B.BenchResult, console: Console) -> None:
    sizes, rows = B.table_rows(result)
    table = Table(title=f"N divide-by-zero guards, end to end (decode, patch, linearize, encode)\n{result.machine}")
    table.add_column("series")
    for n in sizes:
        table.add_column(f"{n:,}", justify="right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    for s in ("floor", "bulk", "py-floor", "node", *B.README_FORMS, *B.INSERT_LOOPS, "pipeline"):
        g = B.headline_growth(result, s)
        if g:
            console.print(f"growth {s}: {g[1]:.1f}x for {g[0]}")
    for s in ("readme", "readme-tuple", "readme-asm", "readme-build", "node", "bulk"):
        f = B.kernel_factor(result, s)
        if f:
            console.print(f"{s} at N={B.KERNEL_COMPARE_N:,}: {f:.0f}x faster than the kernel's load of the same program"
                          + (f" (target: at least {B.KERNEL_COMPARE_FACTOR:.0f}x)" if s == "readme" else ""))
    n = max((m.n for m in result.measurements if m.series == "readme-floor" and m.seconds), default=None)
    for s in ("readme", "readme-tuple"):
        r = B.own_cost_ratio(result, s, n) if n else None
        if r:
            console.print(f"{s} at N={n:,}: replace's own cost per site {r:.2f}x the shared tuple's, the user's "
                          f"Insn(...) calls taken out ({s} - readme-floor + node; target: at most 2x)")
    for s in B.INSERT_LOOPS:  # the insert forms against replace's: the same three fresh Insns a site
        n = max((m.n for m in result.measurements if m.series == s and m.seconds and result.get("readme", m.n) and result.get("node", m.n)), default=None)
        if n is not None:
            console.print(f"{s} at N={n:,}: {result.get(s, n) / result.get('node', n):.2f}x node, "
                          f"{result.get(s, n) / result.get('readme', n):.2f}x readme (replace)")
    for s, target in (("cli-patch", 0.5), ("cli-disasm", 1.0)):
        n = max((m.n for m in result.measurements if m.series == s and m.seconds), default=None)
        if n is not None:
            cpu = result.get(s + "-cpu", n)
            console.print(f"{s} (whole process, start-up included) at N={n:,}: {result.get(s, n):.2f} s wall"
                          + (f", {cpu:.2f} s CPU" if cpu else "") + (f" (target at 1M: {target} s wall)" if n == 1_000_000 else ""))
    if result.case_peak_mib:
        n = max(m.n for m in result.measurements)
        cases = ", ".join(f"{k} {v:.0f} MiB" for k, v in result.case_peak_mib.items())
        console.print(f"peak RSS of one N={n:,} run, each in a fresh process: {cases}")
    if result.peak_rss_mib:
        console.print(f"peak RSS of the whole run: {result.peak_rss_mib:.0f} MiB")


#: N of the adversarial growth table a default `bpfpatch bench` run prints after the seed's table: the
#: size --adversarial takes (best of 3 rounds, as it), as smaller programs would show the
#: verifier's fixed cost (a peak of 0.1-0.2 MB on 40-instruction generators) as bytes per instruction.
ADVERSARIAL_N = 4_000
DEFAULT_SERIES = ("floor,bulk,py-floor,node,readme,readme-tuple,readme-asm,readme-build,readme-floor,prepend-list,append-list,pipeline,"
                  "reference,kernel,cli-patch,cli-disasm,"
                  "adversarial")


@app.command("bench")
def bench(
    quick: bool = typer.Option(False, "--quick", help="N = 15k, 20k, 45k, 100k only (about a minute)"),
    sizes: Optional[str] = typer.Option(None, "--sizes", help="comma-separated N values"),
    series: str = typer.Option(DEFAULT_SERIES, "--series",
                               help="series to run; cli-*: whole `bpfpatch` processes, wall time with start-up; adversarial: "
                                    "the growth table of --adversarial, after the table (not with --quick unless named)"),
    budget: float = typer.Option(30.0, "--budget", help="seconds a quadratic run may take"),
    rounds: int = typer.Option(5, "--rounds", min=1, help="interleaved rounds of the linear series (best kept)"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the results as JSON"),
    plot_out: Optional[Path] = typer.Option(None, "--plot", help="draw a log-log chart (PNG)"),
    markdown: bool = typer.Option(False, "--markdown", help="also print the table as Markdown"),
    adversarial: bool = typer.Option(False, "--adversarial", help="instead: every pass on adversarial programs, time(4N)/time(N) and bytes/insn"),
) -> None:
    """Time every series on the seed's workload and print the table."""
    if adversarial:
        print(_adversarial_table(1_000 if quick else ADVERSARIAL_N, quick))
        return
    names = [x for x in series.split(",") if x]
    with_adversarial = "adversarial" in names and not (quick and series == DEFAULT_SERIES)
    names = [x for x in names if x != "adversarial"]
    ns = [int(x) for x in sizes.split(",")] if sizes else list(B.QUICK_SIZES if quick else B.FULL_SIZES)
    console = Console()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task("benchmarking", total=None)
        result = B.run_benchmarks(
            ns,
            budget=budget if not quick else min(budget, 10.0),
            series=names,
            rounds=rounds,
            progress=lambda msg: progress.update(task, description=msg),
        )
    render(result, console)
    if markdown:
        print(B.markdown_table(result))
    if json_out:
        write_atomic(json_out, result.to_json().encode())
    if plot_out:
        try:
            B.plot(result, str(plot_out))
        except ImportError as exc:
            raise BpfPatchError(f"--plot needs matplotlib (pip install 'bpfpatch[bench]'): {exc}") from exc
        console.print(f"chart written to {plot_out}")
    if with_adversarial:  # the same table as --adversarial
        print(f"\nadversarial programs: every pass and analysis at N = {ADVERSARIAL_N:,} and 4N, time(4N)/time(N), "
              f"bytes per instruction at 4N ({'one round' if quick else 'best of 3'}, as --adversarial)")
        print(_adversarial_table(ADVERSARIAL_N, quick))


def _adversarial_table(n: int, quick: bool) -> str:
    """The growth table at `n` as Markdown: best of 3 rounds, more until a pair has taken a second (one round
    of a few milliseconds flaps past 5x); one round with --quick."""
    from bpfpatch.adversarial import MIN_PAIR_SECONDS, format_growth_table, growth_table

    return format_growth_table(growth_table(n, rounds=1 if quick else 3, min_seconds=0.0 if quick else MIN_PAIR_SECONDS,
                                          kernel_sizes=kernel_verifier_sizes()))


def kernel_verifier_sizes() -> "dict[str, int] | None":
    """The running kernel's `bpfpatch.adversarial.KERNEL_STRUCTS` sizes from its BTF (None without it)."""
    from bpfpatch.adversarial import KERNEL_STRUCTS
    from bpfpatch.btf.types import BtfKind
    from bpfpatch.btf.vmlinux import kernel_types

    kt = kernel_types()
    types = [kt.find(BtfKind.STRUCT, name) for name in KERNEL_STRUCTS] if kt is not None else [None]
    if any(t is None for t in types):
        return None
    return {name: t.size_or_type for name, t in zip(KERNEL_STRUCTS, types)}

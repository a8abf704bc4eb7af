"""`bpfpatch cover`: line and branch coverage of a BPF object, run in the kernel.

    bpfpatch cover OBJ.o -o DIR [--section S] [--prog-type T] [--inputs N | --inputs-from FILE] [--edges]
    bpfpatch cover instrument IN.o -o OUT.o [--edges]
    bpfpatch cover report OUT.o --counters FILE -o DIR
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from bpfpatch.cli.app import app
from bpfpatch.errors import BpfPatchError


def _summary(console: Console, files, cmap, counters, title: str) -> None:
    table = Table(title=title)
    for col in ("file", "lines", "hit", "%", "functions hit", "branches hit"):
        table.add_column(col, justify="left" if col == "file" else "right")
    tl = th = 0
    for name in sorted(files):
        fc = files[name]
        n, h = len(fc.lines), fc.lines_hit
        tl, th = tl + n, th + h
        fh = sum(1 for _ln, c in fc.functions.values() if c)
        bh = sum(1 for b in fc.branches if b[3])
        table.add_row(name, str(n), str(h), f"{100 * h / n:.1f}" if n else "-", f"{fh}/{len(fc.functions)}",
                      f"{bh}/{len(fc.branches)}" if fc.branches else "-")
    table.add_row("[bold]total[/bold]", str(tl), str(th), f"{100 * th / tl:.1f}" if tl else "-", "", "")
    console.print(table)
    blocks = [c for c in cmap.counters if c.kind == "block"]
    hit = sum(1 for c in blocks if counters[c.index])
    dead = f", {len(cmap.unreachable)} dead to the verifier (not reachable, no counter)" if cmap.unreachable else ""
    console.print(f"blocks: {hit}/{len(blocks)} executed{dead}; instrumentation: +{cmap.added_insns} instructions on "
                  f"{cmap.original_insns} ({cmap.spills} spills, {len(cmap.uninstrumented)} blocks without a counter)")


def _report(console: Console, cmap, counters, out_dir: Path, title: str, source_dirs: tuple[Path, ...] = ()) -> None:
    from bpfpatch.cover.report import genhtml, line_coverage, write_lcov

    out_dir.mkdir(parents=True, exist_ok=True)
    files = line_coverage(cmap, counters)
    trace = write_lcov(files, cmap, out_dir, source_dirs=source_dirs)
    index = genhtml(trace, out_dir, branches=bool(cmap.branches), title=title)
    _summary(console, files, cmap, counters, title)
    console.print(f"lcov tracefile: {trace}\nHTML report: {index}")


@app.command("cover")
def cover_cmd(
    args: List[str] = typer.Argument(..., help="OBJ.o | instrument IN.o | report OUT.o"),
    output: Path = typer.Option(..., "-o", "--output", help="report directory (OUT.o for instrument)"),
    section: Optional[List[str]] = typer.Option(None, "--section", help="program section(s) to run (default: every runnable one)"),
    prog_type: Optional[str] = typer.Option(None, "--prog-type", help="override libbpf's type from the section name"),
    inputs: int = typer.Option(2000, "--inputs", min=1, help="inputs generated per program, as check finds them (coverage-guided)"),
    inputs_from: Optional[Path] = typer.Option(None, "--inputs-from", help="pcap, or one hex packet per line"),
    seed: int = typer.Option(0, "--seed"),
    edges: bool = typer.Option(False, "--edges", help="count both outcomes of every branch"),
    counters: Optional[Path] = typer.Option(None, "--counters", help="report: `bpftool map dump ... -j` of the counters map"),
    source_dir: Optional[List[Path]] = typer.Option(None, "--source-dir", help="source tree(s) for the relative paths BTF names"),
) -> None:
    """Instrument every basic block with a counter, run in the kernel, write lcov + HTML coverage."""
    from bpfpatch.cover.instrument import instrument_object, read_cover_map
    from bpfpatch.fileio import write_atomic

    console = Console(stderr=False)
    if args[0] == "instrument":
        if len(args) != 2:
            raise BpfPatchError("usage: bpfpatch cover instrument IN.o -o OUT.o")
        data, cmap = instrument_object(Path(args[1]), edges=edges)
        write_atomic(output, data)
        console.print(f"{args[1]}: {len(cmap.counters)} counters in {output} (map .data.__bpfcover, "
                      f"+{cmap.added_insns} instructions on {cmap.original_insns}, {cmap.spills} spills)")
        return
    if args[0] == "report":
        from bpfpatch.cover.run import parse_counter_dump

        if len(args) != 2 or counters is None:
            raise BpfPatchError("usage: bpfpatch cover report OUT.o --counters DUMP.json -o DIR")
        cmap = read_cover_map(Path(args[1]))
        try:
            text = counters.read_text()
        except OSError as exc:
            raise BpfPatchError(f"{counters}: {exc.strerror}") from exc
        _report(console, cmap, parse_counter_dump(text, len(cmap.counters)), output, Path(args[1]).name,
                tuple(source_dir or ()))
        return
    if len(args) != 1:
        raise BpfPatchError("usage: bpfpatch cover OBJ.o -o DIR (or: cover instrument / cover report)")
    from bpfpatch.cover.run import read_inputs, run_coverage, searched_inputs

    obj_path = Path(args[0])
    packets = read_inputs(inputs_from) if inputs_from else \
        searched_inputs(obj_path, inputs, seed, programs=section or None, prog_type=prog_type)
    data, cmap = instrument_object(obj_path, edges=edges)
    with Progress(TextColumn("running"), BarColumn(), MofNCompleteColumn(), console=console, transient=True) as bar:
        task = bar.add_task("run", total=len(packets))
        result = run_coverage(obj_path, data, cmap, packets, programs=section or None, prog_type=prog_type,
                              progress=lambda done, total: bar.update(task, completed=done, total=total))
    for diff in result.differences:
        console.print(f"[red]behaviour changed[/red]: {diff}")
    console.print("runs: " + ", ".join(f"{s} x{n}" for s, n in result.runs.items()))
    _report(console, cmap, result.counters, output, obj_path.name, tuple(source_dir or ()))
    if result.differences:
        raise typer.Exit(1)

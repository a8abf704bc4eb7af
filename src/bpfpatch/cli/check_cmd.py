"""`bpfpatch check ORIGINAL REWRITTEN`: do both load, and behave the same?"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from bpfpatch.cli.app import app
from bpfpatch.kernel import Verdict, check_equivalence
from bpfpatch.loader import read_program

EXIT = {Verdict.EQUIVALENT: 0, Verdict.DIFFERENT: 1, Verdict.UNDECIDED: 2}


@app.command("check")
def check_cmd(
    original: Path = typer.Argument(...),
    rewritten: Path = typer.Argument(...),
    prog_type: Optional[str] = typer.Option(None, "--prog-type", help="socket_filter, sched_cls, xdp, ... (default: from the ELF section, else socket_filter)"),
    inputs: int = typer.Option(32, "--inputs"),
    seed: int = typer.Option(0, "--seed"),
    section: Optional[str] = typer.Option(None, "--section"),
    prove: bool = typer.Option(False, "--prove", help="prove equivalence for all inputs with an SMT solver"),
    max_len: int = typer.Option(128, "--max-len", help="--prove: packets up to this many bytes"),
    timeout: float = typer.Option(60.0, "--timeout", help="--prove: solver time limit, seconds"),
    rewritten_ctx: str = typer.Option("user", "--rewritten-ctx", help="--prove: 'kernel' if the rewritten program reads struct sk_buff (the ctx pass)"),
) -> None:
    """Exit 0 when equivalent on all inputs, 1 on a difference, 2 when it cannot decide."""
    a = read_program(original, section=section, linked=True)
    b = read_program(rewritten, section=section, linked=True)
    ptype = prog_type or a.meta.get("section") or "socket_filter"
    if prove:
        from bpfpatch.cli.prove_cmd import prove_and_report

        raise typer.Exit(prove_and_report(a, b, ptype, max_len=max_len, timeout=timeout, rewritten_ctx=rewritten_ctx))
    try:
        report = check_equivalence(a, b, ptype, inputs=inputs, seed=seed)
    except Exception as exc:  # an unknown section name as a type, say
        typer.echo(f"bpfpatch: cannot decide: {exc}", err=True)
        raise typer.Exit(2)
    console = Console()
    table = Table("", "original", "rewritten")
    for name, rep in (("accepted", None),):
        table.add_row(name, _acc(report.original), _acc(report.rewritten))
    for inp, ra, rb in report.rows[:8]:
        table.add_row(inp, str(ra), str(rb))
    if len(report.rows) > 8:
        table.add_row(f"... {len(report.rows) - 8} more", "", "")
    console.print(table)
    console.print(f"[bold]{report.verdict.value}[/bold]" + (f": {report.reason}" if report.reason else f" on {report.inputs_run} inputs"))
    if report.first_difference:
        console.print(f"first differing input ({report.first_difference['input']}): {report.first_difference['data'][:64]}...")
    raise typer.Exit(EXIT[report.verdict])


def _acc(rep) -> str:
    if rep is None:
        return "-"
    return "yes" if rep.accepted else f"no: {rep.error}"

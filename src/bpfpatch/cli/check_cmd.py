"""`bpfpatch check ORIGINAL REWRITTEN`: run both on the same inputs, compare everything the kernel shows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from bpfpatch.cli.app import app
from bpfpatch.errors import BpfPatchError
from bpfpatch.kernel.check import DEFAULT_INPUTS, DEFAULT_SECONDS, EXIT_CODES, USAGE_EXIT, Raw, Verdict, check
from bpfpatch.kernel.ctxlayout import LAYOUTS

_HELP = f"""Run ORIGINAL and REWRITTEN (ELF objects, loaded through libbpf with their maps and global
data; or raw instruction files) on the same inputs and compare, after every input, the return
value, the packet out, the context out and every map the program references.

\b
Exit codes, one line each:
  {EXIT_CODES[Verdict.NO_DIFFERENCE]}   no difference found: on N inputs, covering B of C blocks (X%)
  {EXIT_CODES[Verdict.DIFFERENT]}   different: the input (decoded and hex) and the first difference
  {EXIT_CODES[Verdict.UNDECIDED]}   undecided: why (no test run for the type, no root, a nondeterministic original)
  {EXIT_CODES[Verdict.REJECTED]}   rejected: the kernel refused a program (the verifier's line)
  {USAGE_EXIT}  usage or input error (missing file, bad option, --inputs < 1)

\b
What this kernel reports back, by program type:
""" + "\n".join(f"  {lay.describe()}" for lay in LAYOUTS.values()) + """

\b
Inputs refused by the kernel are skipped and counted (frames under 14 bytes; for skb types also
IPv4 frames under 34 bytes and IPv6 frames under 54: the search does not generate those).
Per-CPU maps: runs are pinned to one CPU. Hash maps are compared as sets of entries.
Maps larger than 64 KiB are compared every 256 inputs and at the end."""


def _source(path: Path):
    if not path.is_file():
        raise typer.BadParameter(f"{path}: no such file")
    data = path.read_bytes()
    return path if data[:4] == b"\x7fELF" else Raw(data, path.stem)


def _co_re_applied(path: Path, prog):
    """An ELF object's program with the CO-RE offsets libbpf writes for this kernel (what the kernel runs, as
    `bpfpatch.kernel.analysis.co_re_applied` gives analyze and the kernel pass); raw instructions as read."""
    if path.read_bytes()[:4] != b"\x7fELF":
        return prog
    from bpfpatch.elf import read_object
    from bpfpatch.kernel.analysis import co_re_applied

    return co_re_applied(prog, read_object(path))


@app.command("check", help=_HELP)
def check_cmd(
    original: Path = typer.Argument(..., help="the original: ELF object or raw instructions"),
    rewritten: Path = typer.Argument(..., help="the rewrite"),
    program: Optional[str] = typer.Option(None, "--program", "--section", help="one program, by name or section (default: every program)"),
    prog_type: Optional[str] = typer.Option(None, "--prog-type", help="override the type libbpf infers from the section (raw files: default socket_filter)"),
    inputs: int = typer.Option(DEFAULT_INPUTS, "--inputs", help="at most this many inputs per program"),
    seconds: float = typer.Option(DEFAULT_SECONDS, "--seconds", help="time budget of the search, per program"),
    seed: int = typer.Option(0, "--seed"),
    inputs_from: Optional[Path] = typer.Option(None, "--inputs-from", help="packets to use: pcap, pcapng, or one hex packet per line"),
    as_json: bool = typer.Option(False, "--json", help="the verdicts as one JSON record"),
    prove: bool = typer.Option(False, "--prove", help="prove equivalence for all inputs with an SMT solver"),
    max_len: int = typer.Option(128, "--max-len", help="--prove: packets up to this many bytes"),
    timeout: float = typer.Option(60.0, "--timeout", help="--prove: solver time limit, seconds (encoding the programs gives up at twice it)"),
    rewritten_ctx: str = typer.Option("user", "--rewritten-ctx", help="--prove: 'kernel' if the rewritten program reads struct sk_buff (the ctx pass), 'xlated' if it is the kernel's view (the kernel pass's output)"),
) -> None:
    from bpfpatch.kernel.packets import read_inputs

    if prove:
        from bpfpatch.cli.prove_cmd import prove_and_report
        from bpfpatch.loader import read_program

        try:  # an unreadable input is a usage error (64), as without --prove: 1 would read as a counterexample
            pa = _co_re_applied(original, read_program(original, section=program, linked=True))
            pb = _co_re_applied(rewritten, read_program(rewritten, section=program, linked=True))
            ptype = prog_type
            if ptype is None:
                from bpfpatch.progtype import section_prog_type

                sec = pa.meta.get("section")
                ptype = section_prog_type(sec, f"{original}: ") if sec else "socket_filter"
        except BpfPatchError as exc:
            typer.echo(f"bpfpatch check: error: {exc}", err=True)
            raise typer.Exit(USAGE_EXIT)
        raise typer.Exit(prove_and_report(pa, pb, ptype, max_len=max_len, timeout=timeout, rewritten_ctx=rewritten_ctx))

    if inputs < 1:
        raise typer.BadParameter(f"{inputs}: the number of inputs must be at least 1", param_hint="--inputs")
    a, b = _source(original), _source(rewritten)
    try:
        user = read_inputs(inputs_from) if inputs_from is not None else None
        report = check(a, b, program=program, prog_type=prog_type, inputs=user, budget=inputs, seconds=seconds, seed=seed)
    except BpfPatchError as exc:
        typer.echo(f"bpfpatch check: error: {exc}", err=True)
        raise typer.Exit(USAGE_EXIT)
    if as_json:
        typer.echo(json.dumps(report.record(), indent=1))
    else:
        for r in report.results:
            typer.echo(r.line())
            if r.difference:
                if r.difference["hex"]:
                    typer.echo(f"  input hex: {r.difference['hex']}")
                if r.difference.get("ctx_hex"):
                    typer.echo(f"  ctx hex:   {r.difference['ctx_hex']}")
            for note in r.not_compared:
                typer.echo(f"  note: {note}")
    raise typer.Exit(report.exit_code)

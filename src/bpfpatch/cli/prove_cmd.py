"""`bpfpatch check --prove`: the symbolic proof, its verdict, and a counterexample run on the kernel."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bpfpatch.prove import ProofVerdict, prove_equivalent

PROOF_EXIT = {ProofVerdict.PROVED: 0, ProofVerdict.COUNTEREXAMPLE: 1, ProofVerdict.UNDECIDED: 2}


def prove_and_report(a, b, prog_type: str, *, max_len: int, timeout: float, rewritten_ctx: str) -> int:
    """Prove, print the verdict (and both kernel runs of a counterexample); return the exit code."""
    result = prove_equivalent(a, b, prog_type, max_len=max_len, timeout=timeout, rewritten_ctx=rewritten_ctx)
    console = Console()
    console.print(f"[bold]{escape(str(result))}[/bold] ({result.seconds:.2f} s)")
    cex = result.counterexample
    if cex is not None:
        from bpfpatch.prove.replay import replay

        console.print(f"input: packet ({len(cex.packet)} bytes) {cex.packet.hex()}")
        shown = {k: v for k, v in cex.ctx.items() if v}
        if shown:
            console.print("context: " + ", ".join(f"{k}={v:#x}" for k, v in sorted(shown.items())))
        for name, content in cex.maps.items():
            for key, value in content.items():
                console.print(f"map {name}: {key.hex()} -> {value.hex()}")
        run = replay(a, b, cex, prog_type)
        table = Table("", "original", "rewritten")
        table.add_row("model: return value", str(cex.model_retvals[0]), str(cex.model_retvals[1]))
        if run.original is not None and run.rewritten is not None:
            table.add_row("kernel: return value", str(run.original.retval), str(run.rewritten.retval))
            table.add_row("kernel: packet out", run.original.data_out.hex()[:32], run.rewritten.data_out.hex()[:32])
        console.print(table)
        if run.error:
            console.print(f"kernel run: {run.error}")
        else:
            console.print("the kernel confirms the difference" if run.confirmed
                          else "the kernel does not see a difference on this input (the model's input is not reproducible there)")
    return PROOF_EXIT[result.verdict]

"""The typer application every command module registers itself on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="bpfpatch",
    help="Rewrite eBPF bytecode in linear time.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Rewrite eBPF bytecode in linear time: disasm, asm, patch, check, bench, demo."""

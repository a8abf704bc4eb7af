"""Run a counterexample on the kernel: both programs, the same concrete input, both results.

The input is what the prover's model found: packet bytes, the context fields
BPF_PROG_TEST_RUN lets a caller set, and map contents (each program gets its
own fresh maps, filled alike).  The counterexample is *confirmed* when the
kernel's results (return value, packet out, the context fields a test run
reports back, map contents) differ too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bpfpatch.errors import KernelError
from bpfpatch.kernel import load_program
from bpfpatch.kernel.ctxlayout import layout_of
from bpfpatch.kernel.equiv import with_fresh_maps
from bpfpatch.kernel.loader import TestRunResult
from bpfpatch.progtype import ProgType, prog_type_of
from bpfpatch.prove import layout as L
from bpfpatch.prove.equiv import Counterexample


@dataclass
class Replay:
    """Both kernel runs of one counterexample."""

    original: TestRunResult | None
    rewritten: TestRunResult | None
    error: str = ""
    maps_after: tuple[dict, dict] = ({}, {})  # (map, key) -> value after each run
    ctx_after: tuple[dict, dict] = ({}, {})  # the context fields the test run reported back, per run

    @property
    def confirmed(self) -> bool:
        """The kernel sees the programs differ on this input (return value, packet out, context or maps)."""
        a, b = self.original, self.rewritten
        return a is not None and b is not None and (
            (a.retval, a.data_out) != (b.retval, b.data_out) or self.maps_after[0] != self.maps_after[1]
            or self.ctx_after[0] != self.ctx_after[1])


def ctx_bytes(ptype: ProgType, ctx: dict[str, int]) -> bytes | None:
    """The ctx_in a test run accepts, with the settable fields the counterexample gives (zero
    elsewhere); given even when all are zero, so that the run reports the context back."""
    layout = layout_of(ptype)
    if ptype not in L.SKB_TYPES or layout is None or not layout.ctx_size:
        return None
    return layout.build({name: v for name, v in ctx.items() if name in layout.settable})


def _reported(ptype: ProgType, result: TestRunResult) -> dict[str, int]:
    layout = layout_of(ptype)
    if layout is None or result.ctx_out is None:
        return {}
    got = layout.decode(result.ctx_out)
    return {k: v for k, v in got.items() if not layout.reported or k in layout.reported}


def replay(original: Any, rewritten: Any, cex: Counterexample, prog_type: "ProgType | int | str",
           *, rewritten_prog_type: "ProgType | int | str | None" = None) -> Replay:
    """Run both programs on the counterexample's input in the running kernel."""
    ptype = prog_type_of(prog_type)
    ctx_in = ctx_bytes(ptype, cex.ctx)
    out: list[TestRunResult | None] = []
    after: list[dict] = []
    try:
        for prog in (original, rewritten):
            raw, maps = with_fresh_maps(prog, cex.maps)
            try:
                with load_program(raw, ptype) as lp:
                    out.append(lp.test_run(cex.packet, ctx_in))
                after.append({(n, k): m.lookup(k) for n, m in maps.items() for k in sorted(cex.map_keys.get(n, ()))})
            finally:
                for m in maps.values():
                    m.close()
    except KernelError as exc:
        out += [None] * (2 - len(out))
        return Replay(out[0], out[1], str(exc))
    return Replay(out[0], out[1], "", (after[0], after[1]), (_reported(ptype, out[0]), _reported(ptype, out[1])))


__all__ = ["Replay", "ctx_bytes", "replay"]

"""Rewrite an object in one call, adding a helper call: `python rewrite_object.py IN.o OUT.o`.

Every program section gets ``call bpf_get_prandom_u32`` at its entry, the result unused.  The
call clobbers r0-r5; at the entry only r1 (the context) is live, so r1 is kept in a register
liveness proves free and put back after the call.
"""
import sys

from bpfpatch.analysis.cfg import FlowGraph
from bpfpatch.elf.rewrite import rewrite_object
from bpfpatch.isa import build as b


class CallAtEntry:
    name = "call-at-entry"

    def run(self, pl, ctx) -> None:
        first = next(iter(pl))
        (free,) = FlowGraph(pl).free_registers(first, 1)    # callee-saved first: r9
        pl.prepend(first, [b.mov64_reg(free, 1), b.call_helper("get_prandom_u32"), b.mov64_reg(1, free)])


if __name__ == "__main__":
    rewrite_object(sys.argv[1], sys.argv[2], [CallAtEntry()])

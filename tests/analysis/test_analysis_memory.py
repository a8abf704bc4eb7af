"""Memory on adversarial programs (issue 20: at most 300 bytes an instruction): tracemalloc peaks, no timing.

The generators are `bpfpatch.adversarial`'s; each figure is the peak Python
allocation of one run after a warm-up run (imports and caches are not the
analysis's), divided by the program's instructions.
"""

from __future__ import annotations

import pytest

from bpfpatch.adversarial import GENERATORS, MAX_BYTES_PER_INSN, peak_bytes

N = 4_000


def _per_insn(prog, name: str) -> tuple[float, int | None]:
    peak_bytes(prog, name)  # warm-up
    peak, processed = peak_bytes(prog, name)
    return peak / len(prog.slots), processed


@pytest.mark.parametrize("gen", sorted(GENERATORS))
def test_flow_graph_and_liveness_stay_under_the_issues_bound(gen):
    prog = GENERATORS[gen](N)
    for name in ("flowgraph", "liveness"):
        per_insn, _ = _per_insn(prog, name)
        assert per_insn <= MAX_BYTES_PER_INSN, (gen, name, per_insn)


@pytest.mark.parametrize("gen", ["dead-subprogram chain", "live call chain", "ld_imm64 run"])
def test_verifier_setup_is_a_few_columns_and_one_aux_an_instruction(gen):
    # programs the verifier walks in a few steps (rejected at the call depth, or no branch): what
    # remains is per-instruction setup (aux, fields, marks, liveness), no list or dict each
    prog = GENERATORS[gen](N)
    from bpfpatch.analysis.verifier import analyze
    from bpfpatch.errors import BpfPatchError
    import gc
    import tracemalloc

    def run():
        try:
            analyze(prog, "socket_filter", keep_states=False, budget=20_000)
        except BpfPatchError:
            pass

    run()
    gc.collect()
    tracemalloc.start()
    try:
        run()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak / len(prog.slots) <= MAX_BYTES_PER_INSN, (gen, peak / len(prog.slots))


def test_kept_states_share_what_an_instruction_leaves_unchanged():
    # a straight line of ld_imm64: a state before and after every instruction is kept; shared where
    # unchanged they cost the same per instruction at 2k and 8k (the copied path history grew: 7 -> 19 KB)
    small, big = GENERATORS["ld_imm64 run"](2_000), GENERATORS["ld_imm64 run"](8_000)
    a, processed = _per_insn(small, "verifier")
    b, _ = _per_insn(big, "verifier")
    assert processed and processed >= len(small.slots) // 2
    assert b <= 1.2 * a and b <= 1_500, (a, b)

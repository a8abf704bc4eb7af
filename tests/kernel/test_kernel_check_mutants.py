"""`check` finds the mutants that behave differently (target: at least 95%), on programs we compile.

Mutants change one instruction of what libbpf loads (check_mutants.py): immediates, conditions,
offsets and sizes, stores to ctx and map values dropped, map keys, return values.  A mutant
"behaves differently" when some run of check shows it: the default check, or a run with four
times the budget and another seed.  Mutants the kernel refuses are counted apart (check says
"rejected" for them, which is right); those no run shows are listed with their kind (most are
equivalent: a byte load widened and masked, a u64 counter read as u32, a null check of a
lookup the verifier knows cannot fail, a store to tc_index the kernel never reports).
"""

from __future__ import annotations

from collections import Counter

import pytest

from bpfpatch.kernel.check import Relocated, Verdict, check
from bpfpatch.kernel.libbpf import load_object
from check_mutants import mutants, sample
from conftest import PROGS, compile_bpf

pytestmark = [pytest.mark.kernel, pytest.mark.slow]

PER_PROGRAM = 40  # sampled deterministically, every kind kept


def test_check_finds_mutants_that_behave_differently(objdir, capsys):
    rows = []
    total = Counter()
    for name in ("parse", "rewrite", "funcs", "maps", "ctx", "others"):
        obj = compile_bpf(PROGS / "check" / f"{name}.c", objdir)
        with load_object(obj) as lo:
            rels = {p: Relocated.of(lo, p) for p in lo.programs}
        for pname, rel in rels.items():
            if pname in ("coin", "probe_open"):
                continue  # nondeterministic / no test run: undecided by design
            c = Counter()
            for m in sample(mutants(rel.insns), PER_PROGRAM, seed=1):
                r = check(obj, Relocated(m.insns, rel.maps), program=pname).results[0]
                if r.verdict is Verdict.NO_DIFFERENCE:
                    big = check(obj, Relocated(m.insns, rel.maps), program=pname, budget=8000, seconds=6, seed=7).results[0]
                    c["found only by the bigger run" if big.verdict is Verdict.DIFFERENT else "shown by no run"] += 1
                else:
                    assert r.verdict in (Verdict.DIFFERENT, Verdict.REJECTED), (pname, str(m), r.line())
                    c[r.verdict.value] += 1
            rows.append((f"{name}.c", pname, c))
            total.update(c)
    found = total["different"]
    behaving = found + total["found only by the bigger run"]
    with capsys.disabled():
        print(f"\nmutants: found {found} of {behaving} that behave differently ({100 * found / behaving:.1f}%); "
              f"{total['rejected']} rejected by the kernel; {total['shown by no run']} shown by no run")
        for obj, pname, c in rows:
            print(f"  {obj} {pname}: {dict(c)}")
    assert behaving >= 100
    assert found >= 0.95 * behaving

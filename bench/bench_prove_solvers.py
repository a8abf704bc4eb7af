#!/usr/bin/env python3
"""z3 against cvc5 on the prover's own whole-program queries (SMT-LIB 2, the same text to both).

    python bench/bench_prove_solvers.py [--timeout 60]

Queries: every built-in pass's rewrite of generated 100-instruction programs and of the
xdp-tools objects (where installed), encoded whole (no region split) so the solver does the
work.  Prints a table; cvc5 (PyPI `cvc5`) is optional.
"""

import argparse
import glob
import time

import z3

from bpfpatch.passes import PassContext, run_passes
from bpfpatch.progtype import prog_type_of
from bpfpatch.prove.bench import generated_program
from bpfpatch.prove.corpus import elf_programs
from bpfpatch.prove.equiv import _encoders, exit_equal, merge_all, trace_equal


def query(a, b, ptype, ctx=None) -> str:
    env, ea, eb = _encoders(a, b, prog_type_of(ptype), 128, ctx)
    xa, xb = ea.run(((), 0), ea.initial_state()), eb.run(((), 0), eb.initial_state())
    _, fa = merge_all([(e.pc, e.state) for e in xa], ea.init_byte)
    _, fb = merge_all([(e.pc, e.state) for e in xb], eb.init_byte)
    checks = exit_equal(ea, fa, eb, fb) + trace_equal(ea.events, eb.events)
    s = z3.Solver()
    s.add(*env.assumptions)
    s.add(z3.Or([z3.Not(c) for _, c in checks]) if checks else z3.BoolVal(False))
    return s.to_smt2()


def run_z3(text: str, timeout: float) -> tuple[str, float]:
    s = z3.Solver()
    s.set("timeout", int(timeout * 1000))
    s.from_string(text)
    t = time.perf_counter()
    r = s.check()
    return str(r), time.perf_counter() - t


def run_cvc5(text: str, timeout: float) -> tuple[str, float]:
    import cvc5

    tm = cvc5.TermManager()
    solver = cvc5.Solver(tm)
    solver.setOption("tlimit-per", str(int(timeout * 1000)))
    solver.setOption("produce-models", "false")
    sm = cvc5.SymbolManager(tm)
    parser = cvc5.InputParser(solver, sm)
    parser.setStringInput(cvc5.InputLanguage.SMT_LIB_2_6, "(set-logic ALL)\n" + text.replace("(check-sat)", ""), "q")
    while True:
        cmd = parser.nextCommand()
        if cmd.isNull():
            break
        cmd.invoke(solver, sm)
    t = time.perf_counter()
    r = solver.checkSat()
    return str(r).lower(), time.perf_counter() - t


def cases():
    for seed in range(3):
        p = generated_program(100, seed=seed)
        for name in ("div-guard", "dce", "blind", "zext"):
            yield f"{name} on 100 insns (seed {seed})", p, run_passes(p, [name], PassContext(seed=seed)), "socket_filter"
    for path in sorted(glob.glob("/usr/lib/x86_64-linux-gnu/bpf/xdpfilt_*_udp.o")):
        for _, p, t in elf_programs(path):
            for name in ("blind", "zext"):
                yield f"{name} on {path.split('/')[-1]}", p, run_passes(p, [name], PassContext(seed=1)), t


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()
    try:
        import cvc5  # noqa: F401
        have_cvc5 = True
    except ImportError:
        have_cvc5 = False
    print("| query | z3 | cvc5 |\n|---|---|---|")
    for what, a, b, t in cases():
        text = query(a, b, t)
        rz = run_z3(text, args.timeout)
        rc = run_cvc5(text, args.timeout) if have_cvc5 else ("-", 0.0)
        print(f"| {what} | {rz[0]} {rz[1]:.2f} s | {rc[0]} {rc[1]:.2f} s |", flush=True)

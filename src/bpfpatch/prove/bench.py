"""The prover's benchmark: built-in passes on 100-instruction programs, one-site rewrites of 10,000.

`generated_program` makes a loop-free socket filter of about N instructions
(ALU on registers and the context's fields, forward branches, stack spills,
divisions by a field, a constant branch for dce); `run` proves each built-in
pass's rewrite of it and one-site rewrites of a large one, and returns rows
(what, slots before/after, verdict, seconds).  A printed table, not a timed test.
"""

from __future__ import annotations

import random
import time
from typing import NamedTuple

from bpfpatch.isa import Insn
from bpfpatch.program import Program
from bpfpatch.prove.equiv import prove_equivalent

ALU64_IMM = (0x07, 0x17, 0x27, 0x47, 0x57, 0x67, 0x77, 0xA7, 0xC7)  # add sub mul or and lsh rsh xor arsh
ALU32_IMM = (0x04, 0x14, 0x24, 0x44, 0x54, 0xA4)


class BenchRow(NamedTuple):
    """One timed proof."""

    what: str
    before: int
    after: int
    verdict: str
    seconds: float
    region: bool


def generated_program(n: int, *, seed: int = 0, divisions: int | None = None) -> Program:
    """A loop-free socket filter of about `n` instructions (`divisions` register divisions, default n/25)."""
    rng = random.Random(seed)
    divs = max(n // 25, 1) if divisions is None else divisions
    div_at = set(rng.sample(range(10, max(n - 10, 11)), min(divs, max(n - 20, 1))))
    out = [Insn(0xBF, 6, 1), Insn(0x61, 7, 6, 0, 0), Insn(0x61, 8, 6, 8, 0), Insn(0xB7, 0, 0, 0, 1)]
    out += [Insn(0xB7, r, 0, 0, rng.randint(-1000, 1000)) for r in (2, 3, 4, 5)]
    out += [Insn(0xB7, 9, 0, 0, 1), Insn(0x55, 9, 0, 1, 1), Insn(0xB7, 0, 0, 0, 42)]  # dead: r9 is 1
    while len(out) < n - 2:
        i = len(out)
        r = rng.choice((0, 2, 3, 4, 5))
        roll = rng.random()
        if i in div_at:
            out.append(Insn(0x3F if rng.random() < 0.5 else 0x9F, r, 7))  # r /= len  |  r %= len
        elif roll < 0.55:
            code = rng.choice(ALU64_IMM + ALU32_IMM)
            imm = rng.randint(0, 31) if code in (0x67, 0x77, 0xC7) else rng.randint(-5000, 5000)
            out.append(Insn(code, r, 0, 0, imm))
        elif roll < 0.75:
            out.append(Insn(rng.choice((0x0F, 0x1F, 0xAF, 0x4F, 0x0C)), r, rng.choice((2, 3, 4, 5, 7, 8))))
        elif roll < 0.85:
            skip = rng.randint(1, 4)
            out.append(Insn(rng.choice((0x25, 0x35, 0xA5, 0x55, 0x15, 0x65)), r, 0, skip, rng.randint(-100, 100)))
            out += [Insn(0x07, rng.choice((0, 2, 3)), 0, 0, rng.randint(1, 9)) for _ in range(skip)]
        elif roll < 0.93:
            slot = -8 * rng.randint(1, 8)
            out.append(Insn(0x7B, 10, r, slot, 0))
            out.append(Insn(0x79, rng.choice((2, 3, 4, 5)), 10, slot, 0))
        else:
            out.append(Insn(0x0F, 0, r))
    out += [Insn(0xBC, 0, 0), Insn(0x95)]
    return Program.from_insns(out)


def timed(what: str, a: Program, b: Program, **kw) -> BenchRow:
    t = time.perf_counter()
    res = prove_equivalent(a, b, "socket_filter", **kw)
    return BenchRow(what, len(a.slots), len(b.slots), res.verdict.value, time.perf_counter() - t, res.region is not None)


def run(*, small: int = 100, large: int = 10_000, seeds: int = 3) -> list[BenchRow]:
    """Every built-in pass on `seeds` programs of `small` instructions; one-site rewrites of `large`."""
    from bpfpatch.passes import PassContext, run_passes

    rows = []
    for seed in range(seeds):
        p = generated_program(small, seed=seed)
        for name in ("div-guard", "dce", "blind", "zext", "ctx"):
            q = run_passes(p, [name], PassContext(seed=seed))
            rows.append(timed(f"{name} on {small} insns (seed {seed})", p, q,
                              rewritten_ctx="kernel" if name == "ctx" else "user"))
        q = run_passes(p, ["div-guard", "dce", "blind", "zext"], PassContext(seed=seed))
        rows.append(timed(f"div-guard+dce+blind+zext on {small} insns (seed {seed})", p, q))
    big = generated_program(large, seed=7, divisions=1)
    q = run_passes(big, ["div-guard"])
    rows.append(timed(f"one-site div-guard on {large} insns", big, q))
    rows.append(timed(f"one-site div-guard on {large} insns, whole program (no region split)", big, q, use_region=False, timeout=20))
    insns = big.insns
    k = next(i for i in range(len(insns) // 2, len(insns)) if insns[i].code == 0x27)  # r *= imm
    mul = insns[k]
    swapped = insns[:k] + [Insn(0xBF, 11, mul.dst), Insn(0x27, 11, 0, 0, mul.imm), Insn(0xBF, mul.dst, 11)] + insns[k + 1:]
    q2 = Program.from_insns(swapped)
    rows.append(timed(f"one-site rewrite through AX on {large} insns", big, q2))
    bad = Program.from_insns(insns[:k] + [mul._replace(imm=mul.imm + 1)] + insns[k + 1:])
    rows.append(timed(f"one-site mutant `r *= imm+1` mid-program on {large} insns (often masked later)", big, bad, timeout=30))
    last = Program.from_insns(insns[:-2] + [Insn(0x04, 0, 0, 0, 1)] + insns[-1:])  # w0 = w0 -> w0 += 1
    rows.append(timed(f"one-site mutant before the exit on {large} insns", big, last, timeout=30))
    return rows


def table(rows: list[BenchRow]) -> str:
    """The rows as a markdown table."""
    lines = ["| proof | slots | verdict | seconds | region |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.what} | {r.before} -> {r.after} | {r.verdict} | {r.seconds:.2f} | {'yes' if r.region else 'no'} |")
    return "\n".join(lines)

#!/usr/bin/env python3
"""`bpfpatch.analysis` speed: our abstract interpretation vs the kernel verifying the same program.

    python bench/bench_analysis.py [--sizes 10000,100000,300000,1000000] [--rounds 3]   # needs root (bpf())

The program is a socket filter of N instructions made of 256-instruction
blocks (a branch both ways, a spill and a fill, a decided branch, ALU steps), so both verifiers fork at every block and prune the other way at the
branch target, where each keeps a checkpoint (two jumps per block meet the
kernel's add_new_state heuristic): both process ~N + N/256 instructions.  A
decided branch at the start skips 0.5% of the program (never processed), so
that the 1M-instruction program stays under the kernel's limit of 1M processed.

Times are CPU seconds of this process, best of the rounds, measured
interleaved in one run: for the kernel, the system time BPF_PROG_LOAD
spends verifying in this process's syscall (wall time is printed too: on a
loaded machine it includes waiting for a CPU); for us, `analyze` alone, and
the whole `kernel` pass (`run_passes(p, ["kernel"])`: analysis, dead code,
ctx conversion, fixups, zext on one patch list), whose growth 100k -> 1M
the issue bounds by 12.
"""

from __future__ import annotations

import argparse
import struct
import sys
import time

from bpfpatch.analysis.verifier import analyze
from bpfpatch.kernel import load_program
from bpfpatch.passes import PassContext, run_passes
from bpfpatch.program import Program

BLOCK = 256


def _insn(code: int, regs: int, off: int, imm: int) -> bytes:
    return struct.pack("<BBhi", code, regs, off, imm)


def blocks(n: int) -> bytes:
    """r0 = skb->len; a decided branch over n/200 instructions; 256-instruction blocks; r0 = 0; exit.

    A block: r1 = r0 & 0xff; if r1 > 100 goto +1; r0 += 1; (the target:) spill r0, fill it;
    if r3 != 0 goto +0 (decided: r3 = 0 throughout); then ALU steps on r2.  (A ``goto +0`` would do too, but the
    kernel removes each such nop after verifying at O(n) a piece, which is not verification.)  One fork per block keeps the kernel's pending-branch stack
    under its 8192 limit at 1M.
    """
    body = [
        _insn(0xBF, 0x01, 0, 0),         # r1 = r0
        _insn(0x57, 0x01, 0, 0xFF),      # r1 &= 0xff
        _insn(0x25, 0x01, 1, 100),       # if r1 > 100 goto +1
        _insn(0x07, 0x00, 0, 1),         # r0 += 1
        _insn(0x7B, 0x0A, -8, 0),        # *(u64 *)(r10 - 8) = r0
        _insn(0x79, 0xA0, -8, 0),        # r0 = *(u64 *)(r10 - 8)
        _insn(0x55, 0x03, 0, 0),         # if r3 != 0 goto +0: a second jump, never taken (no fork, no nop)
    ]
    body += [_insn(0x07 if k % 2 else 0xA7, 0x02, 0, k * 37 & 0x7FFF) for k in range(BLOCK - len(body))]  # r2 += / ^= k
    skip = n // 200
    ins = [_insn(0x61, 0x10, 0, 0),      # r0 = *(u32 *)(r1 + 0): skb->len
           _insn(0xB7, 0x02, 0, 0),      # r2 = 0
           _insn(0xB7, 0x03, 0, 0),      # r3 = 0
           _insn(0x15, 0x02, skip, 0)]   # if r2 == 0 goto +skip: always
    ins += [_insn(0x07, 0x02, 0, 1)] * skip
    while len(ins) + len(body) + 2 <= n:
        ins.extend(body)
    while len(ins) < n - 2:
        ins.append(_insn(0x07, 0x00, 0, 1))
    ins.append(_insn(0xB7, 0x00, 0, 0))  # r0 = 0
    ins.append(_insn(0x95, 0, 0, 0))     # exit
    return b"".join(ins)


def time_ours(raw: bytes) -> tuple[float, int]:
    prog = Program.from_bytes(raw)
    t = time.process_time()
    a = analyze(prog, "socket_filter", keep_states=False)
    return time.process_time() - t, a.processed


def time_pass(raw: bytes) -> float:
    prog = Program.from_bytes(raw)
    t = time.process_time()
    run_passes(prog, ["kernel"], PassContext(prog_type="socket_filter"))
    return time.process_time() - t


def time_kernel(raw: bytes) -> tuple[float, float, int]:
    """CPU seconds of BPF_PROG_LOAD (the verifier runs in the syscall, as this process's system time), wall seconds."""
    t, w = time.process_time(), time.perf_counter()
    with load_program(raw, "socket_filter") as lp:
        dt, dw = time.process_time() - t, time.perf_counter() - w
        return dt, dw, lp.verified_insns


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,300000,1000000")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-pass", action="store_true", help="skip the kernel-pass series")
    args = ap.parse_args(argv[1:])
    sizes = [int(s) for s in args.sizes.split(",")]
    progs = {n: blocks(n) for n in sizes}
    inf = float("inf")
    best: dict[int, list[float]] = {n: [inf, inf, inf, inf] for n in sizes}
    counts: dict[int, tuple[int, int]] = {}
    for r in range(args.rounds):
        for n in sizes:
            if r and n >= 500_000 and args.rounds > 2 and r > 1:
                continue  # two rounds for the largest: a round takes a minute
            ko, kw, kc = time_kernel(progs[n])
            oo, oc = time_ours(progs[n])
            po = inf if args.no_pass else time_pass(progs[n])
            b = best[n]
            best[n] = [min(b[0], ko), min(b[1], kw), min(b[2], oo), min(b[3], po)]
            counts[n] = (kc, oc)
    print(f"{'insns':>9} {'kernel cpu s':>12} {'(wall s)':>9} {'ours s':>8} {'ours/kernel':>11} {'kernel pass s':>13}"
          f" {'kernel processed':>17} {'ours processed':>15}")
    for n in sizes:
        k, kw, o, p = best[n]
        kc, oc = counts[n]
        print(f"{n:>9} {k:>12.3f} {kw:>9.3f} {o:>8.2f} {o / k:>11.1f} {p:>13.2f} {kc:>17} {oc:>15}")
    growth = [f"{b // a}x size: analysis {best[b][2] / best[a][2]:.1f}x, kernel pass {best[b][3] / best[a][3]:.1f}x"
              for a, b in zip(sizes, sizes[1:])]
    print("growth:", "; ".join(growth))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

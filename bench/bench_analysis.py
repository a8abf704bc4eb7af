#!/usr/bin/env python3
"""`bpfpatch.analysis` speed: our abstract interpretation vs the kernel verifying the same program.

    python bench/bench_analysis.py [--sizes 10000,100000,1000000] [--rounds 3]   # needs root (bpf())

The program is a socket filter of N instructions made of 256-instruction
blocks (a branch both ways, ALU steps, a spill and a fill), so both verifiers
fork and prune at every block.  The kernel walks ~1.5 instructions per
instruction of it, so 600k is about the largest it accepts (1M processed); we walk ~3 per instruction, so 300k.  Times are CPU seconds of this process for the
analysis and wall seconds of BPF_PROG_LOAD for the kernel (it verifies in the
syscall), best of the rounds, measured interleaved in one run.
"""

from __future__ import annotations

import argparse
import struct
import sys
import time

from bpfpatch.analysis.verifier import analyze
from bpfpatch.kernel import load_program
from bpfpatch.program import Program


def blocks(n: int) -> bytes:
    """r0 = skb->len; then 256-instruction blocks: a branch both ways, ALU steps, a spill and a fill; exit.

    One branch per block keeps the kernel's pending-branch stack under its 8192 limit at 1M.
    """
    ins = [struct.pack("<BBhi", 0x61, 0x10, 0, 0)]
    body = [
        struct.pack("<BBhi", 0xBF, 0x01, 0, 0),         # r1 = r0
        struct.pack("<BBhi", 0x57, 0x01, 0, 0xFF),      # r1 &= 0xff
        struct.pack("<BBhi", 0x25, 0x01, 1, 100),       # if r1 > 100 goto +1
        struct.pack("<BBhi", 0x07, 0x00, 0, 1),         # r0 += 1
        struct.pack("<BBhi", 0x7B, 0x0A, -8, 0),        # *(u64 *)(r10 - 8) = r0
        struct.pack("<BBhi", 0x79, 0xA0, -8, 0),        # r0 = *(u64 *)(r10 - 8)
    ]
    body += [struct.pack("<BBhi", 0x07 if k % 2 else 0xA7, 0x02, 0, k * 37 & 0x7FFF) for k in range(250)]  # r2 += / ^= k
    ins.append(struct.pack("<BBhi", 0xB7, 0x02, 0, 0))  # r2 = 0
    while len(ins) + len(body) + 2 <= n:
        ins.extend(body)
    while len(ins) < n - 2:
        ins.append(struct.pack("<BBhi", 0x07, 0x00, 0, 1))
    ins.append(struct.pack("<BBhi", 0xB7, 0x00, 0, 0))  # r0 = 0
    ins.append(struct.pack("<BBhi", 0x95, 0, 0, 0))     # exit
    return b"".join(ins)


def time_ours(raw: bytes) -> tuple[float, int]:
    prog = Program.from_bytes(raw)
    t = time.process_time()
    a = analyze(prog, "socket_filter", keep_states=False)
    return time.process_time() - t, a.processed


def time_kernel(raw: bytes) -> tuple[float, int]:
    t = time.perf_counter()
    with load_program(raw, "socket_filter") as lp:
        dt = time.perf_counter() - t
        return dt, lp.verified_insns


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,300000")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv[1:])
    sizes = [int(s) for s in args.sizes.split(",")]
    progs = {n: blocks(n) for n in sizes}
    best: dict[int, list[float]] = {n: [float("inf"), float("inf")] for n in sizes}
    counts: dict[int, tuple[int, int]] = {}
    for r in range(args.rounds):
        for n in sizes:
            if r and n >= 500_000:
                continue  # one round for the largest: it takes a minute
            ko, kc = time_kernel(progs[n])
            oo, oc = time_ours(progs[n])
            best[n][0] = min(best[n][0], ko)
            best[n][1] = min(best[n][1], oo)
            counts[n] = (kc, oc)
    print(f"{'insns':>9} {'kernel s':>9} {'ours s':>9} {'ours/kernel':>11} {'kernel processed':>17} {'ours processed':>15}")
    for n in sizes:
        k, o = best[n]
        kc, oc = counts[n]
        print(f"{n:>9} {k:>9.3f} {o:>9.2f} {o / k:>11.1f} {kc:>17} {oc:>15}")
    growth = [f"{b // a}x size: {best[b][1] / best[a][1]:.1f}x time" for a, b in zip(sizes, sizes[1:])]
    print("ours growth:", ", ".join(growth))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

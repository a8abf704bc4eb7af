#!/usr/bin/env python3
"""The prover's speed: built-in passes on 100-instruction programs, one-site rewrites of 10,000.

    python bench/bench_prove.py [--small 100] [--large 10000] [--seeds 3]

Prints a markdown table (bpfpatch.prove.bench); not a timed test.
"""

import argparse

from bpfpatch.prove.bench import run, table

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", type=int, default=100)
    ap.add_argument("--large", type=int, default=10_000)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    print(table(run(small=args.small, large=args.large, seeds=args.seeds)))

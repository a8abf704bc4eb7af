#!/usr/bin/env python3
"""The seed's table: N divide-by-zero guards, every series, one run.

    python bench/bench_patch.py            # full: N = 15k .. 1M
    python bench/bench_patch.py --quick    # N = 15k, 45k, 100k

Same code as `bpfpatch bench` (bpfpatch.bench); prints a table, not a timed test.
"""

import sys

from bpfpatch.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))

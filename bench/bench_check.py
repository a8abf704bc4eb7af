#!/usr/bin/env python3
"""`check` speed: input pairs a second and time per object, one run, printed as a table.

    python bench/bench_check.py          # needs root (bpf()) and clang for the tests/progs/check objects

A pair is one input run on the original and on the rewrite, with every referenced map dumped
on both sides after the run and the coverage copy run too.  "loop" is the time of the input
loop; "total" includes loading three objects through libbpf and instrumenting the copy.
"""

from __future__ import annotations

import glob
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bpfpatch.kernel.check import Raw, check

ROOT = Path(__file__).resolve().parent.parent


def straight_line(n: int) -> bytes:
    """A socket filter of n instructions: r0 = len; then n-3 ALU steps; exit."""
    ins = [struct.pack("<BBhi", 0x61, 0x10, 0, 0)]  # r0 = *(u32 *)(r1 + 0): skb->len
    for k in range(n - 3):
        ins.append(struct.pack("<BBhi", 0x07 if k % 2 else 0xA7, 0, 0, k * 2654435761 & 0x7FFF))  # r0 += / ^= imm
    ins.append(struct.pack("<BBhi", 0x57, 0, 0, 0xFFFF))  # r0 &= 0xffff
    ins.append(struct.pack("<BBhi", 0x95, 0, 0, 0))
    return b"".join(ins)


def objects(tmp: Path) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = [("straight line, 100 insns", Raw(straight_line(100), "straight100"))]
    inc = subprocess.run(["gcc", "-print-multiarch"], capture_output=True, text=True).stdout.strip() or "x86_64-linux-gnu"
    for src in sorted((ROOT / "tests" / "progs" / "check").glob("*.c")):
        if src.stem in ("refused", "others"):
            continue
        obj = tmp / f"{src.stem}.o"
        r = subprocess.run(["clang", "-O2", "-g", "-target", "bpf", "-mcpu=v3", f"-I/usr/include/{inc}", "-c", str(src), "-o", str(obj)],
                           capture_output=True)
        if r.returncode == 0:
            out.append((f"tests/progs/check/{src.name}", obj))
    out.append(("samples/sample.o", ROOT / "src" / "bpfpatch" / "samples" / "sample.o"))
    for obj in sorted(glob.glob("/usr/lib/x86_64-linux-gnu/bpf/xdpfilt_*_[eiu]*.o"))[:3] + sorted(glob.glob("/usr/lib/x86_64-linux-gnu/bpf/xdpfilt_alw_all.o")):
        out.append((Path(obj).name + " (xdp-tools)", Path(obj)))
    return out


def main() -> int:
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for label, src in objects(Path(d)):
            t = time.perf_counter()
            report = check(src, src)
            total = time.perf_counter() - t
            for r in report.results:
                runs = r.inputs_run + r.inputs_skipped
                rate = runs / r.run_seconds if r.run_seconds else 0.0
                rows.append((label, r.program, runs, r.run_seconds, rate, total, r.coverage.replace("covering ", "")))
    head = ("object", "program", "inputs", "loop s", "pairs/s", "total s", "blocks covered")
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for label, prog, runs, loop, rate, total, cov in rows:
        print(f"| {label} | {prog} | {runs} | {loop:.2f} | {rate:,.0f} | {total:.2f} | {cov} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

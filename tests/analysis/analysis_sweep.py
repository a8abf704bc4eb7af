"""The analysis against the kernel over a whole object corpus (one subprocess per object, bounded).

    python tests/analysis/analysis_sweep.py OUT.jsonl OBJ...      # one JSON line per program
    python tests/analysis/analysis_sweep.py --report OUT.jsonl    # the counts

Counts: programs the kernel accepts and we refuse (with our reason), programs
whose register types agree with the kernel's log_level 2 log at every step, the
steps that agree, and the zext_dst misses (BPF_F_TEST_RND_HI32 oracle).
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def one(path: str) -> list[dict]:
    """Every loaded program of one object, as dicts."""
    sys.path.insert(0, str(HERE))
    from analysis_kernel import check_object

    out = []
    for r in check_object(path):
        c = r.cmp
        out.append({"obj": r.obj, "name": r.name, "type": r.prog_type, "insns": r.insns,
                    "kernel_error": r.kernel_error, "our_error": r.our_error,
                    "steps": c.steps if c else 0, "type_match": c.type_match if c else 0,
                    "exact": c.exact_match if c else 0, "types_agree": r.types_agree,
                    "type_mismatch": [str(m)[:300] for m in (c.type_mismatches[:2] if c else [])],
                    "zext_checked": r.zext_checked, "zext_diff": r.zext_diff[:20],
                    "processed": r.processed, "kernel_processed": r.kernel_processed})
    return out


def sweep(out: str, paths: list[str], timeout: int = 300) -> None:
    done = set()
    if os.path.exists(out):
        with open(out) as f:
            done = {json.loads(line).get("path") for line in f}
    with open(out, "a") as f:
        for p in paths:
            if p in done:
                continue
            try:
                res = subprocess.run([sys.executable, __file__, "--one", p], capture_output=True, text=True,
                                     timeout=timeout)
                rows = json.loads(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else None
                err = "" if rows is not None else res.stderr.strip()[-300:]
            except subprocess.TimeoutExpired:
                rows, err = None, "timeout"
            except (json.JSONDecodeError, IndexError):
                rows, err = None, "no output"
            f.write(json.dumps({"path": p, "rows": rows, "error": err}) + "\n")
            f.flush()


def report(out: str) -> None:
    rows, errs = [], []
    with open(out) as f:
        for line in f:
            d = json.loads(line)
            if d["rows"] is None:
                errs.append((d["path"], d["error"][-120:]))
            else:
                rows.extend(d["rows"])
    acc = [r for r in rows if not r["kernel_error"]]
    refused = [r for r in acc if r["our_error"]]
    compared = [r for r in acc if not r["our_error"] and r["steps"]]
    agree = sum(r["types_agree"] for r in compared)
    steps = sum(r["steps"] for r in compared)
    match = sum(r["type_match"] for r in compared)
    zc = [r for r in compared if r["zext_checked"]]
    zmiss = [r for r in zc if r["zext_diff"]]
    print(f"objects {len({r['obj'] for r in rows})} (+{len(errs)} failed), programs {len(rows)}, kernel accepts {len(acc)}")
    print(f"kernel accepts, we refuse: {len(refused)}")
    reasons = collections.Counter(r["our_error"].split(":", 1)[-1].strip()[:70] for r in refused)
    for k, v in reasons.most_common():
        print(f"  {v:3} {k}")
    print(f"types agree at every step: {agree}/{len(compared)} programs, {match}/{steps} steps "
          f"({100 * match / max(steps, 1):.2f}%)")
    print(f"zext checked {len(zc)}, kernel zero-extends where we do not: {len(zmiss)}")
    if "-v" in sys.argv:
        for r in refused:
            print("REFUSED", r["obj"], r["name"], r["our_error"][:150])
        for r in compared:
            if not r["types_agree"]:
                print("TYPES", r["obj"], r["name"], r["type_match"], "/", r["steps"], r["type_mismatch"][:1])
        for r in zmiss:
            print("ZEXT", r["obj"], r["name"], r["zext_diff"][:8])
        for p, e in errs:
            print("FAILED", p, e)


if __name__ == "__main__":
    if sys.argv[1] == "--one":
        print(json.dumps(one(sys.argv[2])))
    elif sys.argv[1] == "--report":
        report(sys.argv[2])
    else:
        sweep(sys.argv[1], sys.argv[2:])

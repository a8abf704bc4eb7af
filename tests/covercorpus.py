"""`bpfpatch cover` on real tc and XDP objects: instrumented objects load and behave the same.

Used by tests/cli/test_cover_lines.py on a bounded, seeded sample, and as a
script on everything (the numbers in the report and the README)::

    python tests/covercorpus.py [--limit N] [--seed S] [--no-facts] [--edges] [OBJ.o ...]

Per object: does the original load (libbpf, the whole object); if so, is the
instrumented object loaded too, does every packet-runnable program return
the same and write the same packet on generated packets, how many
instructions the counters add per counted block, how many blocks are dead
to the verifier (no counter).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

CORPUS = Path("/tmp/objects-corpus")
THIRD_PARTY = sorted(Path("/usr/lib/x86_64-linux-gnu/bpf").glob("*.o"))
PACKET_SECTIONS = ("xdp", "tc", "classifier", "action", "tcx", "netkit")


def packet_objects(paths: list[Path]) -> list[Path]:
    """The objects whose every program section is a tc or XDP one (by libbpf's section names)."""
    from elftools.elf.elffile import ELFFile

    out = []
    for p in paths:
        with open(p, "rb") as f:
            secs = [s.name for s in ELFFile(f).iter_sections()
                    if s["sh_type"] == "SHT_PROGBITS" and s["sh_flags"] & 4 and s.name != ".text"]
        if secs and all(s.startswith(PACKET_SECTIONS) for s in secs):
            out.append(p)
    return out


def sample(paths: list[Path], limit: int | None, seed: int) -> list[Path]:
    """A deterministic sample of `limit` paths (all of them without a limit), in name order."""
    if limit is None or limit >= len(paths):
        return list(paths)
    return sorted(random.Random(seed).sample(list(paths), limit))


@dataclass
class Outcome:
    """One object through `bpfpatch cover`."""

    name: str
    original_loads: bool = False
    instrumented_loads: bool = False
    same: bool = False
    runs: int = 0
    blocks: int = 0
    counters: int = 0
    dead_blocks: int = 0
    added: int = 0
    original: int = 0
    spills: int = 0
    error: str = ""


def cover_one(path: Path, *, packets: int = 64, edges: bool = True, facts: bool = True) -> Outcome:
    """Instrument, load both, run both on `packets` generated packets, compare."""
    from bpfpatch.cover.instrument import instrument_object
    from bpfpatch.cover.run import packet_inputs, run_coverage
    from bpfpatch.errors import BpfPatchError, KernelError
    from bpfpatch.kernel.libbpf import load_object

    out = Outcome(path.name)
    try:
        load_object(path).close()
    except KernelError as exc:
        out.error = f"original: {str(exc)[:100]}"
        return out
    out.original_loads = True
    try:
        kw = {"facts": facts} if facts is not True else {}
        data, cmap = instrument_object(path, edges=edges, **kw)
    except BpfPatchError as exc:
        out.error = f"instrument: {str(exc)[:100]}"
        return out
    out.counters = len(cmap.counters)
    out.blocks = sum(1 for c in cmap.counters if c.kind != "fallthrough")
    out.dead_blocks = len(getattr(cmap, "unreachable", []))
    out.added, out.original, out.spills = cmap.added_insns, cmap.original_insns, cmap.spills
    try:
        load_object(data, name="instrumented").close()
    except KernelError as exc:
        out.error = f"instrumented: {str(exc)[:160]}"
        return out
    out.instrumented_loads = True
    try:
        res = run_coverage(path, data, cmap, packet_inputs(packets, 7))
    except BpfPatchError as exc:  # nothing packet-runnable (e.g. only tc programs with BTF ctx args)
        out.same = True
        out.error = f"run: {str(exc)[:100]}"
        return out
    out.runs = sum(res.runs.values())
    out.same = not res.differences
    if res.differences:
        out.error = res.differences[0][:160]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("objects", nargs="*", type=Path)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-facts", action="store_true")
    ap.add_argument("--edges", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    paths = a.objects or THIRD_PARTY + sample(packet_objects(sorted(CORPUS.glob("*.o"))), a.limit, a.seed)
    rows = []
    for p in paths:
        r = cover_one(p, edges=a.edges, facts=not a.no_facts)
        rows.append(r)
        if a.json:
            print(json.dumps(asdict(r)), flush=True)
        else:
            per = f"{r.added / r.counters:.2f}/counter" if r.counters else "-"
            print(f"{r.name:45} orig={'y' if r.original_loads else 'n'} inst={'y' if r.instrumented_loads else 'n'} "
                  f"same={'y' if r.same else 'n'} runs={r.runs} +{r.added}/{r.original} {per} dead={r.dead_blocks} "
                  f"{r.error}", flush=True)
    loads = [r for r in rows if r.original_loads]
    ok = [r for r in loads if r.instrumented_loads]
    same = [r for r in ok if r.same]
    blocks = sum(r.blocks for r in ok)
    added = sum(r.added for r in ok)
    print(f"objects {len(rows)}, original loads {len(loads)}, instrumented loads {len(ok)}, behave the same {len(same)}; "
          f"+{added} instructions on {sum(r.original for r in ok)} "
          f"({added / max(1, sum(r.counters for r in ok)):.2f} per counter, {blocks} blocks counted, {sum(r.spills for r in ok)} spills, "
          f"{sum(r.dead_blocks for r in ok)} blocks dead to the verifier)")
    return 0 if len(same) == len(loads) else 1


if __name__ == "__main__":
    sys.exit(main())

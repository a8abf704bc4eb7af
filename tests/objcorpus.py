"""Real objects through bpfpatch: identity byte for byte, every pass loads wherever the original does.

Used by tests/elf/test_elf_corpus.py on a bounded, seeded sample, and as a
script on everything (the numbers in the report and the README)::

    python tests/objcorpus.py [--passes] [--limit N] OBJ.o ...

Loading goes through libbpf (`bpfpatch.kernel.libbpf.load_object`): the
whole object, as a user's loader would load it.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bpfpatch.elf.rewrite import rewrite_object
from bpfpatch.errors import BpfPatchError

#: Every pass alone, the kernel's own order of its fixups, and everything.
PASS_SETS: tuple[tuple[str, ...], ...] = (
    ("div-guard",), ("dce",), ("blind",), ("zext",), ("ctx",),
    ("dce", "div-guard"), ("dce", "div-guard", "zext", "blind"), ("ctx", "dce", "div-guard", "zext", "blind"),
)

THIRD_PARTY = sorted(Path("/usr/lib/x86_64-linux-gnu/bpf").glob("*.o"))


def identity(path: Path) -> tuple[bool, str]:
    """Whether the identity rewrite (no pass) gives back the input byte for byte."""
    data = path.read_bytes()
    try:
        out = rewrite_object(data, None, [])
    except BpfPatchError as exc:
        return False, f"refused: {exc}"
    if out == data:
        return True, ""
    first = next(i for i, (a, b) in enumerate(zip(out, data)) if a != b) if len(out) == len(data) else -1
    return False, f"differs (sizes {len(data)} -> {len(out)}, first byte {first})"


def loads(data: bytes, label: str) -> tuple[bool, str]:
    """Whether libbpf loads the whole object (and the verifier accepts every program)."""
    from bpfpatch.kernel.libbpf import LibbpfError, load_object, verifier_reason

    try:
        with load_object(data, name=label):
            return True, ""
    except LibbpfError as exc:
        log = exc.log or str(exc)
        why = verifier_reason(log) or ""
        lines = [ln for ln in log.splitlines() if ln.strip() and "failed to load object" not in ln]
        return False, (why or (lines[-1] if lines else str(exc)))[:300]


@dataclass
class Tally:
    """Counts of one corpus run."""

    objects: int = 0
    identical: int = 0
    original_loads: int = 0
    per_pass: dict[str, Counter] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def run(paths: list[Path], *, passes: bool = True, verbose: bool = False) -> Tally:
    """Identity on every object; with `passes`, every pass set on every object the original loads."""
    t = Tally()
    for path in paths:
        t.objects += 1
        ok, why = identity(path)
        t.identical += ok
        if not ok:
            t.failures.append(f"{path.name}: identity: {why}")
        if not passes:
            continue
        data = path.read_bytes()
        base_ok, _ = loads(data, path.name)
        t.original_loads += base_ok
        if not base_ok:
            continue
        for ps in PASS_SETS:
            key = "+".join(ps)
            c = t.per_pass.setdefault(key, Counter())
            try:
                out = rewrite_object(data, None, list(ps))
            except BpfPatchError as exc:
                c["refused"] += 1
                t.failures.append(f"{path.name}: {key}: refused: {exc}")
                continue
            except Exception:  # a crash is a bug: count it and show it
                c["crashed"] += 1
                t.failures.append(f"{path.name}: {key}: crashed: {traceback.format_exc(limit=3)}")
                continue
            ok, why = loads(out, f"{path.name}+{key}")
            c["loads" if ok else "fails"] += 1
            if not ok:
                t.failures.append(f"{path.name}: {key}: does not load: {why}")
        if verbose:
            print(path.name, file=sys.stderr)
    return t


def report(t: Tally) -> str:
    """The tally as a few lines of text."""
    lines = [f"identity byte for byte: {t.identical}/{t.objects}"]
    if t.per_pass:
        lines.append(f"original loads with libbpf: {t.original_loads}/{t.objects}")
        for key, c in t.per_pass.items():
            total = sum(c.values())
            extra = ", ".join(f"{k} {v}" for k, v in c.items() if k != "loads")
            lines.append(f"  {key}: loads {c['loads']}/{total}" + (f" ({extra})" if extra else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("objects", nargs="*", type=Path)
    ap.add_argument("--no-passes", action="store_true", help="identity only")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--failures", action="store_true", help="print every failure")
    args = ap.parse_args(argv)
    paths = args.objects or THIRD_PARTY
    if args.limit:
        paths = paths[: args.limit]
    t = run(paths, passes=not args.no_passes)
    print(report(t))
    if args.failures:
        print("\n".join(t.failures))
    return 0


if __name__ == "__main__":
    sys.exit(main())

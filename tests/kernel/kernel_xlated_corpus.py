"""`--pass kernel` against the running kernel's xlated output on whole ELF objects.

Each object is loaded through libbpf (`bpfpatch.kernel.load_object`); per
loaded program, the instructions libbpf relocated (map fds in the ld_imm64s)
go through the `kernel` pass with the maps' types and sizes as facts, and
the result is compared with what the kernel kept (`xlated`), with only what
the loaded kernel alone knows masked (`comparable`): helper and kfunc call
immediates, map and BTF addresses in ld_imm64, subprogram numbering.  The
inlined helpers' kernel addresses are read from the kernel itself
(`kernel_symbols`: the xlated form of a one-call probe program).

    python tests/kernel/kernel_xlated_corpus.py [-v] [--limit N] OBJ.o...

prints the outcome per program and the share reproduced exactly.
"""

from __future__ import annotations

import argparse
import collections
import signal
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from bpfpatch.analysis.facts import MapRef
from bpfpatch.errors import BpfPatchError
from bpfpatch.isa import decode_slots, slot_rows
from bpfpatch.passes import PassContext, run_passes
from bpfpatch.program import Program

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "passes"))
from kernel_selftests import comparable_rows  # noqa: E402

LD_IMM64 = 0x18
BPF_F_RDONLY_PROG = 1 << 7
#: ld_imm64 sources the kernel turns into addresses (map fd / value, BTF id, map index / value).
ADDRESS_SOURCES = frozenset({1, 2, 3, 5, 6})


@lru_cache(maxsize=1)
def kernel_symbols() -> dict[str, int]:
    """The addresses the kernel inlines for bpf_jiffies64 and bpf_get_smp_processor_id, from its xlated output."""
    from bpfpatch.kernel import load_program

    out: dict[str, int] = {}
    for helper, name in ((118, "jiffies"), (8, "cpu_number")):
        raw = bytes([0x85, 0, 0, 0]) + helper.to_bytes(4, "little") + bytes([0x95]) + bytes(7)
        try:
            with load_program(raw, "sched_cls") as p:
                rows = slot_rows(decode_slots(p.xlated()))
        except BpfPatchError:
            continue
        if rows[0][0] == LD_IMM64:
            out[name] = (rows[0][4] & 0xFFFFFFFF) | (rows[1][4] & 0xFFFFFFFF) << 32
        elif rows[0][0] == 0xB7:
            out[name] = rows[0][4] & 0xFFFFFFFF
    return out


def comparable(rows: list, *, xlated: bool) -> list:
    """`comparable_rows`, and ld_imm64 addresses (maps, BTF ids) masked on both sides."""
    rows = list(rows)
    i = 0
    while i < len(rows):
        code, dst, src, off, imm = rows[i]
        if code == LD_IMM64 and i + 1 < len(rows):
            if src in ADDRESS_SOURCES:
                rows[i] = (code, dst, 0, 0, 0)
                rows[i + 1] = (0, 0, 0, 0, 0)
            i += 2
            continue
        if code == 0x85 and src == 2:  # kfunc call: address or BTF id
            rows[i] = (code, dst, src, 0, 0)
        i += 1
    return comparable_rows(rows, xlated=xlated)


def _mask_kernel_addresses(ours: list, theirs: list) -> list:
    """An ld_imm64 of 0 in ours where the kernel has an address: one the inlined code loads
    (jiffies, prog->aux) that the pass was not told."""
    theirs = list(theirs)
    for i, (code, *_rest) in enumerate(ours):
        if i + 1 < len(theirs) and code == LD_IMM64 and ours[i][2] == 0 and ours[i][3:] == (0, 0) \
                and ours[i + 1][4] == 0 and theirs[i][0] == LD_IMM64 and theirs[i][2] == 0:
            theirs[i] = (LD_IMM64, theirs[i][1], 0, 0, 0)
            theirs[i + 1] = (0, 0, 0, 0, 0)
    return theirs


@dataclass
class Outcome:
    """One program of an object: what happened."""

    obj: str
    prog: str
    prog_type: str
    verdict: str  # "match", "differs", "refused: ...", "kernel refused"
    first_diff: int = -1
    ours: list | None = None
    theirs: list | None = None


class _Timeout(Exception):
    pass


def _alarm(signum, frame):  # noqa: ARG001 - signal handler signature
    raise _Timeout


def check_object(path: Path, timeout: int = 0) -> list[Outcome]:
    """Every program of the object that libbpf loads, through the kernel pass, against xlated.

    `timeout` (seconds, 0: none) bounds the pass on one program (SIGALRM; main thread only).
    """
    from bpfpatch.kernel import load_object
    from bpfpatch.kernel.libbpf import LibbpfError

    try:
        obj = load_object(str(path))
    except LibbpfError:
        return [Outcome(path.name, "*", "?", "kernel refused")]
    out = []
    with obj:
        refs = {}
        for i, m in enumerate(obj.maps.values()):
            info = m.info
            ref = MapRef(i, info.name, m.fd, info.map_type, info.key_size, info.value_size, info.max_entries)
            if hasattr(ref, "map_flags"):  # older trees (the "before" measurement) lack it
                ref = MapRef(i, info.name, m.fd, info.map_type, info.key_size, info.value_size, info.max_entries,
                             map_flags=info.flags)
            if hasattr(ref, "frozen_value") and info.flags & BPF_F_RDONLY_PROG and info.map_type == 2:
                # libbpf froze it after writing its initial value (.rodata, .kconfig)
                ref = MapRef(i, info.name, m.fd, info.map_type, info.key_size, info.value_size, info.max_entries,
                             map_flags=info.flags, frozen_value=m.lookup(bytes(info.key_size)))
            refs[m.fd] = ref
        for prog in obj.programs.values():
            if not prog.loaded:
                continue
            raw = prog.insns()
            theirs = slot_rows(decode_slots(prog.as_loaded().xlated()))
            res = Outcome(path.name, prog.name, prog.prog_type.name.lower(), "")
            try:
                program = Program.from_bytes(raw, validate=False)
                ctx = PassContext(prog_type=prog.prog_type, options={"kernel": {
                    "analysis": {"maps": refs}, "symbols": kernel_symbols(),
                    "prog_flags": prog.flags, "expected_attach_type": prog.expected_attach_type}})
                if timeout:
                    signal.signal(signal.SIGALRM, _alarm)
                    signal.alarm(timeout)
                try:
                    ours_rows = slot_rows(run_passes(program, ["kernel"], ctx).slots)
                finally:
                    if timeout:
                        signal.alarm(0)
            except _Timeout:
                res.verdict = f"timeout ({timeout} s)"
                out.append(res)
                continue
            except BpfPatchError as exc:
                res.verdict = f"refused: {type(exc).__name__}: {str(exc).split('(')[0][:70]}"
                out.append(res)
                continue
            except Exception as exc:  # a crash is an outcome too (counted, shown with -v)
                res.verdict = f"crash: {type(exc).__name__}: {str(exc)[:70]}"
                out.append(res)
                continue
            a = comparable(ours_rows, xlated=False)
            b = comparable(_mask_kernel_addresses(ours_rows, theirs), xlated=True)
            if a == b:
                res.verdict = "match"
            else:
                res.verdict = "differs"
                res.first_diff = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
                res.ours, res.theirs = a, b
            out.append(res)
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("objects", nargs="+", type=Path)
    ap.add_argument("-v", action="store_true", help="show the first difference of each program that differs")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--timeout", type=int, default=30, help="seconds per program (0: none)")
    args = ap.parse_args(argv)
    objs = args.objects[: args.limit or None]
    results: list[Outcome] = []
    for p in objs:
        for r in check_object(p, args.timeout):
            results.append(r)
            if args.v and r.verdict != "match":
                print(f"{r.obj}:{r.prog} ({r.prog_type}) {r.verdict}", flush=True)
                if r.ours is not None:
                    k = r.first_diff
                    print(f"   @{k} ours   {r.ours[max(0, k - 2):k + 4]}\n   @{k} kernel {r.theirs[max(0, k - 2):k + 4]}")
    progs = [r for r in results if r.verdict != "kernel refused"]
    counts = collections.Counter(r.verdict if not r.verdict.startswith("differs") else f"differs ({r.prog_type})"
                                 for r in progs)
    match = counts["match"]
    print(f"{len(objs)} objects, {len(progs)} programs loaded, {match} reproduced exactly "
          f"({match / max(1, len(progs)):.1%}); objects libbpf refused: "
          f"{sum(r.verdict == 'kernel refused' for r in results)}")
    for what, n in counts.most_common():
        print(f"  {n:5d}  {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

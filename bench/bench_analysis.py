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

    python bench/bench_analysis.py --objects [OBJ.o ...] [--rounds 2]

The real-object series: every program of each selftest object (default: the large ones of
/tmp/objects-corpus, `REAL_OBJECTS`) loaded through libbpf, then its relocated instructions
verified by the kernel (BPF_PROG_LOAD again: the CPU time of the syscall, and the kernel's own
"verification time" from a BPF_LOG_STATS log, which is wall time) and analyzed by us with the
same maps, attach type and BTF prototypes (`analyze(..., keep_states=False)`, CPU time), round
after round in one run, best of the rounds; processed instructions of both side by side.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
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


#: The large selftest objects of the real-object series (issue 14's "large real programs").
REAL_OBJECTS = ("core_kern", "test_verif_scale1", "test_verif_scale2", "test_verif_scale3", "pyperf50", "pyperf100",
                "pyperf180", "pyperf600_bpf_loop", "pyperf600_nounroll", "pyperf_global", "pyperf_subprogs",
                "strobemeta", "strobemeta_bpf_loop", "strobemeta_nounroll1", "strobemeta_nounroll2",
                "strobemeta_subprogs")
CORPUS = "/tmp/objects-corpus"


def real_programs(paths: list[str]) -> list[tuple[str, dict]]:
    """(label, inputs) of every program libbpf loads from `paths`, one by one where it refuses the whole object.

    The inputs are what `analyze` and `load_program` need: the relocated instructions, the type,
    attach type and flags, the maps (tests/analysis/analysis_kernel.py's `map_refs`), the BTF
    prototypes and the func_info to load them again with.
    """
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "analysis"))
    from analysis_kernel import func_info_of, map_refs, prog_funcs

    from bpfpatch.elf import read_object
    from bpfpatch.kernel import load_object

    out = []
    for path in paths:
        label = os.path.basename(path).removesuffix(".o")
        try:
            objs = [load_object(path)]
        except Exception:  # libbpf refuses the whole object (one program it cannot load): one program at a time
            objs = []
            for sec, p in read_object(path).programs.items():
                for sym in p.meta.get("symbols", ()) if sec != ".text" else ():
                    if sym.binding in ("global", "STB_GLOBAL"):
                        try:
                            objs.append(load_object(path, programs=[sym.name]))
                        except Exception:
                            continue
        for obj in objs:  # kept open (its maps' fds are in the instructions) until the caller closes it
            for prog in obj.programs.values():
                if not prog.loaded:
                    continue
                raw = prog.insns()
                fi = func_info_of(prog, raw)
                btf = ({"prog_btf_fd": obj.btf_fd, "func_info": fi[0], "func_info_rec_size": fi[1]}
                       if fi and obj.btf_fd >= 0 else {})
                out.append((f"{label}:{prog.name}", dict(
                    raw=raw, prog_type=prog.prog_type, attach_type=prog.expected_attach_type, flags=prog.flags,
                    maps=map_refs(raw, obj), funcs=prog_funcs(obj, fi, prog.prog_type), btf=btf, obj=obj)))
    return out


def bench_objects(paths: list[str], rounds: int) -> int:
    """The real-object series: ours / the kernel per program, CPU time, best of `rounds`, in one run."""
    from bpfpatch.analysis.verifier import AnalysisError
    from bpfpatch.btf.vmlinux import kernel_types
    from bpfpatch.errors import KernelError

    kernel_types()  # read the running kernel's BTF once, before any timing
    progs = real_programs(paths)
    inf = float("inf")
    best: dict[str, list] = {}
    for _ in range(rounds):
        for label, d in progs:
            raw = d["raw"]
            t = time.process_time()
            try:
                with load_program(raw, d["prog_type"], expected_attach_type=d["attach_type"], prog_flags=d["flags"],
                                  log_level=4, log_size=1 << 16, **d["btf"]) as lp:
                    kt = time.process_time() - t
                    m = re.search(r"verification time (\d+) usec", lp.verifier_log)
                    kv = int(m.group(1)) / 1e6 if m else inf
                    kp = int(re.search(r"processed (\d+) insns", lp.verifier_log).group(1))
            except KernelError:
                continue  # the kernel refuses it alone (a tracing program this machine does not attach)
            prog = Program.from_bytes(raw, validate=False)
            t = time.process_time()
            try:
                a = analyze(prog, d["prog_type"], maps=d["maps"], attach_type=d["attach_type"], kernel_types=kernel_types,
                            funcs=d["funcs"], keep_states=False)
                op = a.processed
            except AnalysisError as exc:
                op = f"refused: {exc}"[:40]
            ot = time.process_time() - t
            b = best.get(label)
            best[label] = [min(b[0], kt), min(b[1], kv), kp, min(b[3], ot), op] if b else [kt, kv, kp, ot, op]
    print(f"{'program':<44} {'kernel cpu s':>12} {'(verif. s)':>10} {'ours s':>8} {'ours/kernel':>11}"
          f" {'kernel processed':>16} {'ours processed':>14}")
    tk = to = 0.0
    for label, (kt, kv, kp, ot, op) in best.items():
        if kp < 5_000:
            continue  # small programs: the syscall's fixed costs, not verification
        tk, to = tk + kt, to + ot
        print(f"{label:<44} {kt:>12.3f} {kv:>10.3f} {ot:>8.2f} {ot / kt:>10.1f}x {kp:>16,} {op:>14,}"
              if isinstance(op, int) else f"{label:<44} {kt:>12.3f} {kv:>10.3f} {ot:>8.2f} {'':>11} {kp:>16,} {op}")
    if tk:
        print(f"{'total (programs over 5,000 processed)':<44} {tk:>12.3f} {'':>10} {to:>8.2f} {to / tk:>10.1f}x")
    for obj in {id(d["obj"]): d["obj"] for _, d in progs}.values():
        obj.close()
    return 0


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,300000,1000000")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-pass", action="store_true", help="skip the kernel-pass series")
    ap.add_argument("--objects", nargs="*", default=None, metavar="OBJ.o",
                    help=f"the real-object series instead (default: {CORPUS}'s large programs)")
    args = ap.parse_args(argv[1:])
    if args.objects is not None:
        paths = args.objects or [p for name in REAL_OBJECTS for p in glob.glob(f"{CORPUS}/{name}.o")]
        return bench_objects(paths, args.rounds)
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

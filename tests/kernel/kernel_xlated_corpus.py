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
import ctypes
import dataclasses
import os
import re
import signal
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from bpfpatch.analysis.facts import MapRef
from bpfpatch.btf.vmlinux import kernel_types
from bpfpatch.errors import BpfPatchError
from bpfpatch.isa import decode_slots, slot_rows
from bpfpatch.passes import PassContext, run_passes
from bpfpatch.program import Program

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "passes"))
from kernel_selftests import comparable_rows  # noqa: E402

LD_IMM64 = 0x18
BPF_F_RDONLY_PROG = 1 << 7
BPF_F_SLEEPABLE = 1 << 4
#: ld_imm64 sources the kernel turns into addresses (map fd / value, BTF id, map index / value).
ADDRESS_SOURCES = frozenset({1, 2, 3, 5, 6})
#: BPF_PSEUDO_BTF_ID: an ld_imm64 of a kernel variable or function by BTF id.
BTF_ID = 3


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
    (jiffies, prog->aux) that the pass was not told; and a kernel symbol's BTF id in ours (a typed ksym,
    a kfunc's address for bpf_ksym_exists), which the kernel replaces with the symbol's address from
    kallsyms, clearing the source (check_pseudo_btf_id): the loader's, as a map's address is."""
    theirs = list(theirs)
    for i, (code, *_rest) in enumerate(ours):
        if i + 1 < len(theirs) and code == LD_IMM64 and theirs[i][0] == LD_IMM64 and theirs[i][2] == 0 and (
                (ours[i][2] == 0 and ours[i][3:] == (0, 0) and ours[i + 1][4] == 0) or ours[i][2] == BTF_ID):
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
    from bpfpatch.kernel.ctxlayout import install_kernel_layouts

    install_kernel_layouts()  # the analysis and the pass on this kernel's structures, as `bpfpatch patch` runs them

    objs = loadable(path)
    if not objs:
        return [Outcome(path.name, "*", "?", "kernel refused")]
    out = []
    for obj in objs:
        with obj:
            out += _check_loaded(obj, path, timeout)
    return out


def loadable(path: Path) -> list:
    """The object loaded with every program the kernel takes (a loaded object each; empty: none).

    One program the kernel refuses (a selftest of what must fail, a missing attach
    target) stops libbpf's whole load: the programs libbpf names as failing are
    left out and the rest loaded again; where that does not converge (a prog
    array initialised with a refused program), each program alone.
    """
    from bpfpatch.kernel import load_object
    from bpfpatch.kernel.libbpf import LibbpfError

    names = program_names(path)
    chosen = set(names)
    while chosen:
        try:
            return [load_object(str(path), programs=sorted(chosen))]
        except LibbpfError as exc:
            bad = set(re.findall(r"prog '([^']+)': failed to load", getattr(exc, "log", "") or str(exc))) & chosen
            if not bad:
                break
            chosen -= bad
    objs = []
    for name in names:
        try:
            objs.append(load_object(str(path), programs=[name]))
        except LibbpfError:
            continue
    return objs


def program_names(path: Path) -> list[str]:
    """The names of the object's programs, as libbpf opens it (nothing loaded)."""
    from bpfpatch.kernel.libbpf import ObjectOpenOpts, libbpf

    lib = libbpf()
    opts = ObjectOpenOpts(sz=ctypes.sizeof(ObjectOpenOpts))
    handle = lib.bpf_object__open_file(os.fsencode(path), ctypes.byref(opts))
    if not handle:
        return []
    names = []
    try:
        p = lib.bpf_object__next_program(handle, None)
        while p:
            names.append(lib.bpf_program__name(p).decode())
            p = lib.bpf_object__next_program(handle, p)
    finally:
        lib.bpf_object__close(handle)
    return names


class _MapInfo(ctypes.Structure):
    """struct bpf_map_info, up to map_flags."""

    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32), ("key_size", ctypes.c_uint32),
                ("value_size", ctypes.c_uint32), ("max_entries", ctypes.c_uint32), ("map_flags", ctypes.c_uint32),
                ("name", ctypes.c_char * 16)]


def btf_inner_map(btf, name: str) -> MapRef | None:
    """The inner map template a BTF-defined map-in-map declares (``__array(values, struct {...})``)."""
    from bpfpatch.btf.types import BtfKind

    sec = btf.datasec(".maps") if btf else None
    for var_id, _off, _size in (sec.members if sec is not None else ()):
        var = btf.type(var_id)
        if var.name != name:
            continue
        for mname, mtype, _ in btf.resolve(var.size_or_type).members:
            arr = btf.resolve(mtype)
            if mname != "values" or arr.kind != BtfKind.ARRAY:
                continue
            ptr = btf.resolve(arr.extra[0])
            inner = btf.resolve(ptr.size_or_type) if ptr.kind == BtfKind.PTR else ptr
            d = {"map_type": 0, "key_size": 0, "value_size": 0, "max_entries": 0, "map_flags": 0}
            for iname, itype, _ in inner.members:
                t = btf.resolve(itype)
                pointee = t.size_or_type if t.kind == BtfKind.PTR else itype
                if iname in ("type", "max_entries", "map_flags", "key_size", "value_size"):
                    n = btf.resolve(pointee)  # __uint(name, N): a pointer to int[N]
                    d["map_type" if iname == "type" else iname] = n.extra[2] if n.kind == BtfKind.ARRAY else 0
                elif iname in ("key", "value"):
                    d[f"{iname}_size"] = btf.size_of(pointee)
            return MapRef(-1, "", None, d["map_type"], d["key_size"], d["value_size"], d["max_entries"],
                          map_flags=d["map_flags"])
    return None


def inner_map(m, btf=None, fields=None) -> MapRef | None:
    """The inner map of an array / hash of maps: the first inner map it holds, else the template its
    BTF declares (None: neither).  `fields(fd)` gives a held inner map's (kptr fields, graph roots)."""
    from bpfpatch.kernel.libbpf import libbpf

    if m.info.map_type not in (12, 13):  # BPF_MAP_TYPE_ARRAY_OF_MAPS, HASH_OF_MAPS
        return None
    lib = libbpf()
    get_fd, get_info = lib.bpf_map_get_fd_by_id, lib.bpf_obj_get_info_by_fd
    get_fd.argtypes, get_info.argtypes = [ctypes.c_uint32], [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    for key in m.keys():
        value = m.lookup(key)
        if not value:
            continue
        fd = get_fd(int.from_bytes(value[:4], "little"))
        if fd < 0:
            continue
        try:  # (`fields` reads the map's special fields while its fd is open)
            info, size = _MapInfo(), ctypes.c_uint32(ctypes.sizeof(_MapInfo))
            if get_info(fd, ctypes.byref(info), ctypes.byref(size)) != 0:
                continue
            ref = MapRef(-1, info.name.decode(), None, info.type, info.key_size, info.value_size, info.max_entries,
                         map_flags=info.map_flags)
            if fields is not None and hasattr(ref, "graph_roots"):
                kptrs, roots = fields(fd)
                ref = dataclasses.replace(ref, kptr_fields=kptrs, graph_roots=roots)
        finally:
            os.close(fd)
        return ref
    return btf_inner_map(btf, m.info.name)


class TypeSizes(dict):
    """The sizes of an object's own BTF types by id, read on first use (what ``bpf_obj_new`` allocates)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._path, self._btf = path, None

    @property
    def btf(self):
        """The object's BTF (None without)."""
        if self._btf is None:
            from bpfpatch.elf.reader import read_object

            self._btf = read_object(self._path).btf or False
        return self._btf or None

    def get(self, type_id, default=None):
        if not self.btf or type_id is None:
            return default
        try:
            return self._btf.size_of(type_id)
        except BpfPatchError:
            return default


def _check_loaded(obj, path: Path, timeout: int) -> list[Outcome]:
    """Every loaded program of a loaded object, through the kernel pass, against xlated."""
    out = []
    sizes = TypeSizes(path)  # (and the object's BTF)
    refs = {}
    loaded_btf: list = []  # the object's BTF as libbpf loaded it, read at the first map with a value type
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
        if hasattr(ref, "inner") and (inner := inner_map(m, sizes.btf, lambda fd: _special_fields(obj, fd, loaded_btf))) \
                is not None:
            ref = dataclasses.replace(ref, inner=inner)
        if hasattr(ref, "graph_roots"):
            kptrs, roots = _special_fields(obj, m.fd, loaded_btf)  # bpf_kptr_xchg's fields, list heads, rbtree roots
            ref = dataclasses.replace(ref, kptr_fields=kptrs, graph_roots=roots)
        refs[m.fd] = ref
    for prog in obj.programs.values():
        if not prog.loaded:
            continue
        raw = prog.insns()
        theirs = slot_rows(decode_slots(prog.as_loaded().xlated()))
        res = Outcome(path.name, prog.name, prog.prog_type.name.lower(), "")
        try:
            program = Program.from_bytes(raw, validate=False)
            analysis = {"maps": refs, "kernel_types": kernel_types, "attach_type": prog.expected_attach_type}
            btf_ctx = _btf_ctx(prog)
            if btf_ctx is not None:
                analysis["ctx_layout"] = btf_ctx  # tracing / LSM / struct_ops: the attach target's arguments
            funcs = _funcs(obj, prog, raw)
            if funcs:
                analysis["funcs"] = funcs  # global functions are verified on their own, from their BTF prototypes
            ctx = PassContext(prog_type=prog.prog_type, options={"kernel": {
                "analysis": analysis,
                "symbols": kernel_symbols(), "local_type_sizes": sizes,
                "prog_flags": _load_flags(prog), "expected_attach_type": prog.expected_attach_type}})
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


def _special_fields(obj, fd: int, loaded_btf: list) -> tuple[tuple, tuple]:
    """The kptr fields and graph roots of a map's value type (`bpfpatch.btf.fields` on the loaded object's
    BTF), as the analysis' log harness gives them."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analysis"))
    from analysis_kernel import btf_bytes, map_value_type_id

    from bpfpatch.btf.fields import graph_roots, kptr_fields
    from bpfpatch.btf.types import Btf

    vtid = map_value_type_id(fd) if obj.btf_fd >= 0 else 0
    if not vtid:
        return (), ()
    if not loaded_btf:
        raw = btf_bytes(obj.btf_fd)
        loaded_btf.append(Btf(raw) if raw else None)
    btf = loaded_btf[0]
    return (kptr_fields(btf, vtid), graph_roots(btf, vtid)) if btf is not None else ((), ())


def _load_flags(prog) -> int:
    """The prog_flags libbpf loaded the program with: its own, and BPF_F_SLEEPABLE for a ``.s`` section
    (libbpf adds it at load time, not to `bpf_program__flags`)."""
    sleepable = prog.section.endswith(".s") or ".s/" in prog.section
    return prog.flags | (BPF_F_SLEEPABLE if sleepable else 0)


def _btf_ctx(prog):
    """The BTF-typed context of a tracing / LSM / struct_ops program, from the attach target the kernel
    reports (vmlinux targets only; None otherwise)."""
    from bpfpatch.btf.ctxargs import btf_ctx_layout

    info, _ = prog.as_loaded().info()
    if not info.attach_btf_id or info.attach_btf_obj_id not in (0, _vmlinux_btf_obj_id()):
        return None
    return btf_ctx_layout(kernel_types(), prog.prog_type, prog.expected_attach_type, info.attach_btf_id)


@lru_cache(maxsize=1)
def _vmlinux_btf_obj_id() -> int:
    """The kernel BTF object id of vmlinux (the one named "vmlinux"; 1 on every kernel seen)."""
    return 1


def _funcs(obj, prog, raw: bytes):
    """The subprograms' BTF prototypes (the analysis tests' reading of func_info and the object's BTF)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analysis"))
    from analysis_kernel import func_info_of, prog_funcs

    try:
        return prog_funcs(obj, func_info_of(prog, raw), prog.prog_type)
    except (BpfPatchError, OSError, ValueError):
        return None


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

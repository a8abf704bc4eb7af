"""Real objects through bpfpatch: identity byte for byte, every pass loads wherever the original does.

Used by tests/elf/test_elf_corpus.py on a bounded, seeded sample, and as a
script on everything (the numbers in the report and the README)::

    python tests/objcorpus.py [--no-passes] [--limit N] [--failures] [--bpftool] [--selftests DIR] [--libbpf-tools DIR] [OBJ.o ...]

Loading goes through libbpf (`bpfpatch.kernel.libbpf.load_object`): the
whole object, as a user's loader would load it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bpfpatch.elf import read_object
from bpfpatch.elf.rewrite import rewrite_object
from bpfpatch.kernel.analysis import for_object
from bpfpatch.passes import PassContext
from bpfpatch.errors import BpfPatchError

#: Every pass alone, the kernel's own order of its fixups, and everything.
PASS_SETS: tuple[tuple[str, ...], ...] = (
    ("div-guard",), ("dce",), ("blind",), ("zext",), ("ctx",),
    ("dce", "div-guard"), ("dce", "div-guard", "zext", "blind"), ("ctx", "dce", "div-guard", "zext", "blind"),
    ("kernel",),
)

THIRD_PARTY = sorted(Path("/usr/lib/x86_64-linux-gnu/bpf").glob("*.o"))
#: Debian's libbpf-tools: bcc's CO-RE tools, built by bcc's own Makefile (clang, bpftool gen object and
#: skeleton); every binary embeds its BPF object, which `libbpf_tools_objects` cuts out.
LIBBPF_TOOLS_PACKAGE = "libbpf-tools"
KERNEL_TREE = Path("/work/src/linux-source-6.12")
SELFTESTS = KERNEL_TREE / "tools/testing/selftests/bpf"


def embedded_objects(blob: bytes) -> list[bytes]:
    """BPF ELF objects embedded in a binary (libbpf skeletons keep the whole object as a byte string).

    Each is cut at ``\\x7fELF`` with e_machine EM_BPF (247) and runs to the end of its section
    header table or of its last section, whichever is later.
    """
    import struct

    out = []
    at = -1
    while (at := blob.find(b"\x7fELF\x02\x01\x01", at + 1)) >= 0:
        if at + 64 > len(blob) or struct.unpack_from("<H", blob, at + 18)[0] != 247:
            continue
        shoff = struct.unpack_from("<Q", blob, at + 0x28)[0]
        shentsize, shnum = struct.unpack_from("<HH", blob, at + 0x3A)
        end = shoff + shentsize * shnum
        if shentsize != 64 or at + end > len(blob):
            continue
        for k in range(shnum):
            hdr = at + shoff + k * shentsize
            sh_type = struct.unpack_from("<I", blob, hdr + 4)[0]
            off, size = struct.unpack_from("<QQ", blob, hdr + 0x18)
            if sh_type != 8:  # SHT_NOBITS takes no room
                end = max(end, off + size)
        if at + end <= len(blob):
            out.append(blob[at : at + end])
    return out


def libbpf_tools_objects(out_dir: Path) -> list[Path]:
    """The BPF objects embedded in the installed libbpf-tools binaries, as files in `out_dir` (none: not installed)."""
    try:
        res = subprocess.run(["dpkg", "-L", LIBBPF_TOOLS_PACKAGE], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if res.returncode != 0:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for line in sorted(res.stdout.splitlines()):
        binary = Path(line)
        if binary.parent != Path("/usr/sbin") or not binary.is_file():
            continue
        for k, blob in enumerate(embedded_objects(binary.read_bytes())):
            path = out_dir / f"{binary.name}{'' if not k else f'-{k}'}.bpf.o"
            path.write_bytes(blob)
            paths.append(path)
    return paths


def vmlinux_header(out_dir: Path) -> Path:
    """vmlinux.h from this kernel's BTF (bpftool), plus the headers -target bpf asks glibc for."""
    (out_dir / "gnu").mkdir(parents=True, exist_ok=True)
    (out_dir / "gnu" / "stubs-32.h").write_text("")
    path = out_dir / "vmlinux.h"
    if not path.exists():
        with open(path, "w") as f:
            subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c"], stdout=f, check=True)
    return path


def build_selftests(out_dir: Path, names: list[str] | None = None, *, vmlinux_dir: Path | None = None,
                    clang: str = "clang-19", jobs: int = 2) -> list[Path]:
    """Compile the kernel's selftest programs (progs/NAME.c) as its Makefile does; the ones that compile.

    Headers: vmlinux.h from this kernel, the tree's own libbpf headers (tools/lib/bpf) with
    bpf_helper_defs.h generated from its uapi bpf.h (scripts/bpf_doc.py), as the selftests build does.
    """
    inc = vmlinux_dir or out_dir / "inc"
    vmlinux_header(inc)
    defs = inc / "bpf_helper_defs.h"
    if not defs.exists():
        with open(defs, "w") as f:
            subprocess.run([sys.executable, str(KERNEL_TREE / "scripts/bpf_doc.py"), "--header", "--file",
                            str(KERNEL_TREE / "include/uapi/linux/bpf.h")], stdout=f, check=True, cwd=KERNEL_TREE)
    names = names or sorted(p.stem for p in (SELFTESTS / "progs").glob("*.c"))

    def one(name: str) -> Path | None:
        out = out_dir / f"{name}.o"
        cmd = [clang, "-O2", "-g", "-target", "bpf", "-mcpu=v3", "-D__TARGET_ARCH_x86", f"-I{inc}", f"-I{SELFTESTS / 'progs'}",
               f"-I{SELFTESTS}", f"-I{KERNEL_TREE / 'tools/lib'}", "-I/usr/include/x86_64-linux-gnu", "-w",
               "-c", str(SELFTESTS / "progs" / f"{name}.c"), "-o", str(out)]
        try:
            ok = subprocess.run(cmd, capture_output=True, timeout=120).returncode == 0
        except subprocess.TimeoutExpired:
            ok = False
        return out if ok else None

    with ThreadPoolExecutor(jobs) as pool:
        return [p for p in pool.map(one, names) if p is not None]


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


class Unchanged:
    """A pass that changes nothing: with it every section goes through the patch list and the writer."""

    name = "unchanged"

    def run(self, pl, ctx) -> None:
        """Nothing: the list is linearized and written as it came."""


def round_trip(path: Path) -> tuple[bool, str]:
    """Whether every section, decoded, put through a patch list and written again, gives the input byte for byte."""
    data = path.read_bytes()
    try:
        out = rewrite_object(data, None, [Unchanged()])
    except BpfPatchError as exc:
        return False, f"refused: {exc}"
    if out == data:
        return True, ""
    return False, f"differs (sizes {len(data)} -> {len(out)})"


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


def loads_bpftool(data: bytes, label: str) -> tuple[bool, str]:
    """Whether ``bpftool prog loadall`` loads the object (pinned under /sys/fs/bpf, unpinned again)."""
    import os
    import shutil

    with tempfile.TemporaryDirectory() as tmp:
        obj = Path(tmp) / "obj.o"
        obj.write_bytes(data)
        pin = Path("/sys/fs/bpf") / f"bpfpatch-objcorpus-{os.getpid()}"
        try:
            res = subprocess.run(["bpftool", "prog", "loadall", str(obj), str(pin)], capture_output=True, text=True, timeout=120)
        finally:
            shutil.rmtree(pin, ignore_errors=True)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and "skipping unrecognized" not in ln]
    return res.returncode == 0, (lines[-1] if lines else "")[:300]


@dataclass
class Tally:
    """Counts of one corpus run."""

    objects: int = 0
    identical: int = 0
    round_trips: int = 0
    original_loads: int = 0
    per_pass: dict[str, Counter] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def run(paths: list[Path], *, passes: bool = True, verbose: bool = False, loader=loads) -> Tally:
    """Identity on every object; with `passes`, every pass set on every object the original loads (`loader`)."""
    t = Tally()
    for path in paths:
        t.objects += 1
        ok, why = identity(path)
        t.identical += ok
        if not ok:
            t.failures.append(f"{path.name}: identity: {why}")
        ok, why = round_trip(path)
        t.round_trips += ok
        if not ok:
            t.failures.append(f"{path.name}: round trip: {why}")
        if not passes:
            continue
        data = path.read_bytes()
        base_ok, _ = loader(data, path.name)
        t.original_loads += base_ok
        if not base_ok:
            continue
        for ps in PASS_SETS:
            key = "+".join(ps)
            c = t.per_pass.setdefault(key, Counter())
            try:
                ctx = for_object(PassContext(aux_reg="auto"), read_object(data, opaque=True), ps)  # as `bpfpatch patch`
                out = rewrite_object(data, None, list(ps), ctx=ctx)
            except BpfPatchError as exc:
                c["refused"] += 1
                t.failures.append(f"{path.name}: {key}: refused: {exc}")
                continue
            except Exception:  # a crash is a bug: count it and show it
                c["crashed"] += 1
                t.failures.append(f"{path.name}: {key}: crashed: {traceback.format_exc(limit=3)}")
                continue
            ok, why = loader(out, f"{path.name}+{key}")
            c["loads" if ok else "fails"] += 1
            if not ok:
                t.failures.append(f"{path.name}: {key}: does not load: {why}")
        if verbose:
            print(path.name, file=sys.stderr)
    return t


def report(t: Tally) -> str:
    """The tally as a few lines of text."""
    lines = [f"identity byte for byte: {t.identical}/{t.objects}",
             f"decoded, through a patch list and written again, byte for byte: {t.round_trips}/{t.objects}"]
    if t.per_pass:
        lines.append(f"original loads: {t.original_loads}/{t.objects}")
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
    ap.add_argument("--bpftool", action="store_true", help="load with `bpftool prog loadall` instead of libbpf")
    ap.add_argument("--selftests", metavar="DIR", type=Path, help="compile every selftest program into DIR and run on them")
    ap.add_argument("--libbpf-tools", metavar="DIR", type=Path,
                    help="cut the BPF objects out of Debian's libbpf-tools binaries into DIR and run on them")
    args = ap.parse_args(argv)
    paths = args.objects or THIRD_PARTY
    if args.libbpf_tools:
        paths = libbpf_tools_objects(args.libbpf_tools)
        print(f"objects embedded in {LIBBPF_TOOLS_PACKAGE}: {len(paths)}")
    if args.selftests:
        args.selftests.mkdir(parents=True, exist_ok=True)
        total = len(list((SELFTESTS / "progs").glob("*.c")))
        paths = build_selftests(args.selftests)
        print(f"selftest programs compiled with clang-19: {len(paths)}/{total}")
    if args.limit:
        paths = paths[: args.limit]
    t = run(paths, passes=not args.no_passes, loader=loads_bpftool if args.bpftool else loads)
    print(report(t))
    if args.failures:
        print("\n".join(t.failures))
    return 0


if __name__ == "__main__":
    sys.exit(main())

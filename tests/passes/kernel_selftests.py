"""The kernel's own verifier test programs, as programs: extraction and the xlated comparison.

`selftests/bpf/verifier/*.c` (Debian's linux-source, or the tree in
``BPFPATCH_LINUX_SRC``) are C arrays of ``struct bpf_test`` initialisers built
from the kernel's BPF_* instruction macros.  Instead of parsing C, we let the C
compiler evaluate them: ``tests/progs/verifier_tests/extract.c`` includes one
file into an array and prints every test as JSON (`extract`).  `kernel_cases`
then keeps the ones that need no map fixups, no generated instructions, no
BTF or kfuncs, and that this kernel accepts, with the kernel's xlated
instructions (`comparable_rows` masks what only the kernel can know: helper
addresses, subprogram numbers in pseudo calls).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from bpfpatch import Program
from bpfpatch.isa import decode_slots, slot_rows, slots_from_rows
from bpfpatch.progtype import ProgType

HERE = Path(__file__).resolve().parent
EXTRACT_C = HERE.parent / "progs" / "verifier_tests" / "extract.c"
LINUX_CANDIDATES = [os.environ.get("BPFPATCH_LINUX_SRC", ""), "/work/src/linux-source-6.12"]
# Where Debian unpacks linux-source (the Makefile's step) also counts.
LINUX_CANDIDATES += sorted(str(p) for p in Path("/usr/src").glob("linux-source-*") if p.is_dir())

# test_verifier.c's flags: F_NEEDS_EFFICIENT_UNALIGNED_ACCESS loads with BPF_F_ANY_ALIGNMENT,
# F_LOAD_WITH_STRICT_ALIGNMENT with BPF_F_STRICT_ALIGNMENT; higher bits are prog_flags themselves.
F_NEEDS_EFFICIENT_UNALIGNED_ACCESS, F_LOAD_WITH_STRICT_ALIGNMENT = 1, 2
BPF_F_STRICT_ALIGNMENT, BPF_F_ANY_ALIGNMENT = 1, 2
ACCEPT, VERBOSE_ACCEPT = 1, 3


def linux_source() -> Path | None:
    """A kernel tree with tools/testing/selftests/bpf/verifier, or None."""
    for c in LINUX_CANDIDATES:
        if c and (Path(c) / "tools/testing/selftests/bpf/verifier").is_dir():
            return Path(c)
    return None


@dataclass
class SelfTest:
    """One ``struct bpf_test`` of a verifier/*.c file."""

    file: str
    index: int
    descr: str
    prog_type: ProgType
    result: int
    flags: int
    fixup: bool
    fill: bool
    attach_type: int
    special: bool  # kfunc, func_info or BTF: needs test_verifier.c's own set-up
    insns: list[tuple[int, int, int, int, int]]
    maps: dict[str, list[int]] = field(default_factory=dict)  # plain map fixups: kind -> ld_imm64 indices

    @property
    def name(self) -> str:
        return f"{self.file}#{self.index} {self.descr}"

    @property
    def prog_flags(self) -> int:
        flags = 0
        if self.flags & F_LOAD_WITH_STRICT_ALIGNMENT:
            flags |= BPF_F_STRICT_ALIGNMENT
        if self.flags & F_NEEDS_EFFICIENT_UNALIGNED_ACCESS:
            flags |= BPF_F_ANY_ALIGNMENT
        if self.flags & ~3:
            flags |= self.flags
        return flags

    def program(self) -> Program:
        """The test's instructions, slot for slot (raw: Program.from_bytes would validate them)."""
        return Program(slots_from_rows(self.insns))


def _build(src: Path, workdir: Path, name: str) -> Path | None:
    selftests = src / "tools/testing/selftests/bpf"
    inc = workdir / "include" / "linux"
    inc.mkdir(parents=True, exist_ok=True)
    # Only the uapi headers newer than the system's: tools/include/uapi as a whole shadows asm/.
    for h in ("bpf.h", "btf.h", "bpf_common.h", "bpf_perf_event.h"):
        target = src / "tools/include/uapi/linux" / h
        link = inc / h
        if target.exists() and not link.exists():
            link.symlink_to(target)
    exe = workdir / f"extract_{name}"
    cmd = ["gcc", "-w", f'-DTEST_FILE="verifier/{name}.c"', f"-I{workdir / 'include'}", f"-I{selftests}",
           "-o", str(exe), str(EXTRACT_C)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    return exe if res.returncode == 0 else None


def extract(workdir: Path, src: Path | None = None) -> tuple[list[SelfTest], list[str]]:
    """Every test of every verifier/*.c file, and the files that did not compile."""
    src = src or linux_source()
    if src is None or shutil.which("gcc") is None:
        return [], []
    tests: list[SelfTest] = []
    failed = []
    for path in sorted((src / "tools/testing/selftests/bpf/verifier").glob("*.c")):
        exe = _build(src, workdir, path.stem)
        if exe is None:
            failed.append(path.name)
            continue
        out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            t = json.loads(line)
            tests.append(SelfTest(
                path.name, t["index"], t["descr"], ProgType(t["prog_type"] or ProgType.SOCKET_FILTER),
                t["result"], t["flags"], bool(t["fixup"]), bool(t["fill"]), t["attach_type"],
                bool(t["kfunc"] or t["func_info_cnt"] or t["btf"]), [tuple(i) for i in t["insns"]],
                t.get("maps", {})))
    return tests, failed


def comparable_rows(rows: list, *, xlated: bool = True) -> list[tuple[int, int, int, int, int]]:
    """Slot rows with what only the loaded kernel knows masked: helper-call immediates
    (addresses relative to __bpf_call_base), the address a callback's ld_imm64 gets, and
    pseudo calls' off.  The kernel's xlated pseudo call holds the callee's subprogram
    number in imm; rows of ours (``xlated=False``) are given the same numbering, and their
    BPF_PROBE_MEM loads are shown as BPF_MEM, as the kernel's dump shows them."""
    number = {}
    if not xlated:
        starts = {0}
        for i, (code, _, src, _, imm) in enumerate(rows):
            if (code == 0x85 and src == 1) or (code == 0x18 and src == 4):
                starts.add(i + imm + 1)
        number = {s: k for k, s in enumerate(sorted(starts))}
    out = []
    func_load = False
    for i, (code, dst, src, off, imm) in enumerate(rows):
        if func_load:
            out.append((code, dst, src, off, 0))
            func_load = False
            continue
        if not xlated and code & 0x07 == 0x01 and code & 0xE0 == 0x20:
            code = code & 0x1F | 0x60  # bpf_insn_prepare_dump shows BPF_PROBE_MEM as BPF_MEM
        if code == 0x85 and src == 0:
            imm = 0
        elif code == 0x85 and src == 1:
            off = 0
            if not xlated:
                imm = number.get(i + imm + 1, -1)
        elif code == 0x18 and src == 4:
            imm, func_load = 0, True
        elif code == 0x18 and src in (1, 2):  # a map: its fd in ours, its id in the kernel's dump
            imm = 0
        out.append((code, dst, src, off, imm))
    return out


#: The maps test_verifier.c creates for its plain fixups: (map type, key size, value size, max entries, flags).
BPF_F_NO_PREALLOC, BPF_F_RDONLY_PROG, BPF_F_WRONLY_PROG = 1, 1 << 7, 1 << 8
TEST_VAL, OTHER_VAL = 48, 16  # sizeof(struct test_val), sizeof(struct other_val)
PLAIN_MAPS = {
    "hash_8b": (1, 8, 8, 1, BPF_F_NO_PREALLOC), "hash_48b": (1, 8, TEST_VAL, 1, BPF_F_NO_PREALLOC),
    "hash_16b": (1, 8, OTHER_VAL, 1, BPF_F_NO_PREALLOC), "array_48b": (2, 4, TEST_VAL, 1, 0),
    "array_ro": (2, 4, TEST_VAL, 1, BPF_F_RDONLY_PROG), "array_wo": (2, 4, TEST_VAL, 1, BPF_F_WRONLY_PROG),
    "array_small": (2, 4, 1, 1, 0),
}


@dataclass
class KernelCase:
    """A self test the running kernel accepts, with its xlated instructions (and its maps' facts)."""

    test: SelfTest
    xlated: list[tuple[int, int, int, int, int]]
    insns: list[tuple[int, int, int, int, int]] | None = None  # with the map fds written in
    maps: dict = field(default_factory=dict)  # fd -> MapRef

    def program(self) -> Program:
        """The instructions as loaded (map fds in place)."""
        return Program(slots_from_rows(self.insns)) if self.insns is not None else self.test.program()

    @property
    def rewritten(self) -> bool:
        """Did the kernel change anything besides what only it can know?"""
        return comparable_rows(self.xlated) != comparable_rows(slot_rows(self.program().slots), xlated=False)


@lru_cache(maxsize=1)
def kernel_cases(workdir: str) -> tuple[list[KernelCase], dict[str, int]]:
    """The loadable self tests (no fixups, no generated code, no BTF set-up) with xlated output,
    and counts of what was left out and why."""
    from bpfpatch.errors import BpfPatchError
    from bpfpatch.kernel import load_program

    tests, failed = extract(Path(workdir))
    why = {"files that did not compile": len(failed), "extracted": len(tests)}
    cases = []
    for t in tests:
        reason = ("other fixups (prog arrays, sockmaps, BTF maps, ...)" if t.fixup else
                  "generated (fill_helper)" if t.fill else "BTF / kfunc set-up" if t.special else
                  "expected to be rejected" if t.result not in (ACCEPT, VERBOSE_ACCEPT) else None)
        if reason is None:
            try:
                cases.append(_load_case(t, load_program))
                continue
            except BpfPatchError:
                reason = "refused by this kernel"
        why[reason] = why.get(reason, 0) + 1
    why["with plain maps"] = sum(1 for c in cases if c.maps)
    return cases, why


def _load_case(t: SelfTest, load_program) -> KernelCase:
    """Create the test's plain maps as test_verifier.c does, write their fds in, load, read xlated."""
    import os

    from bpfpatch.analysis.facts import MapRef
    from bpfpatch.kernel.bpf_sys import Cmd, MapCreateAttr, bpf

    insns = [list(i) for i in t.insns]
    refs, fds = {}, []
    try:
        for k, (kind, where) in enumerate(sorted(t.maps.items())):
            mt, key, value, entries, flags = PLAIN_MAPS[kind]
            fd = bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=mt, key_size=key, value_size=value, max_entries=entries,
                                                   map_flags=flags))
            fds.append(fd)
            refs[fd] = MapRef(k, kind, fd, mt, key, value, entries, map_flags=flags)
            for i in where:
                insns[i][4] = fd
        rows = [tuple(i) for i in insns]
        with load_program(Program(slots_from_rows(rows)), t.prog_type, prog_flags=t.prog_flags,
                          expected_attach_type=t.attach_type) as p:
            return KernelCase(t, slot_rows(decode_slots(p.xlated())), rows if refs else None, refs)
    finally:
        for fd in fds:
            os.close(fd)

"""Checking the analysis against the kernel on whole ELF objects (shared by the corpus tests).

`check_object` loads an object through libbpf, then, per program, the
instructions libbpf relocated: once with log_level 2 (the kernel's states),
once with BPF_F_TEST_RND_HI32 (the kernel's zext_dst set, read from xlated),
and compares `bpfpatch.analysis.verifier.analyze` with both, plus ``seen``
with the kernel's dead-code removal.  Run as a script it prints the table:

    python tests/analysis/analysis_kernel.py OBJ...
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from bpfpatch.analysis.facts import MapRef
from bpfpatch.analysis.verifier import AnalysisError, analyze
from bpfpatch.analysis.vlog import Comparison, compare, parse_log
from bpfpatch.btf.vmlinux import kernel_types
from bpfpatch.isa import build as b
from bpfpatch.isa import insns_to_slots
from bpfpatch.program import Program
from bpfpatch.progtype import ProgType

F_TEST_RND_HI32 = 1 << 2
BPF_F_RDONLY_PROG = 1 << 7


@dataclass
class ProgResult:
    """One program of a corpus object, compared with the kernel."""

    obj: str
    name: str
    prog_type: str
    insns: int
    kernel_error: str = ""
    our_error: str = ""
    cmp: Comparison | None = None
    zext_diff: list[int] = field(default_factory=list)  # kernel zero-extends, we do not (must be empty)
    zext_extra: list[int] = field(default_factory=list)  # we zero-extend, the kernel proved it unneeded
    zext_checked: bool = False
    processed: int = 0
    kernel_processed: int | None = None

    @property
    def types_agree(self) -> bool:
        return self.cmp is not None and self.cmp.types_agree

    def summary(self) -> str:
        if self.kernel_error or self.our_error:
            return f"{self.obj}:{self.name}: kernel={self.kernel_error[:60]!r} ours={self.our_error[:60]!r}"
        c = self.cmp
        return (f"{self.obj}:{self.name} ({self.prog_type}, {self.insns} insns): steps {c.steps} types {c.type_match} "
                f"exact {c.exact_match} zext missing {self.zext_diff[:5]} extra {len(self.zext_extra)} processed {self.processed}/{self.kernel_processed}")


def map_value_type_id(fd: int) -> int:
    """The BTF type id of a map's value (struct bpf_map_info's btf_value_type_id; 0 without BTF)."""
    import ctypes

    from bpfpatch.kernel.bpf_sys import Cmd, InfoAttr, addr, bpf

    buf = (ctypes.c_uint8 * 96)()
    try:
        bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoAttr(bpf_fd=fd, info_len=96, info=addr(buf)))
    except OSError:
        return 0
    return int.from_bytes(bytes(buf[72:76]), "little")  # after btf_id (64) and btf_key_type_id (68)


def map_refs(insns: bytes, obj) -> dict[int, MapRef]:
    """MapRefs keyed by the fds libbpf wrote into the ld_imm64s (with their kptr fields from the object's BTF)."""
    from bpfpatch.btf.fields import kptr_fields
    from bpfpatch.btf.types import Btf

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kernel"))
    from kernel_xlated_corpus import inner_map

    out: dict[int, MapRef] = {}
    btf = None
    for i, m in enumerate(obj.maps.values()):
        info = m.info
        frozen = None
        if (".rodata" in info.name or info.name.endswith(".kconfig")) and info.map_type == 2 and info.flags & BPF_F_RDONLY_PROG:
            frozen = m.lookup(b"\0" * 4)  # libbpf froze it: the verifier reads its constants
        kptrs: tuple = ()
        vtid = map_value_type_id(m.fd) if obj.btf_fd >= 0 else 0
        if vtid:
            if btf is None:
                raw = btf_bytes(obj.btf_fd)
                btf = Btf(raw) if raw else False
            if btf:
                kptrs = kptr_fields(btf, vtid)
        inner = None
        if info.map_type in (12, 13):  # array / hash of maps: the inner map a lookup in it returns
            if btf is None and obj.btf_fd >= 0:
                raw = btf_bytes(obj.btf_fd)
                btf = Btf(raw) if raw else False
            inner = inner_map(m, btf or None)
        out[m.fd] = MapRef(i, info.name, m.fd, info.map_type, info.key_size, info.value_size, info.max_entries,
                           frozen_value=frozen, kptr_fields=kptrs, inner=inner)
    return out


def _is_rnd_patch(x: list[bytes], j: int) -> bool:
    """``AX = rand; AX <<= 32; rX |= AX`` starts at xlated slot `j`."""
    return (j + 2 < len(x) and x[j][0] == 0xB7 and x[j][1] & 0xF == 11 and x[j + 1][0] == 0x67
            and x[j + 1][1] & 0xF == 11 and x[j + 2][0] == 0x4F and x[j + 2][1] >> 4 == 11)


#: Whether this kernel honours BPF_F_TEST_RND_HI32 (probed once: `kernel_applies_rnd_hi32`).
_RND_HI32: list[bool] = []
#: The probe: ``w1 = 5`` defines a subregister whose upper half nothing reads, so the flag's patch follows it.
RND_PROBE = (b.mov32_imm(1, 5), b.mov64_imm(0, 0), b.exit_insn())


def kernel_applies_rnd_hi32() -> bool:
    """Does the running kernel follow a 32-bit definition nobody reads the upper half of with its random
    upper half (``AX = rand; AX <<= 32; rX |= AX``) under BPF_F_TEST_RND_HI32 -- the zext_dst oracle?

    6.18.44 (this machine from stop 21) loads the flag and patches nothing, where the 6.18 of the sessions
    before did: the zext comparisons are then skipped (`ProgResult.zext_checked` stays False)."""
    if not _RND_HI32:
        from bpfpatch.errors import KernelError
        from bpfpatch.kernel import load_program

        try:
            with load_program(insns_to_slots(list(RND_PROBE)).tobytes(), ProgType.SOCKET_FILTER,
                              prog_flags=F_TEST_RND_HI32) as lp:
                _RND_HI32.append(len(lp.xlated()) // 8 > len(RND_PROBE))
        except KernelError:
            _RND_HI32.append(False)
    return _RND_HI32[0]


def rnd_hi32_defs(raw: bytes, xlated: bytes) -> set[int] | None:
    """Original slots of the 32-bit definitions the kernel followed by its random-upper-half patch.

    Aligns the original instructions with the xlated ones (the kernel also
    rewrote context accesses, calls, map lookups and removed dead code); a
    patch belongs to the last original instruction before it.  None when the
    alignment fails (the comparison is then skipped).
    """
    o = [raw[i:i + 8] for i in range(0, len(raw), 8)]
    x = [xlated[i:i + 8] for i in range(0, len(xlated), 8)]

    def same(a: int, b: int) -> bool:
        if a >= len(o) or b >= len(x):
            return a >= len(o) and b >= len(x)
        p, q = o[a], x[b]
        if p == q:
            return True
        if p[0] != q[0]:
            return False
        cls = p[0] & 7
        if p[0] in (0x85, 0x18):
            return True
        return cls in (5, 6) and p[1] == q[1] and p[4:] == q[4:]  # a jump whose offset moved

    out: set[int] = set()
    i = j = 0
    last = -1
    while i < len(o) and j < len(x):
        if _is_rnd_patch(x, j):
            if last >= 0:
                out.add(last)
            j += 3
            continue
        if same(i, j):
            last = i
            step = 2 if o[i][0] == 0x18 else 1
            i += step
            j += step
            continue
        # resynchronize: the smallest total skip after which two instructions agree
        best = None
        for total in range(1, 90):
            for di in range(0, min(total, 64) + 1):
                dj = total - di
                if dj > 24:
                    continue
                a, b = i + di, j + dj
                nb = b + 3 + 1 if _is_rnd_patch(x, b + 1) else b + 1
                if a < len(o) and b < len(x) and same(a, b) and same(a + 1, nb):
                    best = (di, dj)
                    break
            if best:
                break
        if best is None:
            return None
        di, dj = best
        for k in range(j, j + dj):
            if _is_rnd_patch(x, k):
                # the patch follows the definition itself, unchanged: the skipped original that is x[k - 1]
                # (a converted context store between two definitions is several xlated instructions)
                own = [a for a in range(i, i + di) if k > 0 and o[a] == x[k - 1]]
                out.add(own[0] if own else i if di else last)
        last = i + di - 1 if di else last
        i += di
        j += dj
    return out


def func_info_of(prog, raw: bytes) -> tuple[bytes, int] | None:
    """func_info records for reloading a program's instructions `raw` (needed where it has callbacks or
    global functions: "missing btf func_info"): the kernel keeps them at xlated offsets, so the
    type ids are paired, in order, with the subprogram starts of `raw`."""
    import ctypes

    from bpfpatch.kernel.bpf_sys import Cmd, InfoAttr, ProgInfo, addr, bpf

    info = ProgInfo()
    bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoAttr(bpf_fd=prog.fd, info_len=ctypes.sizeof(info), info=addr(info)))
    n, rec = info.nr_func_info, info.func_info_rec_size
    if n <= 1 or not rec:
        return None
    buf = (ctypes.c_uint8 * (n * rec))()
    again = ProgInfo(nr_func_info=n, func_info_rec_size=rec, func_info=addr(buf))
    bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoAttr(bpf_fd=prog.fd, info_len=ctypes.sizeof(again), info=addr(again)))
    starts = {0}
    i = 0
    while i < len(raw) // 8:
        code, regs = raw[8 * i], raw[8 * i + 1]
        imm = int.from_bytes(raw[8 * i + 4:8 * i + 8], "little", signed=True)
        if (code == 0x85 and regs >> 4 == 1) or (code == 0x18 and regs >> 4 == 4):
            starts.add(i + 1 + imm)
        i += 2 if code == 0x18 else 1
    if len(starts) != n:
        return None
    recs = bytes(buf)
    out = b"".join(s.to_bytes(4, "little") + recs[k * rec + 4:(k + 1) * rec] for k, s in enumerate(sorted(starts)))
    return out, rec


def btf_bytes(btf_fd: int) -> bytes | None:
    """The raw BTF the kernel holds for `btf_fd` (BPF_OBJ_GET_INFO_BY_FD on a BTF object)."""
    import ctypes

    from bpfpatch.kernel.bpf_sys import Cmd, InfoAttr, addr, bpf

    class BtfInfo(ctypes.Structure):
        _fields_ = [("btf", ctypes.c_uint64), ("btf_size", ctypes.c_uint32), ("id", ctypes.c_uint32),
                    ("name", ctypes.c_uint64), ("name_len", ctypes.c_uint32), ("kernel_btf", ctypes.c_uint32)]

    try:
        info = BtfInfo()
        bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoAttr(bpf_fd=btf_fd, info_len=ctypes.sizeof(info), info=addr(info)))
        buf = (ctypes.c_uint8 * info.btf_size)()
        again = BtfInfo(btf=addr(buf), btf_size=info.btf_size)
        bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoAttr(bpf_fd=btf_fd, info_len=ctypes.sizeof(again), info=addr(again)))
    except OSError:
        return None
    return bytes(buf)


def prog_funcs(obj, fi: tuple[bytes, int] | None, prog_type):
    """The subprograms' BTF prototypes (`bpfpatch.btf.funcs`) from the func_info `fi` and the object's BTF."""
    from bpfpatch.btf.funcs import subprog_funcs
    from bpfpatch.btf.types import Btf

    if fi is None or obj.btf_fd < 0:
        return None
    raw = btf_bytes(obj.btf_fd)
    if raw is None:
        return None
    recs, size = fi
    pairs = [(int.from_bytes(recs[k:k + 4], "little"), int.from_bytes(recs[k + 4:k + 8], "little"))
             for k in range(0, len(recs), size)]
    from bpfpatch.progtype import prog_type_of

    return subprog_funcs(Btf(raw), pairs, prog_type_of(int(prog_type)))


def check_program(obj, prog, label: str) -> ProgResult:
    from bpfpatch.errors import KernelError
    from bpfpatch.kernel import load_program

    raw = prog.insns()
    res = ProgResult(label, prog.name, prog.prog_type.name.lower(), len(raw) // 8)
    program = Program.from_bytes(raw, validate=False)
    fi = func_info_of(prog, raw)
    try:
        a = analyze(program, prog.prog_type, maps=map_refs(raw, obj), attach_type=prog.expected_attach_type,
                    kernel_types=kernel_types, funcs=prog_funcs(obj, fi, prog.prog_type))
        res.processed = a.processed
    except AnalysisError as exc:
        res.our_error = str(exc)
        a = exc.analysis
    btf = {"prog_btf_fd": obj.btf_fd, "func_info": fi[0], "func_info_rec_size": fi[1]} if fi and obj.btf_fd >= 0 else {}
    try:
        with load_program(raw, prog.prog_type, expected_attach_type=prog.expected_attach_type, prog_flags=prog.flags,
                          log_level=2, log_size=1 << 28, **btf) as lp:
            log = parse_log(lp.verifier_log)
    except KernelError as exc:
        res.kernel_error = (getattr(exc, "log", "") or str(exc)).strip().splitlines()[-1] if str(exc) else "refused"
        return res
    res.kernel_processed = log.processed
    if a is not None:
        res.cmp = compare(a.aux, log)
    if not res.our_error and a is not None and kernel_applies_rnd_hi32():
        try:
            with load_program(raw, prog.prog_type, expected_attach_type=prog.expected_attach_type,
                              prog_flags=prog.flags | F_TEST_RND_HI32, **btf) as lp:
                kernel_no_zext = rnd_hi32_defs(raw, lp.xlated())
        except KernelError:
            return res
        if kernel_no_zext is None:
            return res
        res.zext_checked = True
        # a 32-bit definition the kernel patched is one whose upper half it proves unread: not zext_dst
        ours_no_zext = {i for i, x in enumerate(a.aux) if x is not None and x.seen and _defines32(raw, i, x)
                        and not x.zext_dst}
        res.zext_diff = sorted(ours_no_zext - kernel_no_zext)
        res.zext_extra = sorted(kernel_no_zext - ours_no_zext)
    return res


def _converted_loads():
    from bpfpatch.analysis.facts import RegType

    return frozenset({RegType.PTR_TO_CTX, RegType.PTR_TO_SOCKET, RegType.PTR_TO_SOCK_COMMON, RegType.PTR_TO_TCP_SOCK,
                      RegType.PTR_TO_XDP_SOCK})


CONVERTED_LOADS = _converted_loads()


def _defines32(raw: bytes, i: int, aux) -> bool:
    """Definitions the kernel's rnd_hi32 pass patches when not zext_dst (insn_def_regno, !is_reg64)."""
    code, imm = raw[8 * i], int.from_bytes(raw[8 * i + 4:8 * i + 8], "little", signed=True)
    cls = code & 7
    if cls == 4:  # ALU32, but a 64-bit byte swap defines all 64 bits
        # div/mod by a register (and signed by -1) are rewritten by do_misc_fixups first: not observable
        if code & 0xF0 in (0x30, 0x90) and (code & 0x08 or imm == -1):
            return False
        return not (code & 0xF0 == 0xD0 and imm == 64)
    if cls == 7:
        return code & 0xF0 == 0xD0 and imm in (16, 32)
    if cls == 1:
        # loads the kernel converts (convert_ctx_accesses: the context, and bpf_sock / tcp_sock /
        # xdp_sock fields) are patched instructions, and bpf_patch_insn_data sets a patched
        # instruction's zext_dst to "defines a 32-bit subregister" (adjust_insn_aux_data): the
        # kernel never randomizes their upper half, whatever do_check found
        return code & 0xE0 == 0x60 and code & 0x18 != 0x18 and aux.ptr_type not in CONVERTED_LOADS
    # LD_ABS/IND are 32-bit definitions too, but do_misc_fixups replaces them before the zext pass
    if cls == 3 and code & 0xE0 == 0xC0:
        return code & 0x18 == 0x00 and (imm & 1 or imm in (0xE1, 0xF1))
    return False


def check_object(path: str, programs: list[str] | None = None) -> list[ProgResult]:
    """Every loadable program of the object at `path`, compared with the kernel."""
    from bpfpatch.kernel import load_object
    from bpfpatch.kernel.libbpf import LibbpfError

    out = []
    label = path.rsplit("/", 1)[-1]
    try:
        objs = [load_object(path, programs=programs)]
    except LibbpfError:
        objs = []
        from bpfpatch.elf import read_object

        names = programs or [sym.name for sec, prog in read_object(path).programs.items() if sec != ".text"
                             for sym in prog.meta.get("symbols", ()) if sym.binding in ("global", "STB_GLOBAL")]
        for name in names:
            try:
                objs.append(load_object(path, programs=[name]))
            except LibbpfError:
                continue
    for obj in objs:
        with obj:
            for prog in obj.programs.values():
                if prog.loaded and (programs is None or prog.name in programs or prog.section in programs):
                    out.append(check_program(obj, prog, label))
    return out


def assert_selftest_agrees(name: str, out_dir: Path) -> None:
    """Build the kernel selftest program `name` (skipping with the reason where that cannot be done) and
    assert that every program of it the kernel accepts is accepted by the analysis with the log's types."""
    import shutil

    import pytest
    from objcorpus import SELFTESTS, build_selftests

    if shutil.which("clang-19") is None or not SELFTESTS.exists():
        pytest.skip("clang-19 or the kernel selftests source is missing")
    out_dir.mkdir(exist_ok=True)
    built = build_selftests(out_dir, [name], vmlinux_dir=out_dir / "inc")
    if not built:
        pytest.skip(f"{name}.c does not compile here")
    accepted = [r for r in check_object(str(built[0])) if not r.kernel_error]
    assert accepted, f"{name}: the kernel loads none of its programs on their own"
    for r in accepted:
        assert not r.our_error, f"{r.name}: we refuse what the kernel accepts: {r.our_error}"
        assert r.cmp.types_agree, f"{r.name}: {r.cmp.type_mismatches[:2]}"


def main(argv: list[str]) -> int:
    results = [r for path in argv[1:] for r in check_object(path)]
    for r in results:
        print(r.summary())
        if r.cmp and r.cmp.type_mismatches:
            for insn, k, ours in r.cmp.type_mismatches[:3]:
                print(f"   TYPE {insn}: kernel {k}\n        ours   {ours[:2]}")
        if r.cmp and r.cmp.exact_mismatches:
            for insn, k, ours in r.cmp.exact_mismatches[:3]:
                print(f"   EXACT {insn}: kernel {k}\n         ours   {ours[:2]}")
    agree = sum(r.types_agree for r in results)
    print(f"{agree}/{len(results)} programs: types agree at every instruction")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

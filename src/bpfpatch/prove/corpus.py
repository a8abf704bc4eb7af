"""Prove every built-in pass's rewrite of a set of programs: the table the tests and the benchmark print.

    >>> rows = prove_passes(programs, ["div-guard", "dce", "blind", "zext", "ctx"])

Each row is (program, pass, slots before, slots after, `ProofResult`); a pass
that changes nothing is proved at once (identical programs); the ``ctx`` pass
is proved with the rewritten program reading the kernel's ``struct sk_buff``
and only on socket-buffer programs (its shipped mapping is for them); the
``kernel`` pass's output is read as the kernel's view (`bpfpatch.prove.lowered`).
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

from bpfpatch.errors import BpfPatchError
from bpfpatch.program import Program
from bpfpatch.progtype import ProgType, prog_type_of
from bpfpatch.prove import layout as L
from bpfpatch.prove.equiv import ProofResult, ProofVerdict, prove_equivalent

BUILTIN_PASSES = ("div-guard", "dce", "blind", "zext", "ctx", "kernel")


#: How each pass's output reads the context: the ctx pass's through struct sk_buff, the kernel pass's as the
#: kernel's view (its lowered sequences read as what they lower).
REWRITTEN_CTX = {"ctx": "kernel", "kernel": "xlated"}


class Row(NamedTuple):
    """One proof of one pass on one program."""

    program: str
    pass_name: str
    before: int
    after: int
    result: ProofResult


def elf_programs(path, *, prefix: str = "") -> list[tuple[str, Program, ProgType]]:
    """Every (section:function, linked program, type) of a BPF object that links."""
    from bpfpatch.elf import read_object

    obj = read_object(path)
    out = []
    for sec, prog in obj.programs.items():
        if sec == ".text" or not prog.meta.get("symbols"):
            continue
        try:
            ptype = prog_type_of(sec)
        except BpfPatchError:
            continue
        funcs = sorted({s.name for s in prog.meta["symbols"] if s.binding == "STB_GLOBAL"}) or [None]
        for fn in funcs:
            name = f"{sec}:{fn}" if fn else sec
            try:
                out.append((prefix + name, obj.linked_program(name), ptype))
            except BpfPatchError:
                continue
    return out


def prove_passes(programs: Iterable[tuple[str, Program, ProgType]], passes: Iterable[str] = BUILTIN_PASSES, *,
                 seed: int = 1, max_len: int = 128, timeout: float = 30.0) -> list[Row]:
    """Run each pass alone on each program and prove the rewrite."""
    from bpfpatch.passes import PassContext, run_passes

    rows = []
    passes = list(passes)
    for name, prog, ptype in programs:
        for pname in passes:
            if pname == "ctx" and ptype not in L.SKB_TYPES:
                continue
            try:
                new = run_passes(prog, [pname], PassContext(seed=seed, prog_type=ptype, options=pass_options(prog, ptype)))
            except BpfPatchError as exc:
                rows.append(Row(name, pname, len(prog.slots), 0,
                                ProofResult(ProofVerdict.UNDECIDED, f"the pass refused: {exc}")))
                continue
            res = prove_equivalent(prog, new, ptype, max_len=max_len, timeout=timeout,
                                   rewritten_ctx=REWRITTEN_CTX.get(pname, "user"))
            rows.append(Row(name, pname, len(prog.slots), len(new.slots), res))
    return rows


def pass_options(prog: Program, ptype: ProgType) -> dict:
    """Pass options: a tracing or LSM program's analysis reads its arguments' BTF types (the attach target
    its section names, in the running kernel's BTF), as ``bpfpatch patch`` gives them."""
    from bpfpatch.prove.model import KERNEL_MEMORY_TYPES

    from bpfpatch.btf.ctxargs import section_ctx_layout
    from bpfpatch.btf.vmlinux import kernel_types

    kt = kernel_types()
    if kt is None:
        return {}
    # every type: the kfuncs' prototypes (bpf_iter_num_next's element was an unknown scalar without them)
    if ptype not in KERNEL_MEMORY_TYPES:
        return {"kernel": {"analysis": {"kernel_types": kt}}}
    layout = section_ctx_layout(kt, prog.meta.get("section") or "")
    if layout is None:
        return {}
    return {"kernel": {"analysis": {"kernel_types": kt, "ctx_layout": layout}}}


def summary(rows: list[Row]) -> dict[str, dict[str, int]]:
    """pass -> {proved, counterexample, undecided} counts."""
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        d = out.setdefault(r.pass_name, {v.value: 0 for v in ProofVerdict})
        d[r.result.verdict.value] += 1
    return out

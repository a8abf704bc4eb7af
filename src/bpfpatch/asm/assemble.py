"""Text -> instructions, for both styles, with labels and llvm-objdump listings."""

from __future__ import annotations

import re

from bpfpatch.asm.shapes import Form, normalize, num_value, table, tokenize
from bpfpatch.errors import AsmError
from bpfpatch.isa import LD_IMM64, Insn, build, decode_slots, slots_to_insns
from bpfpatch.isa.opcodes import CallSrc

_LISTING = re.compile(r"^\s*[0-9a-fA-F]+:\s+((?:[0-9a-fA-F]{2}\s){7}[0-9a-fA-F]{2}(?:\s(?:[0-9a-fA-F]{2}\s){7}[0-9a-fA-F]{2})?)\s*(.*)$")
_KERNEL = re.compile(r"^(?:\d+:\s*)?\(([0-9a-fA-F]{2})\)\s*(.*)$")
_LABEL = re.compile(r"^([A-Za-z_.$][\w.$]*):$")
_FUNC_HEADER = re.compile(r"^[0-9a-fA-F]+\s+<([^>]+)>:$")
_SKIP = re.compile(r"^(Disassembly of section|[^\s:]+:\s+file format|\s*[0-9a-fA-F]+:\s+R_BPF_|\.text|\.section|\.globl|\.p2align)")
_TARGET = re.compile(r"^(.*\b(?:goto|gotol|may_goto|call))\s+([A-Za-z_.$][\w.$]*)$")
_SYMBOLIZED = re.compile(r"\s+<[^<>\s]+>$")
_COMMENT = re.compile(r"\s*(?:;|//).*$")
# Map and subprogram references as bpftool and the kit write them (llvm-objdump has no text for them):
# r1 = map[fd:7] / map[id:7] (BPF_PSEUDO_MAP_FD), map[fd:7][0]+16 (MAP_VALUE), map[idx:2] (MAP_IDX),
# map[idx:2]+8 (MAP_IDX_VALUE), subprog[+5] (FUNC).
_MAPREF = re.compile(
    r"^r(\d+)\s*=\s*(?:map\[(fd|id|idx):\s*(\d+)\](\[0\])?(?:\s*\+\s*(\d+))?|subprog\[([+-]\d+)\])$"
)


def _mapref(text: str) -> Insn | None:
    m = _MAPREF.match(" ".join(text.split()))
    if m is None:
        return None
    dst, kind, num, elem, off, func = m.groups()
    d = int(dst)
    if func is not None:
        return build.ld_func(d, int(func))
    n, o = int(num), int(off or 0)
    if kind == "idx":
        return build.ld_map_idx_value(d, n, o) if (off is not None or elem) else build.ld_map_idx(d, n)
    return build.ld_map_value(d, n, o) if (off is not None or elem) else build.ld_map_fd(d, n)


def _wrap(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def _fields(form: Form, tokens: list[tuple[str, str]]) -> Insn | None:
    f = dict(form.fixed)
    lo = hi = None
    for role, (kind, text) in zip(form.roles, tokens):
        if role.startswith("="):
            want = role[1:]
            got = f"reg{int(text[1:])}" if kind == "reg" else str(num_value(text))
            if want != got:
                return None
        elif role in ("dst", "src"):
            f[role] = int(text[1:])
        elif role == "off":
            f["off"] = _wrap(num_value(text), 16)
        elif role == "imm":
            f["imm"] = _wrap(num_value(text), 32)
        elif role == "imm64":
            f["imm"] = _wrap(num_value(text), 64)
        elif role == "imm_lo":
            lo = num_value(text) & 0xFFFFFFFF
        elif role == "imm_hi":
            hi = num_value(text) & 0xFFFFFFFF
        elif role == "asc_hi":
            f["imm"] = (f.get("imm", 0) & 0xFFFF) | ((num_value(text) & 0xFFFF) << 16)
        elif role == "asc_lo":
            f["imm"] = (f.get("imm", 0) & ~0xFFFF) | (num_value(text) & 0xFFFF)
    if lo is not None:
        f["imm"] = _wrap(lo | ((hi or 0) << 32), 64)
    return Insn(form.code, f.get("dst", 0), f.get("src", 0), f.get("off", 0), f.get("imm", 0))


def _helper(name: str) -> int | None:
    try:
        return build.helper_id(name)
    except build.BuildError:
        return None


def parse_insn(text: str, *, style: str | None = None, code: int | None = None) -> Insn:
    """One instruction's text (either style) -> `Insn`; raise `AsmError` if it is not one."""
    m = _KERNEL.match(text.strip())
    if m:
        code, text, style = int(m.group(1), 16), m.group(2), "kernel"
    ref = _mapref(text)
    if ref is not None and code in (None, LD_IMM64):
        return ref
    shape, tokens = tokenize(normalize(text))
    for st in ([style] if style else ["llvm", "kernel"]):
        for form in table(st).get(shape, ()):
            if code is not None and form.code != code:
                continue
            insn = _fields(form, tokens)
            if insn is not None:
                return insn
    raise AsmError("not an eBPF instruction", text=text)


def assemble(text: str, *, style: str | None = None) -> list[Insn]:
    """Assemble a program: either style, comments, labels, or llvm-objdump -d output as is.

    Jump and call targets may be labels (``goto out``, ``call helper_fn`` for a
    subprogram).  In an objdump listing the hex column is authoritative, so
    listings reproduce their bytes exactly.
    """
    items: list[tuple[int, Insn | None, str | None, bool, str]] = []  # (line, insn, label target, is call, text)
    labels: dict[str, int] = {}
    slot = 0
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not line.strip() or _SKIP.match(line):
            continue
        m = _LISTING.match(line)
        if m:
            data = bytes.fromhex(m.group(1).replace(" ", ""))
            insn = slots_to_insns(decode_slots(data))[0]
            items.append((lineno, insn, None, False, line))
            slot += insn.nslots
            continue
        stripped = _COMMENT.sub("", line).strip()
        if not stripped:
            continue
        h = _FUNC_HEADER.match(stripped) or _LABEL.match(stripped)
        if h:
            labels[h.group(1)] = slot
            continue
        stripped = _SYMBOLIZED.sub("", stripped)
        target = None
        t = _TARGET.match(stripped)
        if t and not re.fullmatch(r"[rw]\d+|pc", t.group(2)):
            target = t.group(2)
            stripped = f"{t.group(1)} +0" if not t.group(1).endswith("call") else f"{t.group(1)} 0"
        try:
            insn = parse_insn(stripped, style=style)
        except AsmError as exc:
            raise AsmError(exc.message, line=lineno, text=raw) from None
        is_call = target is not None and stripped.endswith("call 0")
        if is_call:
            insn = insn._replace(src=CallSrc.PSEUDO_CALL)
        items.append((lineno, insn, target, is_call, raw))
        slot += insn.nslots
    out: list[Insn] = []
    slot = 0
    for lineno, insn, target, is_call, raw in items:
        if target is not None:
            if target not in labels and is_call and build.helper_name(_helper(target) or 0):
                out.append(build.call_helper(_helper(target)))  # `call map_lookup_elem`: a helper by name
                slot += 1
                continue
            if target not in labels:
                raise AsmError(f"unknown label {target!r}", line=lineno, text=raw)
            insn = insn.with_offset(labels[target] - slot - 1)
        out.append(insn)
        slot += 2 if insn.code == LD_IMM64 else 1
    return out

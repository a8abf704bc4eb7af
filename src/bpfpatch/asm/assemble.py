"""Text -> instructions, for both styles, with labels and llvm-objdump listings."""

from __future__ import annotations

import re

from bpfpatch.asm.shapes import FieldRangeError, Form, normalize, num_value, table, tokenize
from bpfpatch.errors import AsmError, BpfPatchError
from bpfpatch.isa import LD_IMM64, Insn, build, decode_slots, slots_to_insns, validate_slots
from bpfpatch.isa.refs import Target
from bpfpatch.isa.opcodes import CallSrc

_LISTING = re.compile(r"^\s*[0-9a-fA-F]+:\s+((?:[0-9a-fA-F]{2}\s){7}[0-9a-fA-F]{2}(?:\s(?:[0-9a-fA-F]{2}\s){7}[0-9a-fA-F]{2})?)\s*(.*)$")
_KERNEL = re.compile(r"^(?:\d+:\s*)?\(([0-9a-fA-F]{2})\)\s*(.*)$")
_LABEL = re.compile(r"^([A-Za-z_.$][\w.$]*):$")
# A listing's section header: libbpf's names hold '/', '-' and more ("tracepoint/syscalls/sys_enter_x:").
_SECTION_HEADER = re.compile(r"^([A-Za-z_.$][\w.$/+\-@]*):$")
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


#: role -> (field name, lowest, highest value the text may give).  Immediates are 32-bit
#: words written signed (llvm) or unsigned (the verifier log's hex), so both halves
#: of the range are accepted; an offset is a signed 16-bit field.
_RANGES = {
    "off": ("off", -(1 << 15), (1 << 15) - 1),
    "imm": ("imm", -(1 << 31), (1 << 32) - 1),
    "imm64": ("imm", -(1 << 63), (1 << 64) - 1),
    "imm_lo": ("imm (low word)", -(1 << 31), (1 << 32) - 1),
    "imm_hi": ("imm (high word)", -(1 << 31), (1 << 32) - 1),
    "asc_hi": ("address space", 0, (1 << 16) - 1),
    "asc_lo": ("address space", 0, (1 << 16) - 1),
}

#: The kernel-internal auxiliary register (BPF_REG_AX): a program may not name it.
AX_REG_NUMBER = 11


def _checked(role: str, text: str) -> int:
    field, lo, hi = _RANGES[role]
    v = num_value(text)
    if not lo <= v <= hi:
        raise FieldRangeError(f"{field} {text.replace(' ', '')} is out of range ({lo}..{hi})", token=text)
    return v


def _fields(form: Form, tokens: list[tuple[str, str]], ax: bool = False) -> Insn | None:
    f = dict(form.fixed)
    lo = hi = None
    for role, (kind, text) in zip(form.roles, tokens):
        if role.startswith("="):
            want = role[1:]
            got = f"reg{int(text[1:])}" if kind == "reg" else str(num_value(text))
            if want != got:
                return None
        elif role in ("dst", "src"):
            reg = int(text[1:])
            if reg == AX_REG_NUMBER and not ax:
                raise FieldRangeError(
                    f"{text} is the kernel-internal register (BPF_REG_AX); programs use r0-r10", token=text)
            f[role] = reg
        elif role == "off":
            f["off"] = _checked(role, text)
        elif role == "imm":
            f["imm"] = _wrap(_checked(role, text), 32)
        elif role == "imm64":
            f["imm"] = _wrap(_checked(role, text), 64)
        elif role == "imm_lo":
            lo = _checked(role, text) & 0xFFFFFFFF
        elif role == "imm_hi":
            hi = _checked(role, text) & 0xFFFFFFFF
        elif role == "asc_hi":
            f["imm"] = (f.get("imm", 0) & 0xFFFF) | (_checked(role, text) << 16)
        elif role == "asc_lo":
            f["imm"] = (f.get("imm", 0) & ~0xFFFF) | _checked(role, text)
    if lo is not None:
        f["imm"] = _wrap(lo | ((hi or 0) << 32), 64)
    return Insn(form.code, f.get("dst", 0), f.get("src", 0), f.get("off", 0), f.get("imm", 0))


def _helper(name: str) -> int | None:
    try:
        return build.helper_id(name)
    except build.BuildError:
        return None


def _column(raw: str, token: str) -> int | None:
    """1-based column of `token` (as the tokenizer saw it, whitespace collapsed) in `raw`."""
    pattern = r"\s*".join(re.escape(part) for part in token.split())
    m = re.search(r"(?<![\w.])" + pattern + r"(?![\w])", raw)
    return m.start() + 1 if m else None


def parse_insn(text: str, *, style: str | None = None, code: int | None = None, ax: bool = False) -> Insn:
    """One instruction's text (either style) -> `Insn`; raise `AsmError` if it is not one.

    A number that does not fit its field (``r0 = 4294967296``, ``(r10 - 40000)``)
    is an error, never wrapped; ``r11``/``w11`` (the kernel-internal register) is
    accepted only with ``ax=True``.
    """
    m = _KERNEL.match(text.strip())
    if m:
        code, text, style = int(m.group(1), 16), m.group(2), "kernel"
    try:
        ref = _mapref(text)
    except (build.BuildError, ValueError) as exc:  # a map number too big for its field, or for int()
        raise AsmError(f"map or subprogram reference out of range ({str(exc)[:80]})", text=text) from None
    if ref is not None and code in (None, LD_IMM64):
        return ref
    shape, tokens = tokenize(normalize(text))
    refused: FieldRangeError | None = None
    for st in ([style] if style else ["llvm", "kernel"]):
        if refused is not None:
            break  # the text reads as this style's instruction with a field out of range
        for form in table(st).get(shape, ()):
            if code is not None and form.code != code:
                continue
            try:
                insn = _fields(form, tokens, ax)
            except FieldRangeError as exc:
                refused = refused or exc  # another form of the shape may still take the text
                continue
            if insn is not None:
                return insn
    if refused is not None:
        raise refused
    raise AsmError("not an eBPF instruction", text=text)


def _listing_insn(hexes: str, lineno: int, raw: str, ax: bool) -> Insn:
    """The one instruction of an objdump listing line (its hex column): anything else is an error."""
    try:
        slots = decode_slots(bytes.fromhex(hexes.replace(" ", "")))
        validate_slots(slots, max_reg=AX_REG_NUMBER if ax else AX_REG_NUMBER - 1)
        insns = slots_to_insns(slots)
    except BpfPatchError as exc:
        raise AsmError(f"listing bytes: {exc}", line=lineno, text=raw) from None
    if len(insns) != 1:
        raise AsmError(f"listing line holds {len(insns)} instructions; one per line", line=lineno, text=raw)
    return insns[0]


def _target_fits(insn: Insn, offset: int) -> bool:
    """Whether a resolved label offset fits the field the jump keeps it in."""
    if insn.target_field == Target.IMM:
        return -(1 << 31) <= offset < 1 << 31
    return -(1 << 15) <= offset < 1 << 15


def assemble(text: str, *, style: str | None = None, ax: bool = False) -> list[Insn]:
    """Assemble a program: either style, comments, labels, or llvm-objdump -d output as is.

    Jump and call targets may be labels (``goto out``, ``call helper_fn`` for a
    subprogram).  In an objdump listing the hex column is authoritative, so
    listings reproduce their bytes exactly.

    Numbers that do not fit their field are errors naming the line and column;
    ``ax=True`` accepts the kernel-internal register r11 (BPF_REG_AX).
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
            insn = _listing_insn(m.group(1), lineno, line, ax)
            items.append((lineno, insn, None, False, line))
            slot += insn.nslots
            continue
        stripped = _COMMENT.sub("", line).strip()
        if not stripped:
            continue
        h = _FUNC_HEADER.match(stripped) or _LABEL.match(stripped) or _SECTION_HEADER.match(stripped)
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
            insn = parse_insn(stripped, style=style, ax=ax)
        except FieldRangeError as exc:
            raise AsmError(exc.message, line=lineno, column=_column(raw, exc.token), text=raw) from None
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
            offset = labels[target] - slot - 1
            if not _target_fits(insn, offset):
                raise AsmError(f"label {target!r} is {offset} slots away: too far for this jump", line=lineno, text=raw)
            insn = insn.with_offset(offset)
        out.append(insn)
        slot += 2 if insn.code == LD_IMM64 else 1
    return out


def outside_calls(insns: list[Insn]) -> list[int]:
    """Slots of subprogram calls whose target is not an instruction of the program.

    A listing of one object section keeps calls into ``.text`` as the object
    has them (their immediate is resolved by an ELF relocation against
    ``.text``): they are external to the assembled program, not errors.
    """
    starts, slot = set(), 0
    for insn in insns:
        starts.add(slot)
        slot += insn.nslots
    out, slot = [], 0
    for insn in insns:
        if insn.code == 0x85 and insn.src == CallSrc.PSEUDO_CALL and slot + insn.imm + 1 not in starts:
            out.append(slot)
        slot += insn.nslots
    return out

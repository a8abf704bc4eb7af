"""The verifier log's syntax: print our states like kernel/bpf/log.c, parse the kernel's.

`format_reg` / `format_frame` print a register or a whole frame exactly as
``print_reg_state`` / ``print_verifier_state`` do (``R1=ctx() R2=pkt(r=0)
R3=scalar(umax=255,var_off=(0x0; 0xff)) fp-8=mmmmmmmm``).  `parse_log` reads
a ``log_level`` 2 log back into per-instruction register maps, so tests can
compare the kernel's states with ours.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bpfpatch.analysis.facts import RegType
from bpfpatch.analysis.state import (
    ADD_CONST,
    ITER_ACTIVE,
    ITER_DRAINED,
    S32_MAX,
    S32_MIN,
    S64_MAX,
    S64_MIN,
    Frame,
    Reg,
    State,
    btf_trusted,
    iter_depth,
    iter_state,
    s64,
)
from bpfpatch.analysis.tnum import U32, U64

_TYPE_NAMES = {
    RegType.PTR_TO_STACK: "fp", RegType.CONST_PTR_TO_MAP: "map_ptr", RegType.PTR_TO_MAP_VALUE: "map_value",
    RegType.PTR_TO_MAP_VALUE_OR_NULL: "map_value_or_null", RegType.PTR_TO_BTF_ID: "ptr_",
}


def type_name(t: RegType) -> str:
    """``reg_type_str``: the name the log gives a register type."""
    return _TYPE_NAMES.get(t, t.value)


def _unum(v: int) -> str:
    return str(v) if v <= 0xFFFF else hex(v)


def _snum(v: int) -> str:
    return str(v) if -32768 <= v <= 32767 else hex(v & U64)


def _ranges(r: Reg) -> list[str]:
    s32min = r.s32min if -32768 <= r.s32min <= 32767 else r.s32min & U32
    s32max = r.s32max if -32768 <= r.s32max <= 32767 else r.s32max & U32
    items = [
        ["smin", r.smin, r.smin == S64_MIN], ["smax", r.smax, r.smax == S64_MAX],
        ["umin", r.umin, r.umin == 0], ["umax", r.umax, r.umax == U64],
        ["smin32", s32min, r.s32min == S32_MIN], ["smax32", s32max, r.s32max == S32_MAX],
        ["umin32", r.u32min, r.u32min == 0], ["umax32", r.u32max, r.u32max == U32],
    ]
    out = []
    for i, (name, val, omit) in enumerate(items):
        if omit:
            continue
        neg1 = name[0] == "s" and val < 0
        text = name + "="
        for j in range(i + 2, len(items), 2):
            n2, v2, o2 = items[j]
            if o2 or (v2 & U64) != (val & U64):
                continue
            if (n2[0] == "s" and v2 < 0) != neg1:
                continue
            items[j][2] = True
            text += n2 + "="
        text += _snum(s64(val)) if name[0] == "s" else _unum(val)
        out.append(text)
    return out


def format_reg(r: Reg, frameno: int = 0) -> str:
    """One register's state (``print_reg_state``)."""
    t = r.type
    prefix = "P" if t is RegType.SCALAR and r.precise else ""
    if t is RegType.SCALAR and r.var_off[1] == 0:
        return prefix + _snum(s64(r.var_off[0]))
    name = prefix + type_name(t)
    if t is RegType.PTR_TO_STACK:
        if r.frameno != frameno:
            name += f"[{r.frameno}]"
        if r.var_off[1] == 0:
            return name + _snum(s64(r.var_off[0] + r.off))
    if t is RegType.PTR_TO_BTF_ID or t is RegType.PTR_TO_BTF_ID_OR_NULL:
        if t is RegType.PTR_TO_BTF_ID and btf_trusted(r):
            name = prefix + "trusted_" + name[len(prefix):]
        name += r.btf_name
    elif (t is RegType.PTR_TO_MEM or t is RegType.PTR_TO_MEM_OR_NULL) and r.btf_name == "rdonly":
        name = prefix + "rdonly_" + name[len(prefix):]  # MEM_RDONLY
    parts = []
    if r.id:
        # a linked scalar's delta follows its set's id: id=1+10, id=1-1 (print_reg_state)
        parts.append(f"id={r.id & ~ADD_CONST}" + (f"{r.off:+d}" if r.id & ADD_CONST else ""))
    if r.ref_obj_id:
        parts.append(f"ref_obj_id={r.ref_obj_id}")
    if t in (RegType.CONST_PTR_TO_MAP, RegType.PTR_TO_MAP_VALUE, RegType.PTR_TO_MAP_VALUE_OR_NULL, RegType.PTR_TO_MAP_KEY) and r.map:
        if r.map.name:
            parts.append(f"map={r.map.name[:15]}")
        parts.append(f"ks={r.map.key_size or 0},vs={r.map.value_size or 0}")
    if t is not RegType.SCALAR and r.off:
        parts.append(f"off={_snum(r.off)}")
    if t in (RegType.PTR_TO_PACKET, RegType.PTR_TO_PACKET_META):
        parts.append(f"r={_unum(r.range & U64)}")
    if t in (RegType.PTR_TO_MEM, RegType.PTR_TO_MEM_OR_NULL):
        parts.append(f"sz={_unum(r.mem_size)}")
    if r.var_off[1] == 0:
        if r.var_off[0]:
            parts.append(f"imm={_snum(s64(r.var_off[0]))}")
    else:
        parts.extend(_ranges(r))
        if r.var_off != (0, U64):
            parts.append(f"var_off=({hex(r.var_off[0])}; {hex(r.var_off[1])})")
    return f"{name}({','.join(parts)})"


def format_frame(f: Frame, regs: "list[int] | None" = None, slots: "list[int] | None" = None) -> str:
    """`` R1=ctx() R10=fp0 fp-8=mmmmmmmm`` for the given registers/slots (all if None)."""
    out = []
    if f.frameno:
        out.append(f" frame{f.frameno}:")
    for i, r in enumerate(f.regs):
        if r.type is RegType.NOT_INIT or (regs is not None and i not in regs):
            continue
        out.append(f" R{i}={format_reg(r, f.frameno)}")
    for k in sorted(f.stack):
        if slots is not None and k not in slots:
            continue
        s = f.stack[k]
        if all(c == "?" for c in s.types):
            continue
        if s.types[0] == "i":  # an iterator (STACK_ITER): its first slot, as the kernel prints it
            it = s.spilled
            if it is not None and it.ref_obj_id:
                state = {ITER_ACTIVE: "active", ITER_DRAINED: "drained"}.get(iter_state(it), "invalid")
                out.append(f" fp{-(k + 1) * 8}=iter_{it.btf_name}(ref_id={it.ref_obj_id},state={state},"
                           f"depth={iter_depth(it)})")
        elif s.types[7] == "r" and s.spilled is not None:
            j = s.types.index("r")
            out.append(f" fp{-(k + 1) * 8}={s.types[:j]}{format_reg(s.spilled, f.frameno)}")
        else:
            out.append(f" fp{-(k + 1) * 8}={s.types}")
    return "".join(out)


def format_state(s: State) -> str:
    """Every frame of a state, innermost last (what the log prints at a branch or a pruned path)."""
    return "".join(format_frame(f) for f in s.frames).strip()


# --- parsing the kernel's log ---------------------------------------------------------------

_INSN_LINE = re.compile(r"^(\d+): \((\w\w)\) (.*?)(?:\s+; (.*))?$")
_STATE_LINE = re.compile(r"^(\d+):((?: frame\d+:)?(?: (?:R\d+|fp-?\d+)\S*=\S.*)?)$")
_FROM_LINE = re.compile(r"^from (\d+) to (\d+): (.*)$")
_ASSIGN = re.compile(r"(R\d+|fp-?\d+)(?:_\w+)?=")


# What the kernel prints after the registers of a state: held references, callback markers.
_STATE_FLAGS = re.compile(r" (?:refs=[\d,]+|async_cb|cb)(?= |$)")


def split_regs(text: str) -> dict[str, str]:
    """``R1=ctx() R2=pkt(r=0)`` -> {"R1": "ctx()", "R2": "pkt(r=0)"} (parentheses may hold spaces)."""
    out: dict[str, str] = {}
    pos = 0
    text = re.sub(r" ?frame\d+:", " ", text)
    text = _STATE_FLAGS.sub("", text)
    matches = list(_ASSIGN.finditer(text))
    for i, m in enumerate(matches):
        if i + 1 < len(matches) and matches[i + 1].start() < pos:
            continue
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        # a match inside parentheses (cannot happen in practice) would be skipped by depth
        val = text[m.end():end].strip()
        out[m.group(1)] = val
        pos = end
    return out


@dataclass
class KernelStep:
    """One processed instruction in the kernel's log: its index and the registers it printed after it."""

    insn: int
    text: str
    after: dict[str, str] = field(default_factory=dict)


@dataclass
class KernelLog:
    """A parsed ``log_level`` 2 log: the processed steps, the full states at branch targets, the verdict."""

    steps: list[KernelStep] = field(default_factory=list)
    states: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    error: str = ""
    error_insn: int | None = None
    processed: int | None = None


def parse_log(text: str) -> KernelLog:
    """Parse the kernel's verifier log (``log_level`` 2)."""
    log = KernelLog()
    last_insn = None
    for line in text.splitlines():
        line = line.rstrip()
        m = _INSN_LINE.match(line)
        if m:
            last_insn = int(m.group(1))
            log.steps.append(KernelStep(last_insn, m.group(3), split_regs(m.group(4) or "")))
            continue
        m = _FROM_LINE.match(line)
        if m:
            log.states.append((int(m.group(2)), split_regs(m.group(3))))
            continue
        m = _STATE_LINE.match(line)
        if m and ("=" in line):
            log.states.append((int(m.group(1)), split_regs(m.group(2))))
            continue
        pm = re.match(r"processed (\d+) insns", line)
        if pm:
            log.processed = int(pm.group(1))
            continue
        if line and not line.startswith((" ", "\t", ";", "(", "func#", "Live regs", "last_idx", "regs=", "mark_precise",
                                         "frame", "Func#", "Validating", "insn ", "propagating", "caller", "callee",
                                         "returning", "to caller", "from ", "safe", "processed")):
            if not line[0].isdigit():
                log.error = line
                log.error_insn = last_insn
    return log


def reg_kind(text: str) -> str:
    """The type part of a printed register: ``pkt(r=0)`` -> "pkt", ``17`` / ``P5`` -> "scalar", ``fp-8`` -> "fp"."""
    text = text.lstrip("P") if re.match(r"^P-?\d|^P0x|^Pscalar", text) else text
    if re.match(r"^-?(\d|0x)", text):
        return "scalar"
    m = re.match(r"^([a-z_]+)", text)
    if not m:
        return text
    name = m.group(1)
    if name.startswith("fp"):
        return "fp"
    if name.startswith("ptr_"):
        return "ptr_"
    for prefix in ("rdonly_", "trusted_", "rcu_", "untrusted_", "ringbuf_", "percpu_", "user_"):  # type flags
        if name.startswith(prefix) and name != prefix:
            return reg_kind(name[len(prefix):] + text[len(name):])
    return name


__all__ = ["format_reg", "format_frame", "format_state", "parse_log", "KernelLog", "KernelStep", "reg_kind",
           "split_regs", "type_name"]


# --- comparing with the kernel ----------------------------------------------------------------

_IDS = re.compile(r"(?:(?<=\()|,)(?:id|ref_obj_id|ref_id)=\d+(?:[+-]\d+)?,?")


def normalize(text: str) -> str:
    """A printed register without ids and precision marks (numbering differs between verifiers)."""
    text = re.sub(r"^P(?=-?\d|0x|scalar)", "", text)
    text = _IDS.sub(lambda m: "," if m.group(0).startswith(",") and m.group(0).endswith(",") else "", text)
    return text.replace("(,", "(").replace(",)", ")")


@dataclass
class Comparison:
    """How our states agree with the kernel's log: per processed kernel step, types and full text."""

    steps: int = 0
    type_match: int = 0
    exact_match: int = 0
    type_mismatches: list[tuple[int, str, list[str]]] = field(default_factory=list)
    exact_mismatches: list[tuple[int, str, list[str]]] = field(default_factory=list)
    unseen: list[int] = field(default_factory=list)

    @property
    def types_agree(self) -> bool:
        return self.steps > 0 and self.type_match == self.steps


def _ours(frame: Frame, name: str) -> str | None:
    if name.startswith("R"):
        r = frame.regs[int(name[1:])]
        if r.type is RegType.NOT_INIT:
            return None
        return format_reg(r, frame.frameno)
    k = -int(name[2:]) // 8 - 1
    s = frame.stack.get(k)
    if s is None:
        return None
    text = format_frame(_only(frame, k))
    return text.split("=", 1)[1] if "=" in text else None


def _only(frame: Frame, k: int) -> Frame:
    f = Frame(frame.frameno)
    f.regs = [Reg() for _ in range(11)]
    f.stack = {k: frame.stack[k]}
    return f


def compare(analysis_aux: list, log: KernelLog) -> Comparison:
    """Match every step of the kernel's log against our states after that instruction.

    A step matches on types when one of our states after the instruction gives every
    register the kernel printed the same kind, exactly when the printed text is
    equal too (ids and precision marks aside).
    """
    cmp = Comparison()
    cache: dict[tuple[int, tuple[str, ...]], tuple[set, set, list]] = {}
    for step in log.steps:
        if not step.after:
            continue
        cmp.steps += 1
        a = analysis_aux[step.insn] if step.insn < len(analysis_aux) else None
        afters = a.extra_get("after", []) if a is not None else []
        kernel_text = " ".join(f"{k}={v}" for k, v in step.after.items())
        if not afters:
            cmp.unseen.append(step.insn)
            cmp.type_mismatches.append((step.insn, kernel_text, []))
            cmp.exact_mismatches.append((step.insn, kernel_text, []))
            continue
        names = tuple(step.after)
        key = (step.insn, names)
        if key not in cache:
            kinds, exacts, samples = set(), set(), []
            for st in afters:
                vals = [_ours(st.cur, name) for name in names]
                if any(v is None for v in vals):
                    continue
                kinds.add(tuple(reg_kind(v) if n.startswith("R") else "" for n, v in zip(names, vals)))
                exacts.add(tuple(normalize(v) for v in vals))
                if len(samples) < 3:
                    samples.append(" ".join(f"{n}={v}" for n, v in zip(names, vals)))
            cache[key] = (kinds, exacts, samples)
        kinds, exacts, samples = cache[key]
        kvals = [step.after[n] for n in names]
        k_kind = tuple(reg_kind(v) if n.startswith("R") else "" for n, v in zip(names, kvals))
        k_exact = tuple(normalize(v) for v in kvals)
        if k_kind in kinds:
            cmp.type_match += 1
        else:
            cmp.type_mismatches.append((step.insn, kernel_text, samples))
        if k_exact in exacts:
            cmp.exact_match += 1
        else:
            cmp.exact_mismatches.append((step.insn, kernel_text, samples))
    return cmp

"""The parser's table, derived from the printers: round trips hold by construction.

Every valid opcode (with the fields that change its text: signed div/mod,
movsx widths, byte-swap widths, call and ld_imm64 sources, atomic ops) is
printed once with sentinel field values.  The printed line, with registers
and numbers abstracted, is its *shape*; the sentinels tell which token holds
which field.  Parsing a line is: compute its shape, look it up, read the
fields back from the tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from bpfpatch.asm.syntax import format_kernel, format_llvm
from bpfpatch.errors import AsmError
from bpfpatch.isa import KIND_OF, Insn, Kind
from bpfpatch.isa.rules import ADDR_SPACE_CAST_CODE, ATOMIC_IMMS, MOVSX_OFFS, ZERO_FIELD
from bpfpatch.isa.opcodes import OP_MASK, SIZE_MASK, AluOp, CallSrc, PseudoSrc, Size

DST, SRC, OFF, IMM, IMM_HI = 8, 9, 4321, 98765, 12345
ASC_IMM = (77 << 16) | 555  # addr_space_cast prints its imm as two 16-bit numbers
IMM64 = (IMM_HI << 32) | IMM

_TOKEN = re.compile(r"(?P<reg>\b[rw](?:1[01]|[0-9])\b)|(?P<num>(?<![\w.])(?:[+-]\s?)?(?:0x[0-9a-fA-F]+|\d+)\b)")
_HELPER_NAME = re.compile(r"\b(?!kfunc#)[A-Za-z_]\w*#")


def normalize(text: str) -> str:
    """Whitespace and helper names do not matter; `pc+1` reads as `pc +1`."""
    text = _HELPER_NAME.sub("#", text)
    text = re.sub(r"\bpc([+-])", r"pc \1", text)
    return " ".join(text.split())


def tokenize(text: str) -> tuple[str, list[tuple[str, str]]]:
    """(shape, tokens): registers become R/W, numbers N; tokens keep their text."""
    tokens: list[tuple[str, str]] = []
    out: list[str] = []
    pos = 0
    for m in _TOKEN.finditer(text):
        out.append(text[pos : m.start()])
        if m.group("reg"):
            tokens.append(("reg", m.group("reg")))
            out.append("R" if m.group("reg")[0] == "r" else "W")
        else:
            tokens.append(("num", m.group("num")))
            out.append("N")
        pos = m.end()
    out.append(text[pos:])
    return "".join(out), tokens


#: Longest number text read (a u64 has 20 decimal digits, 18 characters in hex):
#: longer text is refused before `int` sees it (Python refuses >4,300 digits itself).
MAX_NUMBER_CHARS = 24


class FieldRangeError(AsmError):
    """A register or number that does not fit the field it stands for; `token` is its text."""

    def __init__(self, message: str, *, token: str) -> None:
        self.token = token
        super().__init__(message)


def num_value(tok: str) -> int:
    """The value of a number token: decimal (leading zeros allowed) or 0x hex, optional sign."""
    t = tok.replace(" ", "")
    neg = t.startswith("-")
    t = t.lstrip("+-")
    if len(t) > MAX_NUMBER_CHARS:
        shown = f"{t[:12]}...({len(t)} characters)"
        raise FieldRangeError(f"number {shown} is too long for any field", token=tok)
    v = int(t, 16) if t[:2].lower() == "0x" else int(t, 10)
    return -v if neg else v


@dataclass(frozen=True)
class Form:
    """One shape of one opcode: fixed fields and which token holds which field."""

    code: int
    fixed: tuple[tuple[str, int], ...]  # fields the shape determines (src, off, imm)
    roles: tuple[str, ...]  # per token: dst, src, off, imm, imm_lo, imm_hi, imm64, or "=<literal>"


def _variants() -> list[Insn]:
    """One sentinel instruction for every (opcode, text-changing field) combination."""
    out: list[Insn] = []
    for code in range(256):
        kind = KIND_OF[code]
        if kind == Kind.INVALID:
            continue
        zero = {f: bool(ZERO_FIELD[f][code]) for f in ("dst", "src", "off", "imm")}
        d = 0 if zero["dst"] else DST
        s = 0 if zero["src"] else SRC
        o = 0 if zero["off"] else OFF
        i = 0 if zero["imm"] else IMM
        if kind in (Kind.ALU_K, Kind.ALU_X):
            offs = [0]
            if code & OP_MASK in (AluOp.DIV, AluOp.MOD):
                offs.append(1)
            offs += [x for x in MOVSX_OFFS.get(code, ()) if x]
            for off in offs:
                out.append(Insn(code, d, s, off, i))
            if code == ADDR_SPACE_CAST_CODE:
                out.append(Insn(code, d, s, 1, ASC_IMM))
        elif kind == Kind.END:
            for width in (16, 32, 64):
                out.append(Insn(code, d, 0, 0, width))
        elif kind == Kind.CALL:
            out.append(Insn(code, 0, CallSrc.HELPER, 0, IMM))
            out.append(Insn(code, 0, CallSrc.PSEUDO_CALL, 0, IMM))
            out.append(Insn(code, 0, CallSrc.KFUNC, OFF, IMM))
            out.append(Insn(code, 0, CallSrc.KFUNC, 0, IMM))
        elif kind == Kind.LD_IMM64:
            for src in PseudoSrc:
                out.append(Insn(code, d, src, 0, IMM64))
        elif kind == Kind.ATOMIC:
            for a in sorted(ATOMIC_IMMS[Size(code & SIZE_MASK)]):
                out.append(Insn(code, d, s, o, a))
        elif kind == Kind.NEG:
            out.append(Insn(code, d, 0, 0, 0))
        elif kind in (Kind.CALLX, Kind.GOTOX):
            out.append(Insn(code, d, 0, 0, 0))  # text names dst (LLVM 19's encoding)
        else:
            out.append(Insn(code, d, s, o, i))
    return out


def _roles(insn: Insn, tokens: list[tuple[str, str]]) -> tuple[str, ...]:
    roles = []
    for kind, text in tokens:
        if kind == "reg":
            n = int(text[1:])
            roles.append("dst" if n == DST and insn.dst == DST else "src" if n == SRC and insn.src == SRC else f"=reg{n}")
            continue
        v = num_value(text)
        if insn.imm == ASC_IMM and v in (77, 555):
            roles.append("asc_hi" if v == 77 else "asc_lo")
            continue
        if v in (OFF, -OFF) and insn.off == OFF:
            roles.append("off")
        elif v == IMM64 and insn.imm == IMM64:
            roles.append("imm64")
        elif v == IMM and insn.imm in (IMM, IMM64):
            roles.append("imm_lo" if insn.imm == IMM64 else "imm")
        elif v == IMM_HI and insn.imm == IMM64:
            roles.append("imm_hi")
        else:
            roles.append(f"={v}")
    return tuple(roles)


@lru_cache(maxsize=None)
def table(style: str) -> dict[str, list[Form]]:
    """shape -> forms, in priority order (first printed variant first)."""
    shapes: dict[str, list[Form]] = {}
    for insn in _variants():
        text = format_llvm(insn) if style == "llvm" else format_kernel(insn).split(") ", 1)[1]
        shape, tokens = tokenize(normalize(text))
        roles = _roles(insn, tokens)
        fixed = []
        if "src" not in roles:
            fixed.append(("src", insn.src))
        if "off" not in roles:
            fixed.append(("off", insn.off))
        if not any(r.startswith(("imm", "asc")) for r in roles):
            fixed.append(("imm", insn.imm))
        if "dst" not in roles:
            fixed.append(("dst", insn.dst))
        # A sentinel left in a fixed field means this style does not show that field
        # (llvm syntax drops an ld_pseudo's high word, LD_IND's imm, a kfunc's fd index):
        # text in this style gives 0 there.
        fixed = [
            (f, 0 if (v in (OFF, IMM, IMM64) or (f == "dst" and v == DST) or (f == "src" and v == SRC)) else v)
            for f, v in fixed
        ]
        forms = shapes.setdefault(shape, [])
        form = Form(insn.code, tuple(fixed), roles)
        if form not in forms:
            forms.append(form)
    return shapes

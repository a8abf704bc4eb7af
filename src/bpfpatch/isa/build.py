"""Named constructors for every eBPF instruction form: the tool writer's builders.

Each constructor returns an `Insn` and says in one line what it does, the way
the kernel's macros do (``BPF_ALU64_IMM(BPF_ADD, dst, imm)`` is `add64_imm`,
"dst += imm32").  Registers are ints 0..10 (or `Reg`), sizes are `Size`
members, jump offsets are relative (``pc + off + 1``; in a patch buffer,
relative to the buffer, or use ``PatchInsn(insn, target=node)``).

Fields are range-checked: a register outside 0..11 (11 is the kernel's AX,
for passes that mimic the kernel's own rewrites), an imm outside 32 bits or an
off outside 16 bits raises `BuildError` naming the constructor and the field.

Families:

* ALU: `alu64_imm` / `alu64_reg` / `alu32_imm` / `alu32_reg` with an `AluOp`,
  and one name per operation: ``add64_imm``, ``sub32_reg``, ``sdiv64_imm``,
  ``mov64_reg``, ... ; `neg64`, `neg32`, `movsx64_reg`, `movsx32_reg`;
  byte swaps `to_le`, `to_be`, `bswap`.
* Jumps: `jmp_imm` / `jmp_reg` / `jmp32_imm` / `jmp32_reg` with a `JmpOp`,
  and ``jeq_imm``, ``jne32_reg``, ...; `ja`, `gotol`, `may_goto`, `exit_insn`.
* Calls: `call_helper` (by uapi name or id), `call_kfunc` (by BTF id; by
  name in `bpfpatch.btf.vmlinux`), `call_subprog`.
* 64-bit immediates: `ld_imm64`, `ld_map_fd`, `ld_map_value`, `ld_map_idx`,
  `ld_map_idx_value`, `ld_btf_id`, `ld_func`.
* Memory: `ldx_mem`, `ldx_memsx`, `stx_mem`, `st_mem`, legacy `ld_abs` / `ld_ind`.
* Atomics: `atomic_add` ... `atomic_fetch_xor`, `atomic_xchg`,
  `atomic_cmpxchg` (32 or 64 bit by `Size`), `load_acquire`, `store_release`.
"""

from __future__ import annotations

import functools
import inspect
from typing import Callable

from bpfpatch.errors import BpfPatchError
from bpfpatch.isa import (
    CALL,
    EXIT,
    GOTOL,
    JA,
    LD_IMM64,
    MAY_GOTO,
    AluOp,
    AtomicOp,
    CallSrc,
    Insn,
    InsnClass,
    JmpOp,
    Mode,
    PseudoSrc,
    Size,
    Source,
)
from bpfpatch.isa.helper_ids import HELPER_IDS, HELPER_NAMES


class BuildError(BpfPatchError, ValueError):
    """A builder given a field that does not fit (register, immediate, offset, helper name)."""


_AX = 11


def _reg(fn: str, what: str, r: int) -> int:
    if not isinstance(r, int) or not 0 <= r <= _AX:
        raise BuildError(f"{fn}: {what} register {r!r} is not r0..r10 (or 11, AX)")
    return int(r)


def _bits(fn: str, what: str, v: int, bits: int, *, signed: bool = False) -> int:
    """`v` as a signed `bits`-bit field; unsigned spellings (0xffffffff) are accepted unless `signed`."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1 if signed else bits)) - 1
    if not isinstance(v, int) or not lo <= v <= hi:
        raise BuildError(f"{fn}: {what} {v!r} does not fit {bits} bits")
    v = int(v) & ((1 << bits) - 1)
    return v - (1 << bits) if v >> (bits - 1) else v


def _size(fn: str, size: Size) -> Size:
    if type(size) is Size:  # a member already: no enum call (the common case)
        return size
    try:
        return Size(size)
    except ValueError:
        raise BuildError(f"{fn}: {size!r} is not a Size (B, H, W, DW)") from None


#: An `Insn` from its five fields in C: what the NamedTuple's own (Python-level) ``__new__`` does, a
#: Python frame less (about half the cost of ``Insn(...)`` on CPython 3.11).
_new = tuple.__new__


def _insn(fn: str, code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> Insn:
    # The common case in one test: plain ints already in range, stored as given.  Anything else (a
    # `Reg`, a bool, an unsigned spelling of imm, a field out of range) is checked field by field.
    if type(dst) is int and type(src) is int and type(off) is int and type(imm) is int and 0 <= dst <= _AX \
            and 0 <= src <= _AX and -0x8000 <= off <= 0x7FFF and -0x80000000 <= imm <= 0x7FFFFFFF:
        return _new(Insn, (code, dst, src, off, imm))
    return _insn_checked(fn, code, dst, src, off, imm)


def _insn_checked(fn: str, code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> Insn:
    """`_insn` field by field: the reference its fast path is tested against."""
    return Insn(code, _reg(fn, "dst", dst), _reg(fn, "src", src), _bits(fn, "off", off, 16, signed=True), _bits(fn, "imm", imm, 32))


def _opcodes(cls: InsnClass, ops: type[AluOp] | type[JmpOp], source: Source) -> dict[int, int]:
    """Full opcode by operation, for one class and source (a family's table)."""
    return {op: cls | op | source for op in ops}


_ALU64_K, _ALU64_X = _opcodes(InsnClass.ALU64, AluOp, Source.K), _opcodes(InsnClass.ALU64, AluOp, Source.X)
_ALU32_K, _ALU32_X = _opcodes(InsnClass.ALU, AluOp, Source.K), _opcodes(InsnClass.ALU, AluOp, Source.X)
_JMP_K, _JMP_X = _opcodes(InsnClass.JMP, JmpOp, Source.K), _opcodes(InsnClass.JMP, JmpOp, Source.X)
_JMP32_K, _JMP32_X = _opcodes(InsnClass.JMP32, JmpOp, Source.K), _opcodes(InsnClass.JMP32, JmpOp, Source.X)


def _op_code(fn: str, table: dict[int, int], ops: type[AluOp] | type[JmpOp], op: object) -> int:
    """The family's opcode for `op` given as something other than a member (an int value, or not an operation)."""
    try:
        return table[ops(op)]
    except (ValueError, TypeError):
        raise BuildError(f"{fn}: {op!r} is not a {ops.__name__}") from None


#: What a `_form` parameter may hold on the fast path: the field's range (plain ints only).
_FAST_RANGE = {"dst": (0, _AX), "src": (0, _AX), "off": (-0x8000, 0x7FFF), "imm": (-0x80000000, 0x7FFFFFFF)}


def _form(code: int, **fixed: int) -> Callable[[Callable[..., Insn]], Callable[..., Insn]]:
    """Decorator of a named constructor whose parameters are fields (``dst``, ``src``, ``off``, ``imm``)
    of one opcode (`fixed`: fields it sets itself, e.g. ``off=1`` for a signed division).

    The constructor users call is generated flat, one Python frame: plain ints in range become the
    `Insn` at once; anything else (a `Reg`, an unsigned spelling of imm, a field out of range, a
    wrong type) goes to the decorated function itself, which checks it field by field and raises
    `BuildError` naming itself and the field.  The decorated function stays as ``__wrapped__``:
    the reference the generated one is tested against.
    """

    def wrap(slow: Callable[..., Insn]) -> Callable[..., Insn]:
        params = list(inspect.signature(slow).parameters)
        assert set(params) <= set(_FAST_RANGE) and not set(params) & set(fixed), slow.__name__
        fields = {"dst": 0, "src": 0, "off": 0, "imm": 0, **fixed}
        test = " and ".join([f"type({p}) is int" for p in params] + [f"{_FAST_RANGE[p][0]} <= {p} <= {_FAST_RANGE[p][1]}" for p in params])
        row = ", ".join([str(int(code))] + [p if p in params else str(int(fields[p])) for p in ("dst", "src", "off", "imm")])
        args = ", ".join(params)
        source = (f"def {slow.__name__}({args}):\n"
                  f"    if {test or 'True'}:\n"
                  f"        return _new(Insn, ({row}))\n"
                  f"    return _slow({args})\n")
        scope = {"__name__": __name__, "_new": _new, "Insn": Insn, "_slow": slow}
        exec(compile(source, f"<bpfpatch.isa.build.{slow.__name__}>", "exec"), scope)
        return functools.update_wrapper(scope[slow.__name__], slow)

    return wrap


# --- ALU -----------------------------------------------------------------------------


def alu64_imm(op: AluOp, dst: int, imm: int, off: int = 0) -> Insn:
    """dst op= imm32 (64-bit; imm sign-extended; off=1 makes div/mod signed)."""
    return _insn("alu64_imm", _ALU64_K[op] if type(op) is AluOp else _op_code("alu64_imm", _ALU64_K, AluOp, op), dst, 0, off, imm)


def alu64_reg(op: AluOp, dst: int, src: int, off: int = 0) -> Insn:
    """dst op= src (64-bit; off=1 makes div/mod signed)."""
    return _insn("alu64_reg", _ALU64_X[op] if type(op) is AluOp else _op_code("alu64_reg", _ALU64_X, AluOp, op), dst, src, off)


def alu32_imm(op: AluOp, dst: int, imm: int, off: int = 0) -> Insn:
    """w_dst op= imm32 (32-bit; the upper half of dst is zeroed)."""
    return _insn("alu32_imm", _ALU32_K[op] if type(op) is AluOp else _op_code("alu32_imm", _ALU32_K, AluOp, op), dst, 0, off, imm)


def alu32_reg(op: AluOp, dst: int, src: int, off: int = 0) -> Insn:
    """w_dst op= w_src (32-bit; the upper half of dst is zeroed)."""
    return _insn("alu32_reg", _ALU32_X[op] if type(op) is AluOp else _op_code("alu32_reg", _ALU32_X, AluOp, op), dst, src, off)


@_form(_ALU64_K[AluOp.NEG])
def neg64(dst: int) -> Insn:
    """dst = -dst."""
    return _insn("neg64", InsnClass.ALU64 | AluOp.NEG, dst)


@_form(_ALU32_K[AluOp.NEG])
def neg32(dst: int) -> Insn:
    """w_dst = -w_dst; upper half zeroed."""
    return _insn("neg32", InsnClass.ALU | AluOp.NEG, dst)


def movsx64_reg(dst: int, src: int, bits: int) -> Insn:
    """dst = (s8/s16/s32) src, sign-extended to 64 bits (cpu v4)."""
    if bits not in (8, 16, 32):
        raise BuildError(f"movsx64_reg: width {bits!r} is not 8, 16 or 32")
    return alu64_reg(AluOp.MOV, dst, src, bits)


def movsx32_reg(dst: int, src: int, bits: int) -> Insn:
    """w_dst = (s8/s16) w_src, sign-extended to 32 bits (cpu v4)."""
    if bits not in (8, 16):
        raise BuildError(f"movsx32_reg: width {bits!r} is not 8 or 16")
    return alu32_reg(AluOp.MOV, dst, src, bits)


def _width(fn: str, bits: int) -> int:
    if bits not in (16, 32, 64):
        raise BuildError(f"{fn}: width {bits!r} is not 16, 32 or 64")
    return bits


def to_le(dst: int, bits: int) -> Insn:
    """dst = htole{bits}(dst): the low `bits` bits as little endian, the rest zeroed."""
    return _insn("to_le", InsnClass.ALU | AluOp.END | Source.K, dst, 0, 0, _width("to_le", bits))


def to_be(dst: int, bits: int) -> Insn:
    """dst = htobe{bits}(dst): the low `bits` bits as big endian, the rest zeroed."""
    return _insn("to_be", InsnClass.ALU | AluOp.END | Source.X, dst, 0, 0, _width("to_be", bits))


def bswap(dst: int, bits: int) -> Insn:
    """dst = bswap{bits}(dst): unconditional byte swap of the low `bits` bits (cpu v4)."""
    return _insn("bswap", InsnClass.ALU64 | AluOp.END | Source.K, dst, 0, 0, _width("bswap", bits))


# --- jumps ---------------------------------------------------------------------------


def jmp_imm(op: JmpOp, dst: int, imm: int, off: int) -> Insn:
    """if dst op imm32 goto pc + off + 1 (64-bit compare)."""
    return _insn("jmp_imm", _JMP_K[op] if type(op) is JmpOp else _op_code("jmp_imm", _JMP_K, JmpOp, op), dst, 0, off, imm)


def jmp_reg(op: JmpOp, dst: int, src: int, off: int) -> Insn:
    """if dst op src goto pc + off + 1 (64-bit compare)."""
    return _insn("jmp_reg", _JMP_X[op] if type(op) is JmpOp else _op_code("jmp_reg", _JMP_X, JmpOp, op), dst, src, off)


def jmp32_imm(op: JmpOp, dst: int, imm: int, off: int) -> Insn:
    """if w_dst op imm32 goto pc + off + 1 (32-bit compare)."""
    return _insn("jmp32_imm", _JMP32_K[op] if type(op) is JmpOp else _op_code("jmp32_imm", _JMP32_K, JmpOp, op), dst, 0, off, imm)


def jmp32_reg(op: JmpOp, dst: int, src: int, off: int) -> Insn:
    """if w_dst op w_src goto pc + off + 1 (32-bit compare)."""
    return _insn("jmp32_reg", _JMP32_X[op] if type(op) is JmpOp else _op_code("jmp32_reg", _JMP32_X, JmpOp, op), dst, src, off)


@_form(JA)
def ja(off: int) -> Insn:
    """goto pc + off + 1 (16-bit offset)."""
    return _insn("ja", JA, 0, 0, off)


@_form(GOTOL)
def gotol(imm: int) -> Insn:
    """goto pc + imm + 1 (32-bit offset, cpu v4)."""
    return _insn("gotol", GOTOL, 0, 0, 0, imm)


@_form(MAY_GOTO)
def may_goto(off: int) -> Insn:
    """may_goto pc + off + 1: a bounded-loop escape the kernel may take (falls through otherwise)."""
    return _insn("may_goto", MAY_GOTO, 0, 0, off)


def exit_insn() -> Insn:
    """return r0."""
    return Insn(EXIT)


# --- calls ---------------------------------------------------------------------------


def helper_id(name: str | int) -> int:
    """The uapi id of a helper: ``"map_lookup_elem"``, ``"bpf_map_lookup_elem"`` or an id -> 1."""
    if isinstance(name, int):
        if not 0 < name < (1 << 31):
            raise BuildError(f"helper id {name!r} out of range")
        return int(name)
    key = name[4:] if name.startswith("bpf_") else name
    try:
        return HELPER_IDS[key]
    except KeyError:
        raise BuildError(f"unknown helper {name!r} (uapi names, e.g. 'map_lookup_elem')") from None


def helper_name(helper: int) -> str | None:
    """The uapi name of a helper id (``1`` -> ``"map_lookup_elem"``), None if unknown."""
    return HELPER_NAMES[helper] if 0 < helper < len(HELPER_NAMES) else None


def call_helper(helper: str | int) -> Insn:
    """r0 = bpf_<helper>(r1, ..., r5), helper by uapi name or id; r1-r5 are clobbered."""
    return Insn(CALL, 0, CallSrc.HELPER, 0, helper_id(helper))


def call_kfunc(btf_id: int, btf_fd_index: int = 0) -> Insn:
    """r0 = kfunc(r1, ..., r5), the kernel function with this BTF id (off: index of its module BTF fd)."""
    return _insn("call_kfunc", CALL, 0, CallSrc.KFUNC, btf_fd_index, btf_id)


def call_subprog(off: int) -> Insn:
    """r0 = the subprogram at pc + off + 1 (r1-r5 arguments; r6-r9 preserved)."""
    return _insn("call_subprog", CALL, 0, CallSrc.PSEUDO_CALL, 0, off)


# --- 64-bit immediates (two slots) ---------------------------------------------------


def ld_imm64(dst: int, imm: int, src: PseudoSrc = PseudoSrc.NONE) -> Insn:
    """dst = imm64 (two slots); src says what the immediate refers to (`PseudoSrc`)."""
    if not -(1 << 63) <= imm < (1 << 64):
        raise BuildError(f"ld_imm64: imm {imm!r} does not fit 64 bits")
    imm &= (1 << 64) - 1
    imm = imm - (1 << 64) if imm >> 63 else imm
    return Insn(LD_IMM64, _reg("ld_imm64", "dst", dst), PseudoSrc(src), 0, imm)


def _pair(fn: str, lo: int, hi: int) -> int:
    lo = _bits(fn, "map", lo, 32) & 0xFFFFFFFF
    hi = _bits(fn, "offset", hi, 32) & 0xFFFFFFFF
    v = lo | (hi << 32)
    return v - (1 << 64) if v >> 63 else v


def ld_map_fd(dst: int, fd: int) -> Insn:
    """dst = &map (the map with this fd; the verifier's ``r1 = map[id:..]``)."""
    return ld_imm64(dst, _pair("ld_map_fd", fd, 0), PseudoSrc.MAP_FD)


def ld_map_value(dst: int, fd: int, off: int = 0) -> Insn:
    """dst = &map_value + off (element 0 of the array map with this fd: global data)."""
    return ld_imm64(dst, _pair("ld_map_value", fd, off), PseudoSrc.MAP_VALUE)


def ld_map_idx(dst: int, index: int) -> Insn:
    """dst = &map, the map at `index` of the fd array passed at load (BPF_PSEUDO_MAP_IDX)."""
    return ld_imm64(dst, _pair("ld_map_idx", index, 0), PseudoSrc.MAP_IDX)


def ld_map_idx_value(dst: int, index: int, off: int = 0) -> Insn:
    """dst = &value + off of the map at `index` of the fd array (BPF_PSEUDO_MAP_IDX_VALUE)."""
    return ld_imm64(dst, _pair("ld_map_idx_value", index, off), PseudoSrc.MAP_IDX_VALUE)


def ld_btf_id(dst: int, btf_id: int) -> Insn:
    """dst = &kernel variable with this BTF id (ksym; BPF_PSEUDO_BTF_ID)."""
    return ld_imm64(dst, _pair("ld_btf_id", btf_id, 0), PseudoSrc.BTF_ID)


def ld_func(dst: int, off: int) -> Insn:
    """dst = &subprogram at pc + off + 1 (a callback, e.g. for bpf_loop; BPF_PSEUDO_FUNC)."""
    return ld_imm64(dst, _pair("ld_func", off, 0), PseudoSrc.FUNC)


# --- loads and stores ----------------------------------------------------------------


def ldx_mem(size: Size, dst: int, src: int, off: int) -> Insn:
    """dst = *(size *)(src + off), zero-extended."""
    return _insn("ldx_mem", InsnClass.LDX | Mode.MEM | _size("ldx_mem", size), dst, src, off)


def ldx_memsx(size: Size, dst: int, src: int, off: int) -> Insn:
    """dst = *(s8/s16/s32 *)(src + off), sign-extended (cpu v4)."""
    if _size("ldx_memsx", size) == Size.DW:
        raise BuildError("ldx_memsx: no sign-extending 64-bit load")
    return _insn("ldx_memsx", InsnClass.LDX | Mode.MEMSX | size, dst, src, off)


def stx_mem(size: Size, dst: int, src: int, off: int) -> Insn:
    """*(size *)(dst + off) = src."""
    return _insn("stx_mem", InsnClass.STX | Mode.MEM | _size("stx_mem", size), dst, src, off)


def st_mem(size: Size, dst: int, off: int, imm: int) -> Insn:
    """*(size *)(dst + off) = imm32."""
    return _insn("st_mem", InsnClass.ST | Mode.MEM | _size("st_mem", size), dst, 0, off, imm)


def ld_abs(size: Size, imm: int) -> Insn:
    """r0 = ntoh(*(size *)(skb->data + imm)) (legacy socket-filter packet load; clobbers r1-r5)."""
    if _size("ld_abs", size) == Size.DW:
        raise BuildError("ld_abs: no 64-bit packet load")
    return _insn("ld_abs", InsnClass.LD | Mode.ABS | size, 0, 0, 0, imm)


def ld_ind(size: Size, src: int, imm: int) -> Insn:
    """r0 = ntoh(*(size *)(skb->data + src + imm)) (legacy packet load; clobbers r1-r5)."""
    if _size("ld_ind", size) == Size.DW:
        raise BuildError("ld_ind: no 64-bit packet load")
    return _insn("ld_ind", InsnClass.LD | Mode.IND | size, 0, src, 0, imm)


# --- atomics -------------------------------------------------------------------------


def atomic_op(size: Size, op: AtomicOp, dst: int, src: int, off: int) -> Insn:
    """Atomic `op` on *(size *)(dst + off) with src (the kernel's BPF_ATOMIC_OP)."""
    size = _size("atomic_op", size)
    op = op if type(op) is AtomicOp else AtomicOp(op)
    if op in (AtomicOp.LOAD_ACQ, AtomicOp.STORE_REL):
        pass
    elif size not in (Size.W, Size.DW):
        raise BuildError(f"atomic_op: read-modify-write atomics are 32 or 64 bit, not {size.name}")
    return _insn("atomic_op", InsnClass.STX | Mode.ATOMIC | size, dst, src, off, int(op))


def atomic_add(size: Size, dst: int, src: int, off: int) -> Insn:
    """lock *(size *)(dst + off) += src."""
    return atomic_op(size, AtomicOp.ADD, dst, src, off)


def atomic_or(size: Size, dst: int, src: int, off: int) -> Insn:
    """lock *(size *)(dst + off) |= src."""
    return atomic_op(size, AtomicOp.OR, dst, src, off)


def atomic_and(size: Size, dst: int, src: int, off: int) -> Insn:
    """lock *(size *)(dst + off) &= src."""
    return atomic_op(size, AtomicOp.AND, dst, src, off)


def atomic_xor(size: Size, dst: int, src: int, off: int) -> Insn:
    """lock *(size *)(dst + off) ^= src."""
    return atomic_op(size, AtomicOp.XOR, dst, src, off)


def atomic_fetch_add(size: Size, dst: int, src: int, off: int) -> Insn:
    """src = atomic_fetch_add((size *)(dst + off), src): add, src gets the old value."""
    return atomic_op(size, AtomicOp.FETCH_ADD, dst, src, off)


def atomic_fetch_or(size: Size, dst: int, src: int, off: int) -> Insn:
    """src = atomic_fetch_or((size *)(dst + off), src): or, src gets the old value."""
    return atomic_op(size, AtomicOp.FETCH_OR, dst, src, off)


def atomic_fetch_and(size: Size, dst: int, src: int, off: int) -> Insn:
    """src = atomic_fetch_and((size *)(dst + off), src): and, src gets the old value."""
    return atomic_op(size, AtomicOp.FETCH_AND, dst, src, off)


def atomic_fetch_xor(size: Size, dst: int, src: int, off: int) -> Insn:
    """src = atomic_fetch_xor((size *)(dst + off), src): xor, src gets the old value."""
    return atomic_op(size, AtomicOp.FETCH_XOR, dst, src, off)


def atomic_xchg(size: Size, dst: int, src: int, off: int) -> Insn:
    """src = xchg((size *)(dst + off), src): store src, src gets the old value."""
    return atomic_op(size, AtomicOp.XCHG, dst, src, off)


def atomic_cmpxchg(size: Size, dst: int, src: int, off: int) -> Insn:
    """r0 = cmpxchg((size *)(dst + off), r0, src): store src if the value equals r0; r0 gets the old value."""
    return atomic_op(size, AtomicOp.CMPXCHG, dst, src, off)


def load_acquire(size: Size, dst: int, src: int, off: int) -> Insn:
    """dst = load_acquire((size *)(src + off)) (cpu v4, Linux 6.15+)."""
    return atomic_op(size, AtomicOp.LOAD_ACQ, dst, src, off)


def store_release(size: Size, dst: int, src: int, off: int) -> Insn:
    """store_release((size *)(dst + off), src) (cpu v4, Linux 6.15+)."""
    return atomic_op(size, AtomicOp.STORE_REL, dst, src, off)


# --- one name per ALU operation and per jump condition ------------------------------


@_form(_ALU64_K[AluOp.ADD])
def add64_imm(dst: int, imm: int) -> Insn:
    """dst += imm32 (sign-extended)."""
    return alu64_imm(AluOp.ADD, dst, imm)


@_form(_ALU64_X[AluOp.ADD])
def add64_reg(dst: int, src: int) -> Insn:
    """dst += src."""
    return alu64_reg(AluOp.ADD, dst, src)


@_form(_ALU32_K[AluOp.ADD])
def add32_imm(dst: int, imm: int) -> Insn:
    """w_dst += imm32; upper half zeroed."""
    return alu32_imm(AluOp.ADD, dst, imm)


@_form(_ALU32_X[AluOp.ADD])
def add32_reg(dst: int, src: int) -> Insn:
    """w_dst += w_src; upper half zeroed."""
    return alu32_reg(AluOp.ADD, dst, src)


@_form(_ALU64_K[AluOp.SUB])
def sub64_imm(dst: int, imm: int) -> Insn:
    """dst -= imm32 (sign-extended)."""
    return alu64_imm(AluOp.SUB, dst, imm)


@_form(_ALU64_X[AluOp.SUB])
def sub64_reg(dst: int, src: int) -> Insn:
    """dst -= src."""
    return alu64_reg(AluOp.SUB, dst, src)


@_form(_ALU32_K[AluOp.SUB])
def sub32_imm(dst: int, imm: int) -> Insn:
    """w_dst -= imm32; upper half zeroed."""
    return alu32_imm(AluOp.SUB, dst, imm)


@_form(_ALU32_X[AluOp.SUB])
def sub32_reg(dst: int, src: int) -> Insn:
    """w_dst -= w_src; upper half zeroed."""
    return alu32_reg(AluOp.SUB, dst, src)


@_form(_ALU64_K[AluOp.MUL])
def mul64_imm(dst: int, imm: int) -> Insn:
    """dst *= imm32 (sign-extended)."""
    return alu64_imm(AluOp.MUL, dst, imm)


@_form(_ALU64_X[AluOp.MUL])
def mul64_reg(dst: int, src: int) -> Insn:
    """dst *= src."""
    return alu64_reg(AluOp.MUL, dst, src)


@_form(_ALU32_K[AluOp.MUL])
def mul32_imm(dst: int, imm: int) -> Insn:
    """w_dst *= imm32; upper half zeroed."""
    return alu32_imm(AluOp.MUL, dst, imm)


@_form(_ALU32_X[AluOp.MUL])
def mul32_reg(dst: int, src: int) -> Insn:
    """w_dst *= w_src; upper half zeroed."""
    return alu32_reg(AluOp.MUL, dst, src)


@_form(_ALU64_K[AluOp.DIV])
def div64_imm(dst: int, imm: int) -> Insn:
    """dst /= imm32 (sign-extended)."""
    return alu64_imm(AluOp.DIV, dst, imm)


@_form(_ALU64_X[AluOp.DIV])
def div64_reg(dst: int, src: int) -> Insn:
    """dst /= src."""
    return alu64_reg(AluOp.DIV, dst, src)


@_form(_ALU32_K[AluOp.DIV])
def div32_imm(dst: int, imm: int) -> Insn:
    """w_dst /= imm32; upper half zeroed."""
    return alu32_imm(AluOp.DIV, dst, imm)


@_form(_ALU32_X[AluOp.DIV])
def div32_reg(dst: int, src: int) -> Insn:
    """w_dst /= w_src; upper half zeroed."""
    return alu32_reg(AluOp.DIV, dst, src)


@_form(_ALU64_K[AluOp.DIV], off=1)
def sdiv64_imm(dst: int, imm: int) -> Insn:
    """dst s/= imm32 (sign-extended)."""
    return alu64_imm(AluOp.DIV, dst, imm, 1)


@_form(_ALU64_X[AluOp.DIV], off=1)
def sdiv64_reg(dst: int, src: int) -> Insn:
    """dst s/= src."""
    return alu64_reg(AluOp.DIV, dst, src, 1)


@_form(_ALU32_K[AluOp.DIV], off=1)
def sdiv32_imm(dst: int, imm: int) -> Insn:
    """w_dst s/= imm32; upper half zeroed."""
    return alu32_imm(AluOp.DIV, dst, imm, 1)


@_form(_ALU32_X[AluOp.DIV], off=1)
def sdiv32_reg(dst: int, src: int) -> Insn:
    """w_dst s/= w_src; upper half zeroed."""
    return alu32_reg(AluOp.DIV, dst, src, 1)


@_form(_ALU64_K[AluOp.MOD])
def mod64_imm(dst: int, imm: int) -> Insn:
    """dst %= imm32 (sign-extended)."""
    return alu64_imm(AluOp.MOD, dst, imm)


@_form(_ALU64_X[AluOp.MOD])
def mod64_reg(dst: int, src: int) -> Insn:
    """dst %= src."""
    return alu64_reg(AluOp.MOD, dst, src)


@_form(_ALU32_K[AluOp.MOD])
def mod32_imm(dst: int, imm: int) -> Insn:
    """w_dst %= imm32; upper half zeroed."""
    return alu32_imm(AluOp.MOD, dst, imm)


@_form(_ALU32_X[AluOp.MOD])
def mod32_reg(dst: int, src: int) -> Insn:
    """w_dst %= w_src; upper half zeroed."""
    return alu32_reg(AluOp.MOD, dst, src)


@_form(_ALU64_K[AluOp.MOD], off=1)
def smod64_imm(dst: int, imm: int) -> Insn:
    """dst s%= imm32 (sign-extended)."""
    return alu64_imm(AluOp.MOD, dst, imm, 1)


@_form(_ALU64_X[AluOp.MOD], off=1)
def smod64_reg(dst: int, src: int) -> Insn:
    """dst s%= src."""
    return alu64_reg(AluOp.MOD, dst, src, 1)


@_form(_ALU32_K[AluOp.MOD], off=1)
def smod32_imm(dst: int, imm: int) -> Insn:
    """w_dst s%= imm32; upper half zeroed."""
    return alu32_imm(AluOp.MOD, dst, imm, 1)


@_form(_ALU32_X[AluOp.MOD], off=1)
def smod32_reg(dst: int, src: int) -> Insn:
    """w_dst s%= w_src; upper half zeroed."""
    return alu32_reg(AluOp.MOD, dst, src, 1)


@_form(_ALU64_K[AluOp.OR])
def or64_imm(dst: int, imm: int) -> Insn:
    """dst |= imm32 (sign-extended)."""
    return alu64_imm(AluOp.OR, dst, imm)


@_form(_ALU64_X[AluOp.OR])
def or64_reg(dst: int, src: int) -> Insn:
    """dst |= src."""
    return alu64_reg(AluOp.OR, dst, src)


@_form(_ALU32_K[AluOp.OR])
def or32_imm(dst: int, imm: int) -> Insn:
    """w_dst |= imm32; upper half zeroed."""
    return alu32_imm(AluOp.OR, dst, imm)


@_form(_ALU32_X[AluOp.OR])
def or32_reg(dst: int, src: int) -> Insn:
    """w_dst |= w_src; upper half zeroed."""
    return alu32_reg(AluOp.OR, dst, src)


@_form(_ALU64_K[AluOp.AND])
def and64_imm(dst: int, imm: int) -> Insn:
    """dst &= imm32 (sign-extended)."""
    return alu64_imm(AluOp.AND, dst, imm)


@_form(_ALU64_X[AluOp.AND])
def and64_reg(dst: int, src: int) -> Insn:
    """dst &= src."""
    return alu64_reg(AluOp.AND, dst, src)


@_form(_ALU32_K[AluOp.AND])
def and32_imm(dst: int, imm: int) -> Insn:
    """w_dst &= imm32; upper half zeroed."""
    return alu32_imm(AluOp.AND, dst, imm)


@_form(_ALU32_X[AluOp.AND])
def and32_reg(dst: int, src: int) -> Insn:
    """w_dst &= w_src; upper half zeroed."""
    return alu32_reg(AluOp.AND, dst, src)


@_form(_ALU64_K[AluOp.LSH])
def lsh64_imm(dst: int, imm: int) -> Insn:
    """dst <<= imm32 (sign-extended)."""
    return alu64_imm(AluOp.LSH, dst, imm)


@_form(_ALU64_X[AluOp.LSH])
def lsh64_reg(dst: int, src: int) -> Insn:
    """dst <<= src."""
    return alu64_reg(AluOp.LSH, dst, src)


@_form(_ALU32_K[AluOp.LSH])
def lsh32_imm(dst: int, imm: int) -> Insn:
    """w_dst <<= imm32; upper half zeroed."""
    return alu32_imm(AluOp.LSH, dst, imm)


@_form(_ALU32_X[AluOp.LSH])
def lsh32_reg(dst: int, src: int) -> Insn:
    """w_dst <<= w_src; upper half zeroed."""
    return alu32_reg(AluOp.LSH, dst, src)


@_form(_ALU64_K[AluOp.RSH])
def rsh64_imm(dst: int, imm: int) -> Insn:
    """dst >>= imm32 (sign-extended)."""
    return alu64_imm(AluOp.RSH, dst, imm)


@_form(_ALU64_X[AluOp.RSH])
def rsh64_reg(dst: int, src: int) -> Insn:
    """dst >>= src."""
    return alu64_reg(AluOp.RSH, dst, src)


@_form(_ALU32_K[AluOp.RSH])
def rsh32_imm(dst: int, imm: int) -> Insn:
    """w_dst >>= imm32; upper half zeroed."""
    return alu32_imm(AluOp.RSH, dst, imm)


@_form(_ALU32_X[AluOp.RSH])
def rsh32_reg(dst: int, src: int) -> Insn:
    """w_dst >>= w_src; upper half zeroed."""
    return alu32_reg(AluOp.RSH, dst, src)


@_form(_ALU64_K[AluOp.ARSH])
def arsh64_imm(dst: int, imm: int) -> Insn:
    """dst s>>= imm32 (sign-extended)."""
    return alu64_imm(AluOp.ARSH, dst, imm)


@_form(_ALU64_X[AluOp.ARSH])
def arsh64_reg(dst: int, src: int) -> Insn:
    """dst s>>= src."""
    return alu64_reg(AluOp.ARSH, dst, src)


@_form(_ALU32_K[AluOp.ARSH])
def arsh32_imm(dst: int, imm: int) -> Insn:
    """w_dst s>>= imm32; upper half zeroed."""
    return alu32_imm(AluOp.ARSH, dst, imm)


@_form(_ALU32_X[AluOp.ARSH])
def arsh32_reg(dst: int, src: int) -> Insn:
    """w_dst s>>= w_src; upper half zeroed."""
    return alu32_reg(AluOp.ARSH, dst, src)


@_form(_ALU64_K[AluOp.XOR])
def xor64_imm(dst: int, imm: int) -> Insn:
    """dst ^= imm32 (sign-extended)."""
    return alu64_imm(AluOp.XOR, dst, imm)


@_form(_ALU64_X[AluOp.XOR])
def xor64_reg(dst: int, src: int) -> Insn:
    """dst ^= src."""
    return alu64_reg(AluOp.XOR, dst, src)


@_form(_ALU32_K[AluOp.XOR])
def xor32_imm(dst: int, imm: int) -> Insn:
    """w_dst ^= imm32; upper half zeroed."""
    return alu32_imm(AluOp.XOR, dst, imm)


@_form(_ALU32_X[AluOp.XOR])
def xor32_reg(dst: int, src: int) -> Insn:
    """w_dst ^= w_src; upper half zeroed."""
    return alu32_reg(AluOp.XOR, dst, src)


@_form(_ALU64_K[AluOp.MOV])
def mov64_imm(dst: int, imm: int) -> Insn:
    """dst = imm32 (sign-extended)."""
    return alu64_imm(AluOp.MOV, dst, imm)


@_form(_ALU64_X[AluOp.MOV])
def mov64_reg(dst: int, src: int) -> Insn:
    """dst = src."""
    return alu64_reg(AluOp.MOV, dst, src)


@_form(_ALU32_K[AluOp.MOV])
def mov32_imm(dst: int, imm: int) -> Insn:
    """w_dst = imm32; upper half zeroed."""
    return alu32_imm(AluOp.MOV, dst, imm)


@_form(_ALU32_X[AluOp.MOV])
def mov32_reg(dst: int, src: int) -> Insn:
    """w_dst = w_src; upper half zeroed."""
    return alu32_reg(AluOp.MOV, dst, src)


@_form(_JMP_K[JmpOp.JEQ])
def jeq_imm(dst: int, imm: int, off: int) -> Insn:
    """if dst == imm32 goto pc + off + 1."""
    return jmp_imm(JmpOp.JEQ, dst, imm, off)


@_form(_JMP_X[JmpOp.JEQ])
def jeq_reg(dst: int, src: int, off: int) -> Insn:
    """if dst == src goto pc + off + 1."""
    return jmp_reg(JmpOp.JEQ, dst, src, off)


@_form(_JMP32_K[JmpOp.JEQ])
def jeq32_imm(dst: int, imm: int, off: int) -> Insn:
    """if w_dst == imm32 goto pc + off + 1."""
    return jmp32_imm(JmpOp.JEQ, dst, imm, off)


@_form(_JMP32_X[JmpOp.JEQ])
def jeq32_reg(dst: int, src: int, off: int) -> Insn:
    """if w_dst == w_src goto pc + off + 1."""
    return jmp32_reg(JmpOp.JEQ, dst, src, off)


@_form(_JMP_K[JmpOp.JNE])
def jne_imm(dst: int, imm: int, off: int) -> Insn:
    """if dst != imm32 goto pc + off + 1."""
    return jmp_imm(JmpOp.JNE, dst, imm, off)


@_form(_JMP_X[JmpOp.JNE])
def jne_reg(dst: int, src: int, off: int) -> Insn:
    """if dst != src goto pc + off + 1."""
    return jmp_reg(JmpOp.JNE, dst, src, off)


@_form(_JMP32_K[JmpOp.JNE])
def jne32_imm(dst: int, imm: int, off: int) -> Insn:
    """if w_dst != imm32 goto pc + off + 1."""
    return jmp32_imm(JmpOp.JNE, dst, imm, off)


@_form(_JMP32_X[JmpOp.JNE])
def jne32_reg(dst: int, src: int, off: int) -> Insn:
    """if w_dst != w_src goto pc + off + 1."""
    return jmp32_reg(JmpOp.JNE, dst, src, off)


@_form(_JMP_K[JmpOp.JGT])
def jgt_imm(dst: int, imm: int, off: int) -> Insn:
    """if dst > imm32 goto pc + off + 1."""
    return jmp_imm(JmpOp.JGT, dst, imm, off)


@_form(_JMP_X[JmpOp.JGT])
def jgt_reg(dst: int, src: int, off: int) -> Insn:
    """if dst > src goto pc + off + 1."""
    return jmp_reg(JmpOp.JGT, dst, src, off)


@_form(_JMP32_K[JmpOp.JGT])
def jgt32_imm(dst: int, imm: int, off: int) -> Insn:
    """if w_dst > imm32 goto pc + off + 1."""
    return jmp32_imm(JmpOp.JGT, dst, imm, off)


@_form(_JMP32_X[JmpOp.JGT])
def jgt32_reg(dst: int, src: int, off: int) -> Insn:
    """if w_dst > w_src goto pc + off + 1."""
    return jmp32_reg(JmpOp.JGT, dst, src, off)


@_form(_JMP_K[JmpOp.JGE])
def jge_imm(dst: int, imm: int, off: int) -> Insn:
    """if dst >= imm32 goto pc + off + 1."""
    return jmp_imm(JmpOp.JGE, dst, imm, off)


@_form(_JMP_X[JmpOp.JGE])
def jge_reg(dst: int, src: int, off: int) -> Insn:
    """if dst >= src goto pc + off + 1."""
    return jmp_reg(JmpOp.JGE, dst, src, off)


@_form(_JMP32_K[JmpOp.JGE])
def jge32_imm(dst: int, imm: int, off: int) -> Insn:
    """if w_dst >= imm32 goto pc + off + 1."""
    return jmp32_imm(JmpOp.JGE, dst, imm, off)


@_form(_JMP32_X[JmpOp.JGE])
def jge32_reg(dst: int, src: int, off: int) -> Insn:
    """if w_dst >= w_src goto pc + off + 1."""
    return jmp32_reg(JmpOp.JGE, dst, src, off)


@_form(_JMP_K[JmpOp.JLT])
def jlt_imm(dst: int, imm: int, off: int) -> Insn:
    """if dst < imm32 goto pc + off + 1."""
    return jmp_imm(JmpOp.JLT, dst, imm, off)


@_form(_JMP_X[JmpOp.JLT])
def jlt_reg(dst: int, src: int, off: int) -> Insn:
    """if dst < src goto pc + off + 1."""
    return jmp_reg(JmpOp.JLT, dst, src, off)


@_form(_JMP32_K[JmpOp.JLT])
def jlt32_imm(dst: int, imm: int, off: int) -> Insn:
    """if w_dst < imm32 goto pc + off + 1."""
    return jmp32_imm(JmpOp.JLT, dst, imm, off)


@_form(_JMP32_X[JmpOp.JLT])
def jlt32_reg(dst: int, src: int, off: int) -> Insn:
    """if w_dst < w_src goto pc + off + 1."""
    return jmp32_reg(JmpOp.JLT, dst, src, off)


@_form(_JMP_K[JmpOp.JLE])
def jle_imm(dst: int, imm: int, off: int) -> Insn:
    """if dst <= imm32 goto pc + off + 1."""
    return jmp_imm(JmpOp.JLE, dst, imm, off)


@_form(_JMP_X[JmpOp.JLE])
def jle_reg(dst: int, src: int, off: int) -> Insn:
    """if dst <= src goto pc + off + 1."""
    return jmp_reg(JmpOp.JLE, dst, src, off)


@_form(_JMP32_K[JmpOp.JLE])
def jle32_imm(dst: int, imm: int, off: int) -> Insn:
    """if w_dst <= imm32 goto pc + off + 1."""
    return jmp32_imm(JmpOp.JLE, dst, imm, off)


@_form(_JMP32_X[JmpOp.JLE])
def jle32_reg(dst: int, src: int, off: int) -> Insn:
    """if w_dst <= w_src goto pc + off + 1."""
    return jmp32_reg(JmpOp.JLE, dst, src, off)


@_form(_JMP_K[JmpOp.JSET])
def jset_imm(dst: int, imm: int, off: int) -> Insn:
    """if dst & imm32 goto pc + off + 1."""
    return jmp_imm(JmpOp.JSET, dst, imm, off)


@_form(_JMP_X[JmpOp.JSET])
def jset_reg(dst: int, src: int, off: int) -> Insn:
    """if dst & src goto pc + off + 1."""
    return jmp_reg(JmpOp.JSET, dst, src, off)


@_form(_JMP32_K[JmpOp.JSET])
def jset32_imm(dst: int, imm: int, off: int) -> Insn:
    """if w_dst & imm32 goto pc + off + 1."""
    return jmp32_imm(JmpOp.JSET, dst, imm, off)


@_form(_JMP32_X[JmpOp.JSET])
def jset32_reg(dst: int, src: int, off: int) -> Insn:
    """if w_dst & w_src goto pc + off + 1."""
    return jmp32_reg(JmpOp.JSET, dst, src, off)


@_form(_JMP_K[JmpOp.JSGT])
def jsgt_imm(dst: int, imm: int, off: int) -> Insn:
    """if dst s> imm32 goto pc + off + 1."""
    return jmp_imm(JmpOp.JSGT, dst, imm, off)


@_form(_JMP_X[JmpOp.JSGT])
def jsgt_reg(dst: int, src: int, off: int) -> Insn:
    """if dst s> src goto pc + off + 1."""
    return jmp_reg(JmpOp.JSGT, dst, src, off)


@_form(_JMP32_K[JmpOp.JSGT])
def jsgt32_imm(dst: int, imm: int, off: int) -> Insn:
    """if w_dst s> imm32 goto pc + off + 1."""
    return jmp32_imm(JmpOp.JSGT, dst, imm, off)


@_form(_JMP32_X[JmpOp.JSGT])
def jsgt32_reg(dst: int, src: int, off: int) -> Insn:
    """if w_dst s> w_src goto pc + off + 1."""
    return jmp32_reg(JmpOp.JSGT, dst, src, off)


@_form(_JMP_K[JmpOp.JSGE])
def jsge_imm(dst: int, imm: int, off: int) -> Insn:
    """if dst s>= imm32 goto pc + off + 1."""
    return jmp_imm(JmpOp.JSGE, dst, imm, off)


@_form(_JMP_X[JmpOp.JSGE])
def jsge_reg(dst: int, src: int, off: int) -> Insn:
    """if dst s>= src goto pc + off + 1."""
    return jmp_reg(JmpOp.JSGE, dst, src, off)


@_form(_JMP32_K[JmpOp.JSGE])
def jsge32_imm(dst: int, imm: int, off: int) -> Insn:
    """if w_dst s>= imm32 goto pc + off + 1."""
    return jmp32_imm(JmpOp.JSGE, dst, imm, off)


@_form(_JMP32_X[JmpOp.JSGE])
def jsge32_reg(dst: int, src: int, off: int) -> Insn:
    """if w_dst s>= w_src goto pc + off + 1."""
    return jmp32_reg(JmpOp.JSGE, dst, src, off)


@_form(_JMP_K[JmpOp.JSLT])
def jslt_imm(dst: int, imm: int, off: int) -> Insn:
    """if dst s< imm32 goto pc + off + 1."""
    return jmp_imm(JmpOp.JSLT, dst, imm, off)


@_form(_JMP_X[JmpOp.JSLT])
def jslt_reg(dst: int, src: int, off: int) -> Insn:
    """if dst s< src goto pc + off + 1."""
    return jmp_reg(JmpOp.JSLT, dst, src, off)


@_form(_JMP32_K[JmpOp.JSLT])
def jslt32_imm(dst: int, imm: int, off: int) -> Insn:
    """if w_dst s< imm32 goto pc + off + 1."""
    return jmp32_imm(JmpOp.JSLT, dst, imm, off)


@_form(_JMP32_X[JmpOp.JSLT])
def jslt32_reg(dst: int, src: int, off: int) -> Insn:
    """if w_dst s< w_src goto pc + off + 1."""
    return jmp32_reg(JmpOp.JSLT, dst, src, off)


@_form(_JMP_K[JmpOp.JSLE])
def jsle_imm(dst: int, imm: int, off: int) -> Insn:
    """if dst s<= imm32 goto pc + off + 1."""
    return jmp_imm(JmpOp.JSLE, dst, imm, off)


@_form(_JMP_X[JmpOp.JSLE])
def jsle_reg(dst: int, src: int, off: int) -> Insn:
    """if dst s<= src goto pc + off + 1."""
    return jmp_reg(JmpOp.JSLE, dst, src, off)


@_form(_JMP32_K[JmpOp.JSLE])
def jsle32_imm(dst: int, imm: int, off: int) -> Insn:
    """if w_dst s<= imm32 goto pc + off + 1."""
    return jmp32_imm(JmpOp.JSLE, dst, imm, off)


@_form(_JMP32_X[JmpOp.JSLE])
def jsle32_reg(dst: int, src: int, off: int) -> Insn:
    """if w_dst s<= w_src goto pc + off + 1."""
    return jmp32_reg(JmpOp.JSLE, dst, src, off)


"""Register liveness: the one backward data flow the verifier, the flow graph, the passes and coverage use.

Registers are bit masks (bit r for r0..r11).  Two views of an instruction's
registers, as the verifier's ``check_reg_arg`` sees them:

* `uses_defs`: every register read and written.  A call reads r1-r5 (a
  helper whose prototype is known: its arguments only) and
  writes r0-r5 (a helper's or a callee's result and clobbers), ``exit`` reads
  r0, LD_ABS/LD_IND read r6 (their implicit context) and clobber r0-r5,
  atomics read their base and value (fetch forms write the value register,
  ``cmpxchg`` reads and writes r0), an indirect jump (``gotox``) keeps every
  register live (its targets are not in the list).
* `reads64`: those of the reads that take all 64 bits (the kernel's
  ``is_reg64``), the view behind the zero-extension decision
  (``opt_subreg_zext_lo32_rnd_hi32``): 64-bit ALU and JMP operands, pointers
  (load / store / atomic bases), DW store values, call arguments, the exit
  value.  `def32` is the register an instruction defines as a 32-bit
  sub-register; `wide_uses_defs` gives the three as register sets.

`solve` is the data flow itself, over instructions (not blocks), linear in
the edges: one backward sweep settles everything but back edges, then a
worklist re-visits predecessors of what changed.  A mask only grows, so each
instruction changes at most 12 times: a chain of backward gotos costs one
sweep plus one re-visit per back edge.  Memory is a few bytes per
instruction (``array`` columns, never a Python int per instruction).

Edges: a fall-through to the next instruction (`falls`) and at most one
jump target (`jump_targets`); a call continues after itself (the callee is
analysed on its own and cannot see the caller's r6-r9)::

    >>> live = list_liveness(pl)             # over pl.live_ids(), in list order
    >>> live.live_in[i], live.out(i)         # registers live before / after position i
    >>> live.live_out()                      # every position's live-out, as uint16

Three front ends build the columns `solve` takes: `list_liveness` (a patch
list, by node), `insn_liveness` (an instruction list: `FlowGraph`) and
`slot_liveness` (slot columns: the verifier, whose helper calls read only
their prototype's arguments).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from typing import Callable

import numpy as np

from bpfpatch.isa import KIND, KIND_OF, Insn, Kind
from bpfpatch.isa.refs import TARGET_OF, Target
from bpfpatch.isa.opcodes import ATOMIC_FETCH, CLASS_MASK, LD_IMM64, OP_MASK, SIZE_MASK, AluOp, AtomicOp, InsnClass, Size

#: r1-r5, the arguments a call reads.
ARGS_MASK = 0b111110
#: r0-r5, the registers a call leaves written.
CALLER_SAVED_MASK = 0b111111
#: r0-r10, every register a program names.
ALL_REGS_MASK = (1 << 11) - 1


def uses_defs(insn: Insn, helper_args: int = 5) -> tuple[int, int]:
    """(registers read, registers written) by one instruction, as bit masks over r0-r11.

    `helper_args`: how many arguments (r1 up) a helper call reads, where its prototype is known.
    """
    code, dst, src, _off, imm = insn
    kind = KIND_OF[code]
    d, s = 1 << dst, 1 << src
    if kind == Kind.ALU_K:
        return (0 if code & OP_MASK == AluOp.MOV else d), d
    if kind == Kind.ALU_X:
        return (s if code & OP_MASK == AluOp.MOV else d | s), d
    if kind in (Kind.NEG, Kind.END):
        return d, d
    if kind == Kind.JCOND_K:
        return d, 0
    if kind == Kind.JCOND_X:
        return d | s, 0
    if kind == Kind.CALL:
        return (ARGS_MASK if src or helper_args == 5 else (1 << helper_args + 1) - 2), CALLER_SAVED_MASK
    if kind == Kind.CALLX:
        return ARGS_MASK | d, CALLER_SAVED_MASK
    if kind == Kind.EXIT:
        return 1, 0
    if kind == Kind.GOTOX:
        return ALL_REGS_MASK, 0  # its targets (a jump table's entries) are not in the list: all stays live
    if kind == Kind.LD_IMM64:
        return 0, d
    if kind == Kind.LD_ABS:
        return 1 << 6, CALLER_SAVED_MASK
    if kind == Kind.LD_IND:
        return 1 << 6 | s, CALLER_SAVED_MASK
    if kind in (Kind.LDX, Kind.LDSX):
        return s, d
    if kind == Kind.ST:
        return d, 0
    if kind == Kind.STX:
        return d | s, 0
    if kind == Kind.ATOMIC:
        if imm == AtomicOp.LOAD_ACQ:
            return s, d
        if imm == AtomicOp.STORE_REL:
            return d | s, 0
        if imm == AtomicOp.CMPXCHG:
            return d | s | 1, 1
        return d | s, (s if imm & ATOMIC_FETCH else 0)
    return 0, 0  # ja, gotol, may_goto, nops


def reads64(insn: Insn, uses: int) -> int:
    """The registers among `uses` that `insn` reads as all 64 bits: the kernel's ``is_reg64`` for a source.

    64-bit ALU and JMP operands, call arguments, the exit value, pointers (the
    base of a load, store or atomic; LD_ABS/LD_IND's r6) and a DW store's or
    atomic's value.  Where the kernel asks the register's type (a 32-bit
    store's value is a pointer?), the value is taken for the scalar it nearly
    always is: its low half is read.
    """
    code = insn.code
    cls = code & CLASS_MASK
    if cls == InsnClass.STX and code & SIZE_MASK != Size.DW:
        atomic_load = KIND_OF[code] == Kind.ATOMIC and insn.imm == AtomicOp.LOAD_ACQ
        return uses & (1 << (insn.src if atomic_load else insn.dst))  # the pointer only
    if cls in (InsnClass.ALU, InsnClass.ALU64) and code & OP_MASK == AluOp.END:
        return uses if insn.imm == 64 else 0
    if cls in (InsnClass.ALU, InsnClass.JMP32):
        return 0
    return uses


def def32(insn: Insn) -> int | None:
    """The register `insn` defines as a 32-bit sub-register (its upper half zero, unless zero-extended), or None."""
    code, dst, src, off, imm = insn
    kind = KIND_OF[code]
    if kind in (Kind.ALU_K, Kind.ALU_X, Kind.NEG):
        # `w_r = w_r` is the zero extension itself: its result is a full 64-bit value.
        zext = kind == Kind.ALU_X and code & OP_MASK == AluOp.MOV and src == dst and off == 0
        return dst if code & CLASS_MASK == InsnClass.ALU and not zext else None
    if kind == Kind.LDX:
        return dst if code & SIZE_MASK != Size.DW else None
    if kind == Kind.ATOMIC and code & SIZE_MASK != Size.DW:
        if imm == AtomicOp.CMPXCHG:
            return 0
        if imm == AtomicOp.LOAD_ACQ:
            return dst
        if imm & ATOMIC_FETCH:
            return src
    return None


def _regs(mask: int) -> frozenset[int]:
    return frozenset(r for r in range(12) if mask >> r & 1)


def wide_uses_defs(insn: Insn) -> tuple[frozenset[int], frozenset[int], int | None]:
    """(registers read as 64 bits (`reads64`), registers (re)defined, register defined as a 32-bit sub-register)."""
    use, defs = uses_defs(insn)
    return _regs(reads64(insn, use)), _regs(defs), def32(insn)


def _wide_masks(insn: Insn) -> tuple[int, int, int]:
    use, defs = uses_defs(insn)
    d32 = def32(insn)
    return reads64(insn, use), defs, -1 if d32 is None else d32


def _full_masks(insn: Insn) -> tuple[int, int, int]:
    use, defs = uses_defs(insn)
    return use, defs, -1


#: Per opcode: control never falls through to the next instruction.
NO_FALL = np.isin(KIND, (Kind.EXIT, Kind.JA, Kind.GOTOL, Kind.GOTOX))
#: Per opcode: the instruction's target reference is a control-flow edge (calls return, loads do not jump).
HAS_TARGET_EDGE = np.isin(KIND, (Kind.JA, Kind.GOTOL, Kind.JCOND_K, Kind.JCOND_X, Kind.MAY_GOTO))
#: Per opcode: the instruction ends a basic block (it jumps, or control does not fall through), the one block rule.
ENDS_BLOCK = NO_FALL | HAS_TARGET_EDGE
_IMM_MATTERS = np.isin(KIND, (Kind.END, Kind.ATOMIC))
_NO_FALL_B, _HAS_TARGET_EDGE_B = bytes(NO_FALL.astype(np.uint8)), bytes(HAS_TARGET_EDGE.astype(np.uint8))


def falls(code: np.ndarray) -> np.ndarray:
    """Per position (opcodes in list order): does control fall through to the next one?"""
    fall = ~np.take(NO_FALL, code)
    if len(fall):
        fall[-1] = False
    return fall


def jump_targets(code: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per position: the position its jump edge goes to, or -1 (`target`: every reference's position)."""
    return np.where(np.take(HAS_TARGET_EDGE, code), target, -1)


def target_positions(pl, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(node id -> position in `ids` or -1, per node of `ids`: where its reference lands, or -1), vectorized.

    A reference to a deleted node lands on the next live one, as in `linearize`.
    """
    index_of = np.full(pl.id_bound, -1, dtype=np.int64)
    index_of[ids] = np.arange(len(ids))
    dest = pl.target_ids(ids)  # deleted targets forward to their landing
    target = np.where(dest >= 0, index_of[np.maximum(dest, 0)], -1)
    return index_of, target


@dataclass
class Liveness:
    """The solution: registers live before each position (`live_in`) and the edges it was solved over."""

    live_in: array  # "H": mask per position
    fall: bytes  # 1 where control falls through to the next position
    target: array  # "i": the jump edge's position, or -1

    def out(self, i: int) -> int:
        """Registers live just after position `i` (on its fall-through or its jump)."""
        m = self.live_in[i + 1] if self.fall[i] else 0
        t = self.target[i]
        return m | self.live_in[t] if t >= 0 else m

    def live_out(self) -> np.ndarray:
        """Every position's live-out mask, as a uint16 array."""
        n = len(self.live_in)
        live_in = np.frombuffer(self.live_in, dtype=np.uint16) if n else np.zeros(0, dtype=np.uint16)
        out = np.zeros(n, dtype=np.uint16)
        if not n:
            return out
        fall = np.frombuffer(self.fall, dtype=np.uint8).astype(bool)
        out[:-1] = np.where(fall[:-1], live_in[1:], 0)
        tgt = np.frombuffer(self.target, dtype=np.int32)
        has = tgt >= 0
        out[has] |= live_in[tgt[has]]
        return out


def _column(values, typecode: str) -> array:
    """`values` as an ``array`` of `typecode` (an array of that type is taken as it is, not copied)."""
    if isinstance(values, array) and values.typecode == typecode:
        return values
    if typecode == "B" and isinstance(values, (bytes, bytearray)):
        return values
    return array(typecode, np.asarray(values, dtype={"H": np.uint16, "i": np.int32, "B": np.uint8}[typecode]).tobytes())


def solve(use, defs, fall, target, *, kill: array | None = None) -> Liveness:
    """Backward liveness over positions: ``in = use | (out & ~defs)``, ``out`` = union of successors' ``in``.

    `use` / `defs`: register masks per position; `fall`: per position, an
    edge to the next one (bool); `target`: the jump edge's position or -1.
    Arrays (``array`` "H" / "B" / "i") are used as they are; NumPy columns are
    converted.  `kill` (the complement of `defs`, as an array) may be given instead of `defs`.  The least fixed point, in time linear in the edges (see the
    module), in about 20 bytes an instruction besides the inputs.
    """
    r = _column(use, "H")
    n = len(r)
    if kill is None:
        kill = array("H", (~np.asarray(defs, dtype=np.uint16)).astype(np.uint16).tobytes())
    fall_a = bytes(_column(fall, "B"))
    tgt_a = _column(target, "i")
    # Jump predecessors as linked lists (a fall-through's predecessor is the position before):
    # first[t] is the latest jump into t, nxt[k] the one before it.
    first = array("i", [-1]) * n
    jumps = sum(1 for t in tgt_a if t >= 0)
    srcs, nxt = array("i", bytes(4 * jumps)), array("i", bytes(4 * jumps))
    back = array("i")  # the worklist, seeded with the back edges' sources (an array: no int object each)
    k = 0
    for i, t in enumerate(tgt_a):
        if t >= 0:
            nxt[k], first[t], srcs[k] = first[t], k, i
            k += 1
            if t <= i:
                back.append(i)
    live_in = array("H", bytes(2 * n))

    def out_of(i: int) -> int:
        m = live_in[i + 1] if fall_a[i] else 0
        t = tgt_a[i]
        return m | live_in[t] if t >= 0 else m

    # One backward sweep settles everything but back edges; then a worklist.
    for i in range(n - 1, -1, -1):
        live_in[i] = r[i] | (out_of(i) & kill[i])
    work = back
    queued = bytearray(n)
    for i in work:
        queued[i] = 1
    while work:
        i = work.pop()
        queued[i] = 0
        new = r[i] | (out_of(i) & kill[i])
        if new != live_in[i]:
            live_in[i] = new
            if i and fall_a[i - 1] and not queued[i - 1]:
                queued[i - 1] = 1
                work.append(i - 1)
            k = first[i]
            while k >= 0:
                p = srcs[k]
                if not queued[p]:
                    queued[p] = 1
                    work.append(p)
                k = nxt[k]
    return Liveness(live_in, fall_a, tgt_a)


def _decode_word(w: int) -> Insn:
    """The instruction of a slot word (the second word of an ld_imm64 does not change its masks)."""
    off = (w >> 16) & 0xFFFF
    imm = (w >> 32) & 0xFFFFFFFF
    return Insn(w & 0xFF, (w >> 8) & 0x0F, (w >> 12) & 0x0F, off - 0x10000 if off >> 15 else off,
                imm - (1 << 32) if imm >> 31 else imm)


def word_masks(w0: np.ndarray, *, wide: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(use, defs, 32-bit definition's register or -1) per first slot word, each distinct shape decoded once."""
    code = (w0 & np.uint64(0xFF)).astype(np.uint8)
    # The immediate matters only to END / ATOMIC: the rest share one entry per (code, regs, off).
    key = np.where(np.take(_IMM_MATTERS, code), w0, w0 & np.uint64(0xFFFFFFFF))
    uniq, inv = np.unique(key, return_inverse=True)
    masks = _wide_masks if wide else _full_masks
    table = np.array([masks(_decode_word(int(w))) for w in uniq.tolist()], dtype=np.int64).reshape(-1, 3)
    inv = inv.reshape(-1)
    return (table[:, 0].astype(np.uint16)[inv], table[:, 1].astype(np.uint16)[inv],
            table[:, 2].astype(np.int8)[inv])


def list_liveness(pl, *, wide: bool = False, ids: np.ndarray | None = None,
                  w0: np.ndarray | None = None) -> tuple[np.ndarray, Liveness, np.ndarray]:
    """Liveness over a patch list's live nodes: (their ids in list order, the solution, per position
    the register of its 32-bit definition or -1).

    ``wide=True`` solves for registers read as 64 bits (`wide_uses_defs`), the
    zero-extension view; otherwise for every read (`uses_defs`).  `ids` /
    `w0`: ``pl.live_ids()`` and their first words, if the caller has them.
    """
    if ids is None:
        ids = pl.live_ids()
    if w0 is None:
        w0, _ = pl.words(ids)
    code = (w0 & np.uint64(0xFF)).astype(np.uint8)
    use, defs, d32 = word_masks(w0, wide=wide)
    _, target = target_positions(pl, ids)
    return ids, solve(use, defs, falls(code), jump_targets(code, target)), d32


def insn_liveness(insns: list[Insn], target: list[int], within: list[bool] | np.ndarray) -> Liveness:
    """Liveness over a list of instructions (`FlowGraph`'s form).

    `target`: per instruction, the position its reference lands on or -1 (only
    jumps make it an edge); `within`: may control pass on to the next
    position at all (False at the end of a subprogram); what the opcode says
    (exit, goto) is applied here.
    """
    # One entry per register shape: the offset never matters, the immediate only to atomics.
    memo: dict[tuple[int, int, int, int], tuple[int, int]] = {}
    n = len(insns)
    # Sized once (appending would reallocate: twice the column at the moment of a copy).
    use, kill, fall, tgt = array("H", bytes(2 * n)), array("H", bytes(2 * n)), bytearray(n), array("i", bytes(4 * n))
    atomic = Kind.ATOMIC
    for i, (insn, t, ok) in enumerate(zip(insns, target, within)):
        code = insn.code
        key = (code, insn.dst, insn.src, insn.imm if KIND_OF[code] == atomic else 0)
        ud = memo.get(key)
        if ud is None:
            u, d = uses_defs(insn)
            ud = memo[key] = (u, ~d & 0xFFFF)
        use[i], kill[i] = ud
        fall[i] = ok and not _NO_FALL_B[code]
        tgt[i] = t if _HAS_TARGET_EDGE_B[code] else -1
    del memo
    return solve(use, None, fall, tgt, kill=kill)


def slot_edges(code, src, off, imm) -> tuple[bytearray, array]:
    """The control-flow edges of a program held in slot columns: (per slot, does control fall through to
    the next slot; per slot, the slot its jump goes to, or -1).

    No edge leaves the program.  An ld_imm64 falls into its second slot, which
    falls on (the registers pass through it); a call falls through.  Which
    field holds a jump's offset is isa's rule (`target_of`: ``imm`` for gotol).
    """
    n = len(code)
    fall, tgt = bytearray(n), array("i", [-1]) * n
    imm_field = Target.IMM
    i = 0
    while i < n:
        c = code[i]
        fall[i] = i + 1 < n and not _NO_FALL_B[c]
        if c == LD_IMM64:
            if i + 2 < n:
                fall[i + 1] = 1
            i += 2
            continue
        if _HAS_TARGET_EDGE_B[c]:
            t = i + 1 + (imm[i] if TARGET_OF[c << 4 | src[i]] == imm_field else off[i])
            if 0 <= t < n:
                tgt[i] = t
        i += 1
    return fall, tgt


#: Per opcode, a byte: does the immediate change what `slot_liveness` says (`_IMM_MATTERS`, and a call's: the
#: helper's number gives its argument count).
_SLOT_IMM_MATTERS = bytes((_IMM_MATTERS | (KIND == Kind.CALL)).astype(np.uint8))


def slot_liveness(code: list[int], dst: list[int], src: list[int], off: list[int], imm: list[int],
                  helper_args: Callable[[int], int] | None = None,
                  edges: tuple[bytearray, array] | None = None) -> tuple[array, array]:
    """Registers live before each slot of a program held in columns (the verifier's form), twice, as
    ``array("H")`` masks (2 bytes a slot, where a list took 8):
    for every read (`uses_defs`) and for reads of all 64 bits (`reads64`), the liveness behind ``zext_dst``.

    Edges: `slot_edges` (pass them in when already computed); a call continues
    after itself (a callee reads r1-r5).  `helper_args(imm)`: how many
    arguments helper `imm` reads.  An ld_imm64's second slot is 0 in both.
    """
    n = len(code)
    fall, tgt = edges if edges is not None else slot_edges(code, src, off, imm)
    use, use64, kill = array("H", bytes(2 * n)), array("H", bytes(2 * n)), array("H", [0xFFFF]) * n
    # the offset never matters, the immediate only to a byte swap, an atomic and a call (`_SLOT_IMM_MATTERS`): one
    # entry for every `if r1 == i` of a program, where one an immediate took 250 bytes an instruction.  Key and
    # masks are one int each, not tuples: the thousands of distinct calls of a program would leave as many freed
    # tuples on CPython's free lists, held for the rest of the process
    memo: dict[int, int] = {}
    second: list[int] = []
    imm_matters = _SLOT_IMM_MATTERS
    i = 0
    while i < n:
        c = code[i]
        # exact for any immediate: imm << 16 ends in 16 zero bits
        key = (imm[i] << 16 if imm_matters[c] else 0) | src[i] << 12 | dst[i] << 8 | c
        masks = memo.get(key)
        if masks is None:
            insn = Insn(c, dst[i], src[i], off[i], imm[i])
            nargs = helper_args(imm[i]) if helper_args and KIND_OF[c] == Kind.CALL and not src[i] else 5
            u, d = uses_defs(insn, nargs)
            masks = memo[key] = u | reads64(insn, u) << 16 | (~d & 0xFFFF) << 32
        use[i] = masks & 0xFFFF
        use64[i] = masks >> 16 & 0xFFFF
        kill[i] = masks >> 32
        if c == LD_IMM64:
            second.append(i + 1)
            i += 2
        else:
            i += 1
    live, live64 = (solve(u, None, fall, tgt, kill=kill).live_in for u in (use, use64))
    for j in second:
        live[j] = live64[j] = 0
    return live, live64


def regs_of(mask: int) -> frozenset[int]:
    """The registers r0-r10 of a mask."""
    return frozenset(r for r in range(11) if mask >> r & 1)


__all__ = ["ALL_REGS_MASK", "ARGS_MASK", "CALLER_SAVED_MASK", "ENDS_BLOCK", "HAS_TARGET_EDGE", "Liveness", "NO_FALL", "def32", "falls",
           "insn_liveness", "jump_targets", "list_liveness", "reads64", "regs_of", "slot_edges", "slot_liveness", "solve", "target_positions", "uses_defs",
           "wide_uses_defs", "word_masks"]

"""Control flow over a patch list: successors and constant-aware reachability.

`analyze` walks the live nodes with a small forward constant propagation
(registers set by ``mov imm``, ``ld_imm64`` and ALU-immediate ops on known
values), so a conditional jump whose operands are known has one live edge.
The result, ``seen``, plays the part of the verifier's "some path reaches
this instruction".
"""

from __future__ import annotations

from array import array
from typing import Callable

import numpy as np

from bpfpatch.analysis.liveness import NO_FALL, target_positions
from bpfpatch.isa import KIND, KIND_OF, Insn, Kind, Ref, refs_of_words
from bpfpatch.isa.opcodes import ATOMIC_FETCH, CLASS_MASK, OP_MASK, AluOp, AtomicOp, InsnClass, JmpOp, PseudoSrc
from bpfpatch.patch import Node, PatchList
from bpfpatch.program import JUMP_TABLES, relocated_slots

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1
NREGS = 12  # r0-r10 and the auxiliary register r11 (AX), which a pass may have introduced
State = tuple  # NREGS registers: int (known, unsigned 64-bit) or None (unknown)
UNKNOWN: State = (None,) * NREGS


class Flow:
    """What `analyze` found, per live node in list order (`ids`).

    The three flags are kept as bytes (a byte an instruction); ``seen``,
    ``fallthrough_live`` and ``target_live`` read them as lists of bools,
    `seen_mask` as a NumPy view.
    """

    __slots__ = ("pl", "ids", "_seen", "_ft", "_tg")

    def __init__(self, pl: PatchList, ids: np.ndarray, seen: bytearray, fallthrough_live: bytearray,
                 target_live: bytearray) -> None:
        self.pl = pl
        self.ids = ids  # the live node ids, in list order
        self._seen, self._ft, self._tg = seen, fallthrough_live, target_live

    @property
    def seen(self) -> list[bool]:
        """Does some path reach the node?"""
        return [bool(x) for x in self._seen]

    @property
    def seen_mask(self) -> np.ndarray:
        """`seen` as a NumPy bool array (a view of the flags, no copy)."""
        return np.frombuffer(self._seen, dtype=np.bool_) if self._seen else np.zeros(0, dtype=np.bool_)

    @property
    def fallthrough_live(self) -> list[bool]:
        """For conditional jumps: is the fall-through edge taken?"""
        return [bool(x) for x in self._ft]

    @property
    def target_live(self) -> list[bool]:
        """For jumps: is the target edge taken?"""
        return [bool(x) for x in self._tg]

    @property
    def nodes(self) -> list[Node]:
        """The live nodes in list order (handles made on request: the walk holds only ids)."""
        return [Node(self.pl, i) for i in self.ids.tolist()]

    @property
    def index(self) -> dict[int, int]:
        """Node id -> position in `ids`."""
        return {nid: i for i, nid in enumerate(self.ids.tolist())}


def _s(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


# The opcode fields the walk compares, as plain ints (an IntEnum member is a class attribute
# lookup and a subclass compare at every step).
_ADD, _SUB, _MUL, _DIV, _OR, _AND, _LSH, _RSH = (int(AluOp.ADD), int(AluOp.SUB), int(AluOp.MUL), int(AluOp.DIV),
                                                 int(AluOp.OR), int(AluOp.AND), int(AluOp.LSH), int(AluOp.RSH))
_MOD, _XOR, _MOV, _ARSH = int(AluOp.MOD), int(AluOp.XOR), int(AluOp.MOV), int(AluOp.ARSH)
_JEQ, _JNE, _JGT, _JGE, _JLT, _JLE, _JSET = (int(JmpOp.JEQ), int(JmpOp.JNE), int(JmpOp.JGT), int(JmpOp.JGE),
                                             int(JmpOp.JLT), int(JmpOp.JLE), int(JmpOp.JSET))
_JSGT, _JSGE, _JSLT, _JSLE = int(JmpOp.JSGT), int(JmpOp.JSGE), int(JmpOp.JSLT), int(JmpOp.JSLE)
_K_ALU_K, _K_ALU_X, _K_NEG, _K_END = int(Kind.ALU_K), int(Kind.ALU_X), int(Kind.NEG), int(Kind.END)
_K_LDX, _K_LDSX, _K_LD_IMM64, _K_ATOMIC = int(Kind.LDX), int(Kind.LDSX), int(Kind.LD_IMM64), int(Kind.ATOMIC)
_K_CALL, _K_LD_ABS, _K_LD_IND, _K_EXIT = int(Kind.CALL), int(Kind.LD_ABS), int(Kind.LD_IND), int(Kind.EXIT)
_K_JA, _K_GOTOL, _K_GOTOX, _K_MAY_GOTO = int(Kind.JA), int(Kind.GOTOL), int(Kind.GOTOX), int(Kind.MAY_GOTO)
_K_JCOND_K, _K_JCOND_X = int(Kind.JCOND_K), int(Kind.JCOND_X)
_CMPXCHG, _LOAD_ACQ = int(AtomicOp.CMPXCHG), int(AtomicOp.LOAD_ACQ)
_R_SUBPROG = int(Ref.SUBPROG)
_SUBPROG_REF = bytes(int(r) in (Ref.SUBPROG, Ref.FUNC) for r in range(256))  # per Ref: makes a subprogram start
_JMP32 = int(InsnClass.JMP32)
_ALU64 = int(InsnClass.ALU64)


def _alu(op: int, a: int, b: int, bits: int) -> int | None:
    m = (1 << bits) - 1
    a, b = a & m, b & m
    if op == _ADD: return (a + b) & m
    if op == _SUB: return (a - b) & m
    if op == _MUL: return (a * b) & m
    if op == _OR: return a | b
    if op == _AND: return a & b
    if op == _XOR: return a ^ b
    if op == _LSH: return (a << (b & (bits - 1))) & m
    if op == _RSH: return a >> (b & (bits - 1))
    if op == _ARSH: return (_s(a, bits) >> (b & (bits - 1))) & m
    if op == _MOV: return b
    return None


def _cond(op: int, a: int, b: int, bits: int) -> bool | None:
    m = (1 << bits) - 1
    a, b = a & m, b & m
    if op == _JEQ: return a == b
    if op == _JNE: return a != b
    if op == _JGT: return a > b
    if op == _JGE: return a >= b
    if op == _JLT: return a < b
    if op == _JLE: return a <= b
    if op == _JSET: return bool(a & b)
    sa, sb = _s(a, bits), _s(b, bits)
    if op == _JSGT: return sa > sb
    if op == _JSGE: return sa >= sb
    if op == _JSLT: return sa < sb
    if op == _JSLE: return sa <= sb
    return None


def transfer(insn: Insn, st: list) -> None:
    """Apply one non-branching instruction to the register state `st` (in place): the walk's rule for
    what an instruction does to the known values, written on the `Insn` (`transfer_words` is the
    same rule on the slot words, which the walk runs)."""
    kind = KIND_OF[insn.code]
    cls = insn.code & CLASS_MASK
    if kind in (Kind.ALU_K, Kind.ALU_X) and insn.off == 0:
        bits = 64 if cls == InsnClass.ALU64 else 32
        op = insn.code & OP_MASK
        b = (insn.imm & M64) if kind == Kind.ALU_K else st[insn.src]
        a = st[insn.dst] if op != AluOp.MOV else 0
        if a is None or b is None or op in (AluOp.DIV, AluOp.MOD):
            st[insn.dst] = None
        elif op in (AluOp.LSH, AluOp.RSH, AluOp.ARSH) and (b & M64) >= bits:
            st[insn.dst] = None  # the verifier forgets a value shifted by its width or more
        else:
            if bits == 32 and kind == Kind.ALU_K:
                b &= M32
            st[insn.dst] = _alu(op, a, b, bits)
    elif kind == Kind.LD_IMM64:
        st[insn.dst] = insn.imm & M64 if insn.src == PseudoSrc.NONE else None
    elif kind in (Kind.ALU_K, Kind.ALU_X, Kind.NEG, Kind.END, Kind.LDX, Kind.LDSX):
        st[insn.dst] = None
    elif kind == Kind.ATOMIC:
        if insn.imm == AtomicOp.CMPXCHG:
            st[0] = None
        elif insn.imm == AtomicOp.LOAD_ACQ:
            st[insn.dst] = None
        elif insn.imm & ATOMIC_FETCH:
            st[insn.src] = None
    elif kind == Kind.CALL:
        for r in range(6):
            st[r] = None
    elif kind in (Kind.LD_ABS, Kind.LD_IND):
        for r in range(6):
            st[r] = None


def transfer_words(kind: int, w0: int, hi: int, st: list) -> None:
    """`transfer` of the instruction with first slot word `w0` and kind `kind` (`bpfpatch.isa.KIND` of
    its opcode), read straight off the word with no `Insn` made; `hi`: an ld_imm64's second slot
    immediate (the upper 32 bits of its value). The path walk's step, held to `transfer` over every
    opcode by the tests."""
    if kind == _K_ALU_K or kind == _K_ALU_X:
        dst = (w0 >> 8) & 0xF
        if w0 & 0xFFFF0000:  # off != 0 (sdiv, smod, movsx): the value is not followed
            st[dst] = None
            return
        code = w0 & 0xFF
        bits = 64 if code & CLASS_MASK == _ALU64 else 32
        op = code & OP_MASK
        # the immediate sign-extended to 64 bits, or the source register
        b = ((w0 >> 32 ^ 0x80000000) - 0x80000000) & M64 if kind == _K_ALU_K else st[(w0 >> 12) & 0xF]
        a = st[dst] if op != _MOV else 0
        if a is None or b is None or op == _DIV or op == _MOD:
            st[dst] = None
        elif (op == _LSH or op == _RSH or op == _ARSH) and b >= bits:
            st[dst] = None  # the verifier forgets a value shifted by its width or more
        else:
            if bits == 32 and kind == _K_ALU_K:
                b &= M32
            st[dst] = _alu(op, a, b, bits)
    elif kind == _K_LDX or kind == _K_LDSX or kind == _K_NEG or kind == _K_END:
        st[(w0 >> 8) & 0xF] = None
    elif kind == _K_LD_IMM64:
        st[(w0 >> 8) & 0xF] = None if (w0 >> 12) & 0xF else (w0 >> 32) | hi << 32
    elif kind == _K_CALL or kind == _K_LD_ABS or kind == _K_LD_IND:
        st[0] = st[1] = st[2] = st[3] = st[4] = st[5] = None
    elif kind == _K_ATOMIC:
        imm = w0 >> 32
        if imm == _CMPXCHG:
            st[0] = None
        elif imm == _LOAD_ACQ:
            st[(w0 >> 8) & 0xF] = None
        elif imm & ATOMIC_FETCH:
            st[(w0 >> 12) & 0xF] = None


#: Path steps per instruction the path walk may take (at least MIN_PATH_BUDGET, at most MAX_PATH_BUDGET).
PATH_STEPS_PER_INSN, MIN_PATH_BUDGET, MAX_PATH_BUDGET = 4, 20_000, 200_000


def analyze(pl: PatchList, budget: int | None = None) -> Flow:
    """Reachability from the entry and every called subprogram, with constant-folded branches.

    A ``gotox`` does not fall through; the entries of the program's jump
    tables are entry points with nothing known (any gotox may take any).
    A constant the loader writes (a CO-RE relocated immediate, such as
    ``bpf_core_field_exists``'s 1, which libbpf makes 0 where the running
    kernel lacks the field) is not known.

    Like the verifier, paths are explored with their own register values
    (so a bounded loop over constants is followed to its end) and identical
    (instruction, state) pairs are pruned.  Past `budget` steps the
    analysis falls back to merging states per instruction, which can only
    see more, never less.
    """
    # A path walk visits every instruction at least once: on a program larger than half the
    # budget it cannot finish, so go straight to the merged walk (linear) instead of paying
    # the budget first.
    count = len(pl)
    if budget is None:  # linear in the program: adversarial path counts cost a bounded walk
        budget = min(MAX_PATH_BUDGET, max(MIN_PATH_BUDGET, PATH_STEPS_PER_INSN * count))
    flow = _explore(pl, budget, merge=False) if 2 * count <= budget else None
    return flow if flow is not None else _explore(pl, budget, merge=True)


#: Distinct register states and (instruction, state, call stack) paths a path walk may hold per
#: instruction (at least MIN_PATH_BUDGET // 4 and MIN_PATH_BUDGET): past either the walk falls back to
#: merging, so a program whose every path step is new (nested loops counting a register up, 2^n
#: branch paths) costs bounded memory, as the step budget bounds its time.
PATH_STATES_PER_INSN, PATH_KEYS_PER_INSN = 0.25, 1.5


class TooManyPaths(Exception):
    """The path walk's memory bound was reached."""


class KeySet:
    """The path walk's visited keys: a set of non-negative ints in an open-addressing ``array``.

    Four bytes a slot while every key fits 32 bits (a path walk without deep call stacks), eight
    after, at most two thirds full, where a Python set holds an int object and a table entry per key
    (about 100 bytes); keys of 2**63 and more (deep call stacks of a huge program) go to a plain set.
    With `cap` (the most keys it will be asked to hold) the table stops growing at four fifths full
    for `cap` keys instead of doubling past it (20k keys: 25,000 slots, not 32,768).
    """

    __slots__ = ("_tab", "_size", "_n", "_big", "_empty", "_fits", "_grow_at", "_cap")

    def __init__(self, cap: int | None = None) -> None:
        self._tab = array("I", [_EMPTY32]) * 1024
        self._empty, self._fits = _EMPTY32, _EMPTY32  # the free slot's value; keys below `_fits` fit a slot
        self._size = 1024
        self._cap = cap
        self._grow_at = 2 * self._size // 3
        self._n = 0
        self._big: set[int] = set()

    def __len__(self) -> int:
        return self._n

    def add_new(self, key: int, limit: int) -> bool:
        """Add `key`; False if it was there.  Raise `TooManyPaths` for a new key past `limit` keys."""
        if key >= self._fits:
            if key >> 63:
                if key in self._big:
                    return False
                if self._n >= limit:
                    raise TooManyPaths
                self._big.add(key)
                self._n += 1
                return True
            self._widen()
        tab, size, empty = self._tab, self._size, self._empty
        h = (key * 0x9E3779B97F4A7C15 >> 24) % size
        while True:
            v = tab[h]
            if v == key:
                return False
            if v == empty:
                break
            h += 1
            if h == size:
                h = 0
        if self._n >= limit:
            raise TooManyPaths
        tab[h] = key
        self._n += 1
        if self._n > self._grow_at:
            typecode = tab.typecode
            del tab  # the old table is freed inside `_rehash`, before the new one is made
            self._rehash(self._next_size(), typecode, empty)
        return True

    def _next_size(self) -> int:
        size = 2 * self._size
        if self._cap is not None and self._n <= self._cap:  # no larger than four fifths full at `cap`
            size = min(size, max(5 * self._cap // 4 + 1, self._size + 1))
        return size

    def _widen(self) -> None:
        """Eight bytes a slot from now on (a key of 2**32 - 1 or more came)."""
        self._rehash(self._size, "q", -1)
        self._fits = 1 << 63

    def _rehash(self, size: int, typecode: str, empty: int) -> None:
        # the keys alone first, the old table freed before the new one is made (at 20k keys the two
        # tables at once were the walk's peak: 64 KB + 100 KB)
        old, old_empty = self._tab, self._empty
        old = array(old.typecode, (k for k in old if k != old_empty))
        self._tab = array("I")
        tab = array(typecode, [empty]) * size
        self._tab = tab
        self._size = size
        self._empty = empty
        cap = self._cap
        self._grow_at = 2 * size // 3
        if cap is not None and 5 * cap <= 4 * size:
            self._grow_at = max(self._grow_at, cap)
        for key in old:
            h = (key * 0x9E3779B97F4A7C15 >> 24) % size
            while tab[h] != empty:
                h += 1
                if h == size:
                    h = 0
            tab[h] = key


_EMPTY32 = 0xFFFFFFFF


class StateTable:
    """The walk's register states, interned and numbered in order of first appearance.

    A state that differs from a base state in one register is kept as (base, register, value): 6
    bytes in three columns while bases and values are small (each column widens, once, when one
    does not fit: 13 bytes), where a tuple of NREGS registers, its int objects and a dict entry took
    about 220.  Other states are bases themselves (a tuple each).  An open-addressing table of state
    numbers (two bytes a slot up to 65,536 slots), with an 8-bit fragment of each state's hash,
    finds a state again; equality is checked on the whole state, so two equal states always get one
    number.
    """

    __slots__ = ("bases", "_base", "_reg", "_val", "_hash", "_tab", "_mask", "_empty", "_hint", "_last_sid", "_last")

    def __init__(self) -> None:
        self.bases: list[State] = []  # the full tuples
        self._base = array("B")  # per state: its base's index ("i" from the 257th base on)
        self._reg = bytearray()  # per state: the register it changes (NREGS: none), | 0x80: to unknown
        self._val = array("I")  # per state: that register's known value ("Q" from the first past 32 bits)
        self._hash = bytearray()  # per state: bits 24-31 of its hash (the table's slot is its low bits)
        self._tab = array("H", [0xFFFF]) * 1024
        self._empty = 0xFFFF
        self._mask = 1023
        self._hint = 0  # the base of the state last read: where the next new state most likely comes from
        self._last_sid, self._last = -1, None

    def __len__(self) -> int:
        return len(self._base)

    def get(self, sid: int) -> State:
        """State number `sid`."""
        if sid == self._last_sid:
            st = self._last
        else:
            st = self._state(sid)
            self._last_sid, self._last = sid, st
        self._hint = self._base[sid]
        return st

    def _state(self, sid: int) -> State:
        st = self.bases[self._base[sid]]
        r = self._reg[sid]
        if r != NREGS:
            regs = list(st)
            regs[r & 0x7F] = None if r & 0x80 else self._val[sid]
            st = tuple(regs)
        return st

    def find(self, st: State, limit: int | None = None) -> int:
        """The number of `st`, added if new.  Raise `TooManyPaths` for a new state past `limit` states."""
        if st is self._last:
            return self._last_sid
        h = hash(st) & M32
        tab, mask, hashes, empty = self._tab, self._mask, self._hash, self._empty
        slot, frag = h & mask, h >> 24
        while (sid := tab[slot]) != empty:
            if hashes[sid] == frag and self.get(sid) == st:
                self._last_sid, self._last = sid, st
                return sid
            slot = (slot + 1) & mask
        sid = len(self._base)
        if limit is not None and sid >= limit:
            raise TooManyPaths
        base = self.bases[self._hint] if self.bases else None
        r = -1
        if base is not None:
            for k in range(NREGS):
                if st[k] != base[k]:
                    if r >= 0:
                        r = -2
                        break
                    r = k
        if r >= 0:
            v = st[r]
            if v is not None and v > M32 and self._val.typecode == "I":
                self._val = array("Q", self._val)
            self._base.append(self._hint)
            self._reg.append(r if v is not None else r | 0x80)
            self._val.append(0 if v is None else v)
        else:
            if len(self.bases) == 256 and self._base.typecode == "B":
                self._base = array("i", self._base)
            self._base.append(len(self.bases))
            self.bases.append(st)
            self._reg.append(NREGS)
            self._val.append(0)
        hashes.append(frag)
        tab[slot] = sid
        if 3 * (sid + 1) > 2 * mask:
            self._grow()
        self._last_sid, self._last = sid, st
        return sid

    def _grow(self) -> None:
        size = 2 * len(self._tab)
        self._empty = empty = 0xFFFF if size <= 1 << 16 else -1  # (2/3 full at most: every number fits)
        self._tab = array("H")
        self._tab = tab = array("H" if empty > 0 else "i", [empty]) * size
        self._mask = mask = size - 1
        for sid in range(len(self._base)):  # the slots from the states' hashes again (8 bits of each are kept)
            slot = hash(self._state(sid)) & mask
            while tab[slot] != empty:
                slot = (slot + 1) & mask
            tab[slot] = sid


def _explore(pl: PatchList, budget: int, merge: bool) -> Flow | None:
    # Compact columns (a few bytes an instruction): the words, decoded when visited, and
    # positions as int arrays; per instruction only its state (shared, interned) is kept.
    ids = pl.live_ids()
    count = len(ids)
    words0, words1 = pl.words(ids)
    # (of the second slot only its immediate: the rest of a valid ld_imm64's second slot is zero)
    w0, hi = array("Q", words0.tobytes()), array("I", (words1 >> np.uint64(32)).astype(np.uint32).tobytes())
    calls = bool(((words0 & np.uint64(0xF0FF)) == np.uint64(0x1085)).any())  # a pseudo call (src 1) to follow?
    # Per instruction its kind and what it refers to, a byte each: the walk's step reads the words
    # themselves and makes no `Insn`.
    kinds = np.take(KIND, (words0 & np.uint64(0xFF)).astype(np.uint8)).tobytes()
    refs = refs_of_words(words0).astype(np.uint8).tobytes()
    del words0, words1
    index_of, tgt = target_positions(pl, ids)
    target = array("i", tgt.astype(np.int32).tobytes())
    del tgt
    state = array("i", [-1]) * count  # per instruction: its state's number (merged walk), or a mark
    ft_live = bytearray(count)  # flags: a byte an instruction
    tg_live = bytearray(count)
    max_states = max(MIN_PATH_BUDGET // 4, int(PATH_STATES_PER_INSN * count))
    max_keys = max(MIN_PATH_BUDGET, int(PATH_KEYS_PER_INSN * count))
    # Path mode follows calls like the verifier: the callee starts with the caller's
    # r1-r5, and its exit returns r0 to the caller (r6-r9 preserved, r1-r5 clobbered).
    # A path is (insn, registers, call stack), kept as one int: states and stacks are numbered
    # as they first appear.  A call stack is () or (depth, return insn, caller registers, the
    # caller's stack): a call shares its caller's stack, not a copy of it (a tuple of every frame).
    # The work list holds ints: a merged walk's instruction (its state is the current one, queued
    # once), a path walk's key (instruction, state and stack numbers), not a tuple each.
    # Keys fit 64 bits (the visited set holds them as int64 too), and 32 bits without calls to follow
    # (no stack numbers) in a program small enough: four bytes a pending path.
    work = array("I" if merge or (not calls and (max_states + 2) * count < M32) else "q")
    queued = bytearray(count) if merge else None
    visited = KeySet(max_keys)
    states = StateTable()
    find, get = states.find, states.get
    kid_of: dict[tuple, int] = {(): 0}
    stacks: list[tuple] = [()]
    base = max_states + 1

    numbered = [(), 0]  # the call stack numbered last and its number: a path keeps its stack object

    def reach(i: int, st: State, stack: tuple = ()) -> int:
        """Queue the path (instruction `i`, registers `st`, call stack) unless it was walked; what was
        queued (a path walk's key, a merged walk's instruction), or -1."""
        if not 0 <= i < count:
            return -1
        if merge:
            sid = state[i]
            if sid < 0:
                state[i] = find(st)
            else:
                old = get(sid)
                # (from a list: a tuple built from a generator is resized, and freed onto the free list
                # of NREGS-tuples, which the next tuple of NREGS does not draw from: 2,000 of them stay)
                new = tuple([a if a == b else None for a, b in zip(old, st)])
                if new == old:
                    return -1
                state[i] = find(new)
            if not queued[i]:
                queued[i] = 1
                work.append(i)
                return i
            return -1
        sid = find(st, max_states)
        if stack is numbered[0]:
            kid = numbered[1]
        else:
            kid = kid_of.get(stack)
            if kid is None:
                kid = kid_of[stack] = len(stacks)
                stacks.append(stack)
            numbered[0], numbered[1] = stack, kid
        key = (kid * base + sid) * count + i
        if visited.add_new(key, max_keys):
            state[i] = 0
            work.append(key)
            return key
        return -1

    def take_now(key: int) -> State:
        """The registers of the path `reach` just queued as `key`, taken off the work list now."""
        work.pop()
        return get(key // count % base)  # (as `take`: the state read last guides how the next is kept)

    def take() -> tuple[int, State, tuple]:
        """The next path of the work list."""
        key = work.pop()
        if merge:
            queued[key] = 0
            return key, get(state[key]), ()
        rest, i = divmod(key, count)
        kid, sid = divmod(rest, base)
        return i, get(sid), stacks[kid]

    try:
        return _walk(pl, ids, index_of, w0, hi, kinds, refs, target, state, ft_live, tg_live, work, take, take_now, reach,
                     budget, merge)
    except TooManyPaths:
        return None


def _walk(pl: PatchList, ids: np.ndarray, index_of: np.ndarray, w0: array, hi: array, kinds: bytes, refs: bytes,
          target: array, state: list, ft_live: bytearray, tg_live: bytearray, work: array, take: Callable,
          take_now: Callable, reach: Callable, budget: int, merge: bool) -> Flow | None:
    count = len(ids)
    if count:
        reach(0, UNKNOWN)
        # Every function an ELF section defines is an entry point: global ones are programs of
        # their own (libbpf), local ones may be called from other sections by relocation.
        for sym in pl.program.meta.get("symbols", ()):
            if sym.type == "STT_FUNC" and 0 <= sym.slot < len(pl.program.slots):
                found = pl.find(sym.slot)
                node = pl.landing(found) if found is not None else None
                if node is not None and index_of[node.id] >= 0:
                    reach(int(index_of[node.id]), UNKNOWN)
        for node in table_targets(pl):  # a jump table's entries: where some gotox may go, nothing known
            if index_of[node.id] >= 0:
                reach(int(index_of[node.id]), UNKNOWN)
    # A loader patches these by position (CO-RE: `r1 = 1` of bpf_core_field_exists becomes 0 where the
    # field is missing): the value clang wrote is not the value the program runs with.
    pinned = relocated_slots(pl.program)
    loader_set = np.isin(pl.orig_indices(ids), np.fromiter(pinned, dtype=np.int64)).tolist() if pinned else None
    steps = 0
    then = None  # the path to walk next without the work list: the fall-through just queued
    while then is not None or work:
        if then is None:
            i, st, stack = take()
        else:
            i, st = then
            then = None
        steps += 1
        if not merge and steps > budget:
            return None
        kind = kinds[i]
        if kind == _K_EXIT:
            if stack:
                _, ret, caller, outer = stack
                back = (st[0],) + (None,) * 5 + tuple(caller[6:10]) + (None,) * (NREGS - 10)
                reach(ret, back, outer)
            continue
        if kind == _K_JA or kind == _K_GOTOL:
            tg_live[i] = True
            reach(target[i], st, stack)
            continue
        if kind == _K_GOTOX:  # an indirect jump: to a table's entries (reached above), never the next
            continue
        if kind == _K_JCOND_K or kind == _K_JCOND_X:
            word = w0[i]
            a = st[(word >> 8) & 0xF]
            b = ((word >> 32 ^ 0x80000000) - 0x80000000) & M64 if kind == _K_JCOND_K else st[(word >> 12) & 0xF]
            bits = 32 if word & CLASS_MASK == _JMP32 else 64
            outcome = _cond(word & OP_MASK, a, b, bits) if a is not None and b is not None else None
            if outcome is not False:
                tg_live[i] = True
                reach(target[i], st, stack)
            if outcome is not True:
                ft_live[i] = True
                reach(i + 1, st, stack)
            continue
        if kind == _K_MAY_GOTO:
            tg_live[i] = ft_live[i] = True
            reach(target[i], st, stack)
            reach(i + 1, st, stack)
            continue
        ref = refs[i]
        if ref == _R_SUBPROG and not merge and (depth := stack[0] if stack else 0) < 8 and target[i] >= 0:
            callee = (None,) + tuple(st[1:6]) + (None,) * (NREGS - 6)
            reach(target[i], callee, (depth + 1, i + 1, st, stack))
            continue
        if _SUBPROG_REF[ref]:
            reach(target[i], UNKNOWN)  # a subprogram (or callback) entry, without context
            # (a call into another ELF section has no target here: it returns like a helper)
        nxt = list(st)
        transfer_words(kind, w0[i], hi[i], nxt)
        if loader_set is not None and loader_set[i] and (kind == _K_ALU_K or kind == _K_LD_IMM64):
            nxt[(w0[i] >> 8) & 0xF] = None
        ft_live[i] = True
        key = reach(i + 1, tuple(nxt), stack)
        if key >= 0 and not merge:
            then = i + 1, take_now(key)  # the path just queued is the work list's next: walk it now
    seen = bytearray(count)
    for i, s in enumerate(state):
        if s >= 0:
            seen[i] = 1
    return Flow(pl, ids, seen, ft_live, tg_live)



def table_targets(pl: PatchList) -> list[Node]:
    """Where the entries of the program's ``gotox`` jump tables land (live nodes; a deleted one's landing)."""
    out = []
    for table in pl.program.meta.get(JUMP_TABLES) or ():
        for slot in table.targets:
            found = pl.find(slot)
            node = pl.landing(found) if found is not None else None
            if node is not None:
                out.append(node)
    return out

_CONDITIONAL = np.isin(KIND, (Kind.JCOND_K, Kind.JCOND_X))


def needs_path_analysis(pl: PatchList, w0: np.ndarray | None = None) -> bool:
    """Is plain CFG reachability not enough to decide what `analyze` would see?

    Constants prune paths only at conditional jumps, and a call returns only
    if its callee reaches an exit (which plain reachability cannot tell):
    without both, `reachable` gives exactly `analyze`'s answer.  `w0`: the
    live nodes' words, if the caller has them.
    """
    if w0 is None:
        w0, _ = pl.words(pl.live_ids())
    code = (w0 & np.uint64(0xFF)).astype(np.uint8)
    if np.take(_CONDITIONAL, code).any():
        return True
    ref = refs_of_words(w0)
    return bool(((ref == Ref.SUBPROG) | (ref == Ref.FUNC)).any())


def reachable(pl: PatchList, ids: np.ndarray | None = None, w0: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(live node ids in list order, which of them some path reaches), vectorized.

    Plain CFG reachability from the entry, every function symbol and every
    jump-table entry (``gotox`` goes only there): what
    `analyze` computes when `needs_path_analysis` is False.  Straight-line
    segments are marked with NumPy; the work list holds segment starts, not
    instructions.  `ids` / `w0`: `pl.live_ids()` and their words, if the
    caller has them.
    """
    if ids is None or w0 is None:
        ids = pl.live_ids()
        w0, _ = pl.words(ids)
    count = len(ids)
    seen = np.zeros(count, dtype=bool)
    if not count:
        return ids, seen
    code = (w0 & np.uint64(0xFF)).astype(np.uint8)
    index_of, target = target_positions(pl, ids)
    stops = np.flatnonzero(np.take(NO_FALL, code))
    refs = np.flatnonzero(target >= 0)
    work = [0] + [int(index_of[n.id]) for n in table_targets(pl) if index_of[n.id] >= 0]
    for sym in pl.program.meta.get("symbols", ()):
        found = pl.find(sym.slot) if sym.type == "STT_FUNC" else None
        if found is not None:
            node = pl.landing(found)
            if node is not None and index_of[node.id] >= 0:
                work.append(int(index_of[node.id]))
    while work:
        s = work.pop()
        if s < 0 or s >= count or seen[s]:
            continue
        k = int(np.searchsorted(stops, s))
        e = int(stops[k]) if k < len(stops) else count - 1
        done = seen[s : e + 1]
        if done.any():  # runs into code already walked (and its references already queued)
            e = s + int(np.argmax(done)) - 1
        seen[s : e + 1] = True
        a, b = np.searchsorted(refs, s), np.searchsorted(refs, e, side="right")
        work.extend(target[refs[a:b]].tolist())
    return ids, seen


"""eBPF programs as bit-vector formulas: symbolic execution over the CFG as a DAG, merging at joins.

The machine model (one `Env` per proof, shared by both programs so the same
input is the same symbol on both sides):

* registers are 64-bit vectors; ALU32 operates on the low half and zero-extends,
  JMP32 compares the low halves; x/0 = 0 and x%0 = x (the kernel's guards), signed
  division truncates towards zero with INT_MIN/-1 = INT_MIN and INT_MIN%-1 = 0;
  shift amounts are masked to the operand width as the interpreter does;
* memory is byte-addressed regions at fixed, distinct base addresses: the stack
  (512 bytes per call depth, r10 at its top), the context (fields from
  `bpfpatch.prove.layout`, one symbol per field), the packet (bytes ``pkt[i]``
  symbolic up to a length bound L, ``data_end = data + len``), global data and
  map values.  Each register also carries a *tag* (which region it points into),
  spills of 8-byte pointers keep theirs;
* maps are uninterpreted: an array map's element k starts as ``mapval_M(k)``, a
  hash map's key is present as ``mappresent_M(key)``; a lookup returns null or a
  pointer to a region whose content folds the earlier updates, deletes and
  lookups of the same key on the same path;
* helpers are modelled by position: the k-th helper call on a path returns
  ``helper_ret(k)`` (ktime, prandom, redirect, checksum helpers), and every call
  is an *event* (helper, arguments, bytes it reads) both programs must make in the
  same order.  Helpers that rewrite the packet make it ``pkt_after(k, i)``;
* tracing and LSM programs (`KERNEL_MEMORY_TYPES`): the context is the traced function's
  arguments, u64 each, read-only symbolic bytes like any context; an 8-byte load of one
  (or from kernel memory, or ``bpf_get_current_task_btf``'s result) is tagged ``kmem``, a
  pointer into kernel memory (PTR_TO_BTF_ID: the verifier refuses dereferencing the
  scalars among them).  A load through it is a *kernel read*, an event like a helper call
  (address, width) whose value is ``kread(k)`` for its position k: both programs must read
  the same addresses with the same widths in the same order, and the k-th read gives both
  the same value, whatever other CPUs write meanwhile (a faulting BPF_PROBE_MEM load gives
  0, one of the values).  Stores to map values and global data, which kernel memory may
  alias, are events too (in any program that may read kernel memory:
  `KERNEL_READING_HELPERS`); ``bpf_probe_read_kernel`` & co. are events whose bytes are
  ``probe_byte(k, i)`` (the ``_str`` variants may leave any byte as it was).  Assumed: the
  program's own stack is not reached through kernel memory; a store through a BTF pointer is an
  event, and a load of a map value after one is not modelled;
* tail calls, spin locks, local-storage deletes, socket casts (`HELPERS`) in every program type, and
  the open-coded numbers iterator (`Encoder.iter_num`), exactly;
* subprogram calls are inlined (r6-r9 are the caller's again on return); loops are
  unrolled: a node is (frames, slot, jumps back taken so far), up to `UNROLL`; a path
  that would take one more ends in a "bound" exit, which the proof must show infeasible.

Execution visits the instruction graph once in topological order; the states
reaching a node are merged with ``If`` on their path conditions, so the formula
grows with the program, not with its number of paths.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable

import z3

from bpfpatch.errors import BpfPatchError
from bpfpatch.isa import KIND_OF, Insn, Kind
from bpfpatch.isa.opcodes import (
    ATOMIC_FETCH,
    CLASS_MASK,
    OP_MASK,
    SIZE_BYTES,
    SIZE_MASK,
    SOURCE_MASK,
    AluOp,
    AtomicOp,
    CallSrc,
    InsnClass,
    JmpOp,
    PseudoSrc,
    Size,
)
from bpfpatch.program import Program
from bpfpatch.progtype import ProgType
from bpfpatch.prove import layout as L

STACK_SIZE = 512
UNROLL = 32  # jumps back a path may take (loop iterations, all loops together)
NREGS = 12  # r0-r10 and the kernel's AX (r11)
BV8 = z3.BitVecSort(8)
BV32 = z3.BitVecSort(32)
BV64 = z3.BitVecSort(64)
TRUE = z3.BoolVal(True)
FALSE = z3.BoolVal(False)
ETH_HLEN = 14


class ProofTimeout(BpfPatchError):
    """The proof's time ran out while the programs were being encoded (the proof is then undecided)."""


#: When the running proof's time is up (`time.perf_counter`), or None: `Encoder.run` checks it at every node,
#: so building a model that alone outlasts the timeout (thousands of variable-offset loads) stops there.
_DEADLINE: list[float | None] = [None]


def check_deadline(slot: int, side: str = "") -> None:
    """Raise `ProofTimeout` if the running proof's time is up: `Encoder.run` asks at every node, and
    a loop that builds terms per byte of a region (a load or store at a variable offset) at every byte."""
    until = _DEADLINE[0]
    if until is not None and time.perf_counter() > until:
        raise ProofTimeout(f"the time ran out while encoding instruction {slot}" + (f" (side {side})" if side else ""))


@contextmanager
def deadline(seconds: float):
    """Give up encoding (`ProofTimeout`) `seconds` from now, inside the ``with`` block."""
    saved = _DEADLINE[0]
    _DEADLINE[0] = time.perf_counter() + seconds
    try:
        yield
    finally:
        _DEADLINE[0] = saved


class Unsupported(BpfPatchError):
    """Something the model does not cover (the proof is then undecided, with this reason)."""

    def __init__(self, message: str, *, slot: int | None = None) -> None:
        self.slot = slot
        super().__init__((f"instruction {slot}: " if slot is not None else "") + message)


# --- helpers the model knows: id -> (name, number of arguments, kind) --------------------

HELPERS: dict[int, tuple[str, int, str]] = {
    1: ("map_lookup_elem", 2, "lookup"),
    2: ("map_update_elem", 4, "update"),
    3: ("map_delete_elem", 2, "delete"),
    5: ("ktime_get_ns", 0, "fresh64"),
    6: ("trace_printk", 5, "printk"),
    7: ("get_prandom_u32", 0, "fresh32"),
    8: ("get_smp_processor_id", 0, "fresh32"),
    10: ("l3_csum_replace", 5, "pkt"),
    11: ("l4_csum_replace", 5, "pkt"),
    14: ("get_current_pid_tgid", 0, "fresh64"),
    23: ("redirect", 2, "fresh64"),
    26: ("skb_load_bytes", 4, "load_bytes"),
    28: ("csum_diff", 5, "csum_diff"),
    34: ("get_hash_recalc", 1, "fresh32"),
    44: ("xdp_adjust_head", 2, "pkt_len"),
    51: ("redirect_map", 3, "fresh64"),
    54: ("xdp_adjust_meta", 2, "fresh64"),
    65: ("xdp_adjust_tail", 2, "pkt_len"),
    118: ("jiffies64", 0, "fresh64"),
    125: ("ktime_get_boot_ns", 0, "fresh64"),
    # tracing helpers: reads of kernel memory into the program's memory, task and call facts
    4: ("probe_read", 3, "probe_read"),
    15: ("get_current_uid_gid", 0, "fresh64"),
    16: ("get_current_comm", 2, "fill"),
    35: ("get_current_task", 0, "fresh64"),
    45: ("probe_read_str", 3, "probe_read_str"),
    80: ("get_current_cgroup_id", 0, "fresh64"),
    112: ("probe_read_user", 3, "probe_read"),
    113: ("probe_read_kernel", 3, "probe_read"),
    114: ("probe_read_user_str", 3, "probe_read_str"),
    115: ("probe_read_kernel_str", 3, "probe_read_str"),
    158: ("get_current_task_btf", 0, "kptr"),
    173: ("get_func_ip", 1, "fresh64"),
    174: ("get_attach_cookie", 1, "fresh64"),
    27: ("get_stackid", 3, "fresh64"),
    46: ("get_socket_cookie", 1, "fresh64"),
    67: ("get_stack", 4, "fill"),
    120: ("get_ns_current_pid_tgid", 4, "fill"),
    183: ("get_func_arg", 3, "fill"),
    184: ("get_func_ret", 2, "fill"),
    185: ("get_func_arg_cnt", 1, "fresh64"),
    147: ("d_path", 3, "fill_str"),
    148: ("copy_from_user", 3, "probe_read"),
    182: ("strncmp", 3, "output"),
    194: ("kptr_xchg", 2, "xchg"),
    # local storage of a kernel object: a map keyed by the object's address
    107: ("sk_storage_get", 4, "storage"),
    145: ("inode_storage_get", 4, "storage"),
    156: ("task_storage_get", 4, "storage"),
    210: ("cgrp_storage_get", 4, "storage"),
    # records handed to user space (or a seq file, the trace pipe): what they carry is observed
    25: ("perf_event_output", 5, "output"),
    121: ("xdp_output", 5, "output"),
    126: ("seq_printf", 5, "output"),
    127: ("seq_write", 3, "output"),
    130: ("ringbuf_output", 4, "output"),
    177: ("trace_vprintk", 4, "output"),
    150: ("seq_printf_btf", 4, "output"),
    # a tail call: taken, the called program's result is this one's (it sees the memory as it is now, which the
    # exit compares); not taken, execution goes on
    12: ("tail_call", 3, "tail_call"),
    # a lock in a map value: an event (which lock, when), nothing the program can read changes
    93: ("spin_lock", 1, "lock"),
    94: ("spin_unlock", 1, "fresh64"),
    # casts of a socket to a BTF type: the same socket or NULL, a BTF pointer either way
    136: ("skc_to_tcp6_sock", 1, "kptr"),
    137: ("skc_to_tcp_sock", 1, "kptr"),
    138: ("skc_to_tcp_timewait_sock", 1, "kptr"),
    139: ("skc_to_tcp_request_sock", 1, "kptr"),
    140: ("skc_to_udp6_sock", 1, "kptr"),
    178: ("skc_to_unix_sock", 1, "kptr"),
    196: ("skc_to_mptcp_sock", 1, "kptr"),
    # per-CPU data (a per-CPU kptr or ksym): kernel memory
    153: ("per_cpu_ptr", 2, "kptr"),
    154: ("this_cpu_ptr", 1, "kptr"),
    # the local storage of a kernel object removed (a delete keyed by the owner's address)
    108: ("sk_storage_delete", 2, "storage_delete"),
    146: ("inode_storage_delete", 2, "storage_delete"),
    157: ("task_storage_delete", 2, "storage_delete"),
    211: ("cgrp_storage_delete", 2, "storage_delete"),
    # socket-buffer helpers: what they read of the program's memory is in the event (`OUTPUT_DATA`)
    9: ("skb_store_bytes", 5, "pkt"),
    20: ("skb_get_tunnel_key", 4, "fill"),
    21: ("skb_set_tunnel_key", 4, "output"),
    49: ("setsockopt", 5, "output"),
    57: ("getsockopt", 5, "fill"),
    81: ("get_local_storage", 2, "cgroup_storage"),
    50: ("skb_adjust_room", 4, "pkt_len"),
    111: ("skb_output", 5, "output"),
    141: ("get_task_stack", 4, "fill"),
    # a ring buffer record: reserved (a region of its own), written, then submitted (its bytes observed)
    131: ("ringbuf_reserve", 3, "reserve"),
    132: ("ringbuf_submit", 2, "submit"),
    133: ("ringbuf_discard", 2, "submit"),
}

#: "output" helpers: the (data register, size register) of each buffer they read.
OUTPUT_DATA = {25: ((4, 5),), 121: ((4, 5),), 126: ((2, 3), (4, 5)), 127: ((2, 3),), 130: ((2, 3),),
               177: ((1, 2), (3, 4)), 182: ((1, 2),), 150: ((2, 3),), 9: ((3, 4),), 21: ((2, 3),), 49: ((4, 5),),
               111: ((4, 5),)}
#: "fill" helpers: (destination register, its size: a register, or minus a constant); every byte is written
#: (an error zeroes them: one of the environment's answers).
FILL_DEST = {16: (1, 2), 67: (2, 3), 120: (3, 4), 147: (2, 3), 183: (3, -8), 184: (2, -8), 20: (2, 3), 141: (2, 3),
             57: (4, 5)}
#: "fill" helpers that may leave bytes of the buffer as they were (or read them): its bytes before are in the event.
FILL_READS = frozenset({57})
#: BPF_LOCAL_STORAGE_GET_F_CREATE: a storage helper creates the element it does not find.
STORAGE_CREATE = 1

#: Program types whose context is the traced function's u64 arguments and whose BTF pointers
#: (PTR_TO_BTF_ID) read kernel memory: fentry / fexit / fmod_ret / tp_btf / iter, and LSM.
KERNEL_MEMORY_TYPES = frozenset({ProgType.TRACING, ProgType.LSM})
#: Program types whose context accesses the verifier does not convert (no ``convert_ctx_access``): the kernel's
#: view of their context is the program's (tracing, LSM, kprobe, tracepoints, syscall).
UNCONVERTED_CONTEXTS = KERNEL_MEMORY_TYPES | {ProgType.KPROBE, ProgType.TRACEPOINT, ProgType.RAW_TRACEPOINT,
                                              ProgType.RAW_TRACEPOINT_WRITABLE, ProgType.SYSCALL}
#: Helpers that read kernel (or user) memory at an address the program gives (privileged programs of every
#: type may call them): a program that calls one may see its own map values through kernel memory.
KERNEL_READING_HELPERS = frozenset({4, 45, 112, 113, 114, 115, 148, 158, 136, 137, 138, 139, 140, 153, 154, 178, 196})
#: Helpers that order the program's stores against other CPUs' (bpf_spin_lock / unlock): a program that calls one
#: has its stores to map values and global data as events, as `KERNEL_READING_HELPERS` do.
ORDERING_HELPERS = frozenset({93, 94})
#: The tag of a value that points into kernel memory when dereferenced.
KMEM = "kmem"
#: Regions other CPUs and kernel memory reads may see (stores to them are events in tracing programs).
SHARED_REGIONS = ("mv:", "gd:", "entry:")
#: BPF_PROBE_MEM / BPF_PROBE_MEMSX (the kernel's exception-table loads of BTF pointers) -> LDX MEM / MEMSX.
PROBE_MODES = {0x20: 0x60, 0x40: 0x80}

#: The open-coded numbers iterator's kfuncs, modelled exactly (`Encoder.iter_num`): name -> its arguments.
ITER_NUM = {"bpf_iter_num_new": ("it", "start", "end"), "bpf_iter_num_next": ("it",),
            "bpf_iter_num_destroy": ("it",)}
BPF_MAX_LOOPS = 8 * 1024 * 1024
BPF_FUNC_LOOP, BPF_FUNC_FOR_EACH_MAP_ELEM, BPF_FUNC_FIND_VMA = 181, 164, 180
#: Helpers that call a callback of the program in a loop (`Encoder.callback_loop`).
CALLBACK_LOOPS = frozenset({BPF_FUNC_LOOP, BPF_FUNC_FOR_EACH_MAP_ELEM})
EINVAL = 22
E2BIG = 7

ARRAY_MAPS = frozenset({2, 6})  # BPF_MAP_TYPE_ARRAY, PERCPU_ARRAY: every key below max_entries exists


_CONSTS: dict = {}


def bv(value: int, bits: int = 64) -> z3.BitVecRef:
    """A bit-vector constant (made once per value: z3's constructor costs more than a lookup)."""
    key = (value & ((1 << bits) - 1), bits)
    c = _CONSTS.get(key)
    if c is None:
        if len(_CONSTS) > 100_000:
            _CONSTS.clear()
        c = _CONSTS[key] = z3.BitVecVal(key[0], bits)
    return c


def is_true(a: z3.BoolRef) -> bool:
    """The term is the constant true (one pointer comparison: terms are hash-consed)."""
    return a.eq(TRUE)


def is_false(a: z3.BoolRef) -> bool:
    """The term is the constant false."""
    return a.eq(FALSE)


def conj(a: z3.BoolRef, b: z3.BoolRef) -> z3.BoolRef:
    """a and b, without building ``And(True, x)``."""
    if is_true(a):
        return b
    if is_true(b):
        return a
    if is_false(a) or is_false(b):
        return FALSE
    return z3.And(a, b)


def disj(a: z3.BoolRef, b: z3.BoolRef) -> z3.BoolRef:
    """a or b, without building ``Or(False, x)``."""
    if is_false(a):
        return b
    if is_false(b):
        return a
    if is_true(a) or is_true(b):
        return TRUE
    return z3.Or(a, b)


def ite(c: z3.BoolRef, a: Any, b: Any) -> Any:
    """If(c, a, b), folded when c is constant or a and b are the same term."""
    if a is b or (a.eq(b)):
        return a
    if is_true(c):
        return a
    if is_false(c):
        return b
    return z3.If(c, a, b)


def lo32(x: z3.BitVecRef) -> z3.BitVecRef:
    """The low 32 bits, folded so that equal values are the same term (constants, zero-extensions)."""
    if z3.is_bv_value(x):
        return z3.BitVecVal(x.as_long() & 0xFFFFFFFF, 32)
    if z3.is_app_of(x, z3.Z3_OP_ZERO_EXT) and x.size() == 64 and x.arg(0).size() <= 32:
        inner = x.arg(0)
        return inner if inner.size() == 32 else z3.ZeroExt(32 - inner.size(), inner)
    return z3.Extract(31, 0, x)


def zext32(x: z3.BitVecRef) -> z3.BitVecRef:
    """A 32-bit value zero-extended to 64 (constants folded)."""
    if z3.is_bv_value(x):
        return z3.BitVecVal(x.as_long(), 64)
    if z3.is_app_of(x, z3.Z3_OP_ZERO_EXT):  # one extension, not two: the same value is the same term
        return z3.ZeroExt(64 - x.arg(0).size(), x.arg(0))
    return z3.ZeroExt(32, x)


_SIMPLIFIED: dict = {}


def simplify(expr: z3.ExprRef, **options) -> z3.ExprRef:
    """z3.simplify, memoized: its result depends on term ids, which z3 reuses once terms are freed, so
    the same term simplified twice (once per program) could give two different terms; the cache keeps
    the term alive and gives the first result again."""
    key = (expr.get_id(), tuple(sorted(options.items())))
    hit = _SIMPLIFIED.get(key)
    if hit is not None and hit[0].eq(expr):
        return hit[1]
    out = z3.simplify(expr, **options)
    _SIMPLIFIED[key] = (expr, out)
    return out


def as_int(expr: z3.BitVecRef) -> int | None:
    """The value of a term that simplifies to a constant, else None."""
    if z3.is_bv_value(expr):
        return expr.as_long()
    s = simplify(expr)
    return s.as_long() if z3.is_bv_value(s) else None


# --- the shared environment: inputs as symbols ------------------------------------------


@dataclass
class MapInfo:
    """What the model needs of a map."""

    name: str
    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    initial: bytes | None = None


class Env:
    """The inputs of one proof: packet, context, maps, helper results (shared by both programs)."""

    def __init__(self, prog_type: ProgType, max_len: int = 128, maps: dict[str, MapInfo] | None = None) -> None:
        _SIMPLIFIED.clear()  # one proof's terms at a time
        self.prog_type = prog_type
        self.max_len = max_len
        self.maps = dict(maps or {})
        self.plen = z3.BitVec("pkt_len", 64)
        self.helper_ret = z3.Function("helper_ret", BV32, BV64)
        self.pkt_after = z3.Function("pkt_after", BV32, BV64, BV8)
        self.len_after = z3.Function("len_after", BV32, BV64)
        self.kread = z3.Function("kread", BV32, BV64)
        self.probe_byte = z3.Function("probe_byte", BV32, BV64, BV8)
        self.probe_len = z3.Function("probe_len", BV32, BV64)
        self.shared_stores = False  # stores to map values and global data are events (`Encoder` decides)
        self._bases: dict[str, int] = {}
        self._syms: dict[str, z3.ExprRef] = {}
        lo = 0 if prog_type == ProgType.SOCKET_FILTER else ETH_HLEN
        self.assumptions = [z3.UGE(self.plen, bv(lo)), z3.ULE(self.plen, bv(max_len))]

    def locked_byte(self, pos: z3.BitVecRef, addr: z3.BitVecRef) -> z3.BitVecRef:
        """The byte at `addr` of a map value once the spin lock at event position `pos` is taken."""
        return z3.Function("locked_byte", BV32, BV64, BV8)(pos, addr)

    def tail_taken(self, pos: z3.BitVecRef) -> z3.BoolRef:
        """Whether the tail call at event position `pos` is taken (the program array's slot holds a program)."""
        return z3.Function("tail_taken", BV32, z3.BoolSort())(pos)

    def base(self, region: str) -> int:
        """The fixed base address of a region (the same in both programs)."""
        if region not in self._bases:
            self._bases[region] = (len(self._bases) + 1) << 32
        return self._bases[region]

    def sym(self, name: str, bits: int) -> z3.BitVecRef:
        """A named input symbol of `bits` bits (created once)."""
        s = self._syms.get(name)
        if s is None:
            s = self._syms[name] = z3.BitVec(name, bits)
        return s

    def pkt_byte(self, i: int) -> z3.BitVecRef:
        return self.sym(f"pkt_{i}", 8)

    def ctx_field(self, f: L.Field) -> z3.BitVecRef:
        """The value of a context field, zero-extended to 64 bits."""
        if f.name == "len" and self.prog_type in L.SKB_TYPES:
            return self.plen
        return z3.ZeroExt(64 - f.bits, self.sym(f"ctx_{f.name}", f.bits))

    def symbols(self) -> dict[str, z3.ExprRef]:
        return dict(self._syms)


# --- state --------------------------------------------------------------------------------

Val = tuple  # (z3 BitVec 64, tag: region name | None)


def undef(env: Env) -> Val:
    return (env.sym("undef", 64), None)


@dataclass
class State:
    """Registers, memory regions (written bytes only) and the caller frames of inlined calls."""

    regs: list
    mem: dict  # region -> {offset or (field, byte): BV8}
    tags: dict  # region -> {offset: tag} of 8-byte pointer spills
    frames: tuple  # saved (r6..r10) of each caller
    plen: z3.BitVecRef
    owned: set = field(default_factory=set)

    def copy(self) -> "State":
        return State(list(self.regs), dict(self.mem), dict(self.tags), self.frames, self.plen, set())

    def region_mem(self, region: str) -> dict:
        """The writable dict of a region (copied once per state)."""
        if region not in self.owned:
            self.mem[region] = dict(self.mem.get(region, {}))
            self.tags[region] = dict(self.tags.get(region, {}))
            self.owned.add(region)
        return self.mem[region]


def merge_val(c: z3.BoolRef, a: Val, b: Val) -> Val:
    if a is b:
        return a
    if a[1] == b[1] or b[1] is None:
        tag = a[1]
    elif a[1] is None:
        tag = b[1]
    else:  # one of several regions: resolved at the access by splitting the address
        tag = "|".join(sorted(set(a[1].split("|")) | set(b[1].split("|"))))
    return (ite(c, a[0], b[0]), tag)


# --- regions ------------------------------------------------------------------------------


@dataclass
class Region:
    """A memory region: base address, size, and the initial content of each byte."""

    name: str
    base: int
    size: int
    init: Callable[[Any], z3.BitVecRef]
    writable: bool = True


# --- events -------------------------------------------------------------------------------


@dataclass
class Event:
    """One helper call: where on which path (guard), its position, what it was given."""

    seq: int
    guard: z3.BoolRef
    pos: z3.BitVecRef
    kind: str
    fields: tuple
    extra: dict = field(default_factory=dict)


UNSUPPORTED = "unsupported"  # Exit.key[0] of a path the model cannot go on with (key[1] says why)


def is_unsupported(e: "Exit") -> bool:
    """The exit is a path the model could not follow (the proof needs it unreachable)."""
    return isinstance(e.key, tuple) and len(e.key) == 2 and e.key[0] == UNSUPPORTED


@dataclass
class Exit:
    """A way out of the executed part: a program exit, or a jump to a node outside the region."""

    key: Any  # "exit" or the node it goes to
    pc: z3.BoolRef
    state: State
    where: int = 0  # slot of the instruction it leaves from (exits merge in this order)


# --- the encoder --------------------------------------------------------------------------

Node = tuple  # (frames: tuple of return slots, slot, jumps back taken so far)


class Encoder:
    """Symbolic execution of one program in an `Env`."""

    def __init__(self, program: Program, env: Env, *, ctx_layout: list[L.Field] | None = None, side: str = "a",
                 lowerings: dict | None = None) -> None:
        self.program = program
        self.env = env
        self.side = side
        self.insns: dict[int, Insn] = {}
        slot = 0
        for insn in program.insns:
            self.insns[slot] = insn
            slot += insn.nslots
        self.n = slot
        self.layout = ctx_layout if ctx_layout is not None else L.user_layout(env.prog_type)
        self.map_refs = {int(k): v for k, v in (program.meta.get("map_refs") or {}).items()}
        self.regions: dict[str, Region] = {}
        self.events: list[Event] = []
        self.count = bv(0, 32)
        self.lookups: dict[str, int] = {}
        # "" normally; "entry_" when started from a region's symbolic entry state (memory,
        # context and maps as the prefix left them: fresh symbols).
        self.fresh = ""
        self.keep_states: dict | None = None  # node -> (pc, merged state), for debugging
        self.unroll = UNROLL
        self.func_starts: list[int] | None = None  # subprogram starts (`func_ordinal`)
        # The kernel's view (`bpfpatch.prove.lowered`): slot -> Lowering read as one step; a context
        # access outside them is at a kernel offset, bytes of their own (("#", offset) keys).
        self.lowerings = lowerings
        self.in_lowering = False
        self.pc_now = TRUE
        self.kernel_memory = env.prog_type in KERNEL_MEMORY_TYPES
        self.kernel_written = False  # a store through a BTF pointer encoded so far (`kernel_write`)
        # Stores to shared memory are events when either program may read kernel memory (set before either runs).
        env.shared_stores = env.shared_stores or self.kernel_memory or any(
            KIND_OF[x.code] == Kind.CALL and x.src == CallSrc.HELPER and x.imm in KERNEL_READING_HELPERS | ORDERING_HELPERS
            for x in program.insns)

    # regions ------------------------------------------------------------------------

    def init_byte(self, name: str, key) -> z3.BitVecRef:
        """The initial content of one byte (or context field byte) of a region."""
        if name == "ctx":
            fname, i = key
            if fname == "@":
                return self.env.sym(f"{self.fresh}ctxraw_{i}", 8)
            if fname == "#":
                return self.env.sym(f"{self.fresh}kctx_{i}", 8)
            f = next(f for f in self.layout + L.SK_BUFF_UAPI + L.XDP_MD if f.name == fname)
            return z3.Extract(8 * i + 7, 8 * i, self.ctx_value(f))
        return self.region(name).init(key) if name not in self.regions else self.regions[name].init(key)

    def ctx_value(self, f: L.Field) -> z3.BitVecRef:
        """A context field's value (fresh at a region's symbolic entry: the prefix may have stored it)."""
        if not self.fresh or f.name == "len":
            return self.env.ctx_field(f)
        return z3.ZeroExt(64 - f.bits, self.env.sym(f"{self.fresh}ctx_{f.name}", f.bits))

    def adopt(self, other: "Encoder") -> None:
        """Continue from `other`'s execution so far (its regions, events and counters)."""
        self.regions.update(other.regions)
        self.events = list(other.events)
        self.count = other.count
        self.lookups = dict(other.lookups)
        self.kernel_written = other.kernel_written

    def region(self, name: str) -> Region:
        r = self.regions.get(name)
        if r is not None:
            return r
        env = self.env
        if name.startswith("stack"):
            r = Region(name, env.base(name), STACK_SIZE, lambda off, n=name: env.sym(f"{self.fresh}{n}_{off}", 8))
        elif name == "pkt":
            r = Region(name, env.base(name), env.max_len, self.pkt_byte)
        elif name.startswith("gd:"):
            info = env.maps.get(name[3:])
            if info is None:
                raise Unsupported(f"global data {name[3:]} of a map the model is not given")
            data = (info.initial or b"").ljust(info.value_size, b"\0")
            if self.fresh:
                r = Region(name, env.base(name), info.value_size, lambda off, n=name: env.sym(f"{self.fresh}{n}_{off}", 8))
            else:
                r = Region(name, env.base(name), info.value_size, lambda off, d=data: bv(d[off], 8) if off < len(d) else bv(0, 8))
        else:
            raise Unsupported(f"unknown memory region {name}")
        self.regions[name] = r
        return r

    def new_value_region(self, name: str, size: int, content: z3.BitVecRef) -> Region:
        r = Region(name, self.env.base(name), size, lambda off, c=content: z3.Extract(8 * off + 7, 8 * off, c))
        self.regions[name] = r
        return r

    def initial_state(self) -> State:
        env = self.env
        regs = [undef(env)] * NREGS
        regs[1] = (bv(env.base("ctx")), "ctx")
        regs[10] = (bv(env.base("stack0") + STACK_SIZE), "stack0")
        return State(regs, {}, {}, (), env.plen)

    # memory -------------------------------------------------------------------------

    def _resolve(self, st: State, val: Val, off: int, size: int, slot: int) -> tuple[Region | None, Any]:
        addr, tag = val
        if tag == "ctx":
            return None, as_int(addr + off - self.env.base("ctx"))
        if tag is None or tag in ("pkt_end",) or tag.startswith("map:"):
            a = as_int(addr + off)
            if a is not None:
                for r in self.regions.values():
                    if r.base <= a < r.base + r.size:
                        return r, a - r.base
            raise Unsupported("a load or store through a register that holds no pointer the model knows"
                              " (a pointer truncated to 32 bits? the verifier refuses that)", slot=slot)
        r = self.regions.get(tag) or self.region(tag)
        rel = simplify(addr + off - r.base)
        if z3.is_bv_value(rel):
            return r, rel.as_long()
        inside = _inside_leaf(addr, off - r.base, r.size)
        return r, (inside if inside is not None else rel)

    def _byte(self, st: State, r: Region, off: int) -> z3.BitVecRef:
        b = st.mem.get(r.name, {}).get(off)
        return b if b is not None else r.init(off)

    def _cases(self, val: Val, slot: int) -> list[tuple[z3.BoolRef, Val]]:
        """A pointer that may point into several regions, split by the conditions of its merges."""
        addr, tag = val
        if tag is None or "|" not in tag:
            return [(TRUE, val)]
        e = simplify(addr, push_ite_bv=True)
        out: list[tuple[z3.BoolRef, Val]] = []

        def walk(x, c):
            if len(out) > 32:
                raise Unsupported("a pointer into too many regions", slot=slot)
            if z3.is_app_of(x, z3.Z3_OP_ITE):
                walk(x.arg(1), conj(c, x.arg(0)))
                walk(x.arg(2), conj(c, z3.Not(x.arg(0))))
                return
            if z3.is_app_of(x, z3.Z3_OP_BADD):  # (one of several bases) + a variable offset: split on the bases
                args = _summands(x)
                k = next((i for i, y in enumerate(args) if z3.is_app_of(y, z3.Z3_OP_ITE)), None)
                if k is not None:
                    rest = args[:k] + args[k + 1:]
                    y = args[k]
                    walk(z3.Sum([y.arg(1)] + rest), conj(c, y.arg(0)))
                    walk(z3.Sum([y.arg(2)] + rest), conj(c, z3.Not(y.arg(0))))
                    return
                consts = [y.as_long() for y in args if z3.is_bv_value(y)]
                if consts:
                    consts = [sum(consts) % (1 << 64)]
                if consts:  # base + variable: the region the base is in (the verifier bounds the offset)
                    for r in self.regions.values():
                        if r.base <= consts[0] < r.base + r.size:
                            out.append((c, (x, r.name)))
                            return
                    return  # NULL + an offset: the verifier proved this path does not dereference it
            a = as_int(x)
            if a is not None:
                for r in self.regions.values():
                    if r.base <= a < r.base + r.size + STACK_SIZE:
                        out.append((c, (x, r.name)))
                        return
                return  # null or junk: the verifier proved this path does not dereference it
            names = tag.split("|")
            if len(names) > 1:
                raise Unsupported(f"a pointer into one of {', '.join(names)} at a variable offset", slot=slot)
            out.append((c, (x, names[0])))

        walk(e, TRUE)
        return out

    def load(self, st: State, val: Val, off: int, size: int, slot: int) -> Val:
        cases = self._cases(val, slot)
        if len(cases) != 1 or not z3.is_true(cases[0][0]):
            acc = None
            for c, v in cases:
                x = self.load(st, v, off, size, slot)[0]
                acc = x if acc is None else z3.If(c, x, acc)
            return (acc if acc is not None else bv(0), None)
        return self.load1(st, val, off, size, slot)

    def store(self, st: State, val: Val, off: int, size: int, value: Val, slot: int) -> None:
        cases = self._cases(val, slot)
        if len(cases) != 1 or not z3.is_true(cases[0][0]):
            for c, v in cases:
                old = self.load1(st, v, off, size, slot)[0]
                self.store1(st, v, off, size, (z3.If(c, value[0], old), None), slot)
            return
        self.store1(st, val, off, size, value, slot)

    def load1(self, st: State, val: Val, off: int, size: int, slot: int) -> Val:
        if val[1] == KMEM:
            return self.kernel_read(val, off, size, slot)
        r, rel = self._resolve(st, val, off, size, slot)
        if r is None:
            return self.ctx_load(st, rel, size, slot)
        if self.kernel_written and r.name.startswith(SHARED_REGIONS):
            raise Unsupported(f"a load from {r.name} after a store through a BTF pointer (kernel memory, which may be"
                              " that map value) is not modelled", slot=slot)
        if isinstance(rel, int):
            if rel < 0 or rel + size > r.size:
                if r.name == "pkt":  # beyond the bound: only on infeasible paths (the verifier checked)
                    parts = [self.pkt_byte(rel + i) for i in range(size)]
                    return (z3.ZeroExt(64 - 8 * size, z3.Concat(*reversed(parts))) if size > 1 else z3.ZeroExt(56, parts[0]), None)
                raise Unsupported(f"access {rel}+{size} outside {r.name}", slot=slot)
            parts = [self._byte(st, r, rel + i) for i in range(size)]
            tag = st.tags.get(r.name, {}).get(rel) if size == 8 else None
        else:
            parts = []
            for i in range(size):
                check_deadline(slot, self.side)  # r.size terms a byte: a big region outlasts any timeout
                acc = self._byte(st, r, r.size - 1)
                for k in range(r.size - 1):
                    acc = z3.If(rel + i == k, self._byte(st, r, k), acc)
                parts.append(acc)
            tag = None
        if all(z3.is_bv_value(x) for x in parts):  # read-only data, a constant: the branches on it are decided
            return (bv(int.from_bytes(bytes(x.as_long() for x in parts), "little")), tag)
        word = parts[0] if size == 1 else z3.Concat(*reversed(parts))
        return (z3.ZeroExt(64 - 8 * size, word) if size < 8 else word, tag)

    def store1(self, st: State, val: Val, off: int, size: int, value: Val, slot: int) -> None:
        if val[1] == KMEM:
            return self.kernel_write(val, off, size, value)
        r, rel = self._resolve(st, val, off, size, slot)
        if r is None:
            return self.ctx_store(st, rel, size, value, slot)
        v = z3.Extract(8 * size - 1, 0, value[0]) if size < 8 else value[0]
        if self.env.shared_stores and r.name.startswith(SHARED_REGIONS):
            # kernel memory may alias it: when each store happens, relative to the kernel reads, is seen
            self.event(self.pc_now, f"store{size}:{r.name}", (rel if not isinstance(rel, int) else bv(rel),
                                                               z3.ZeroExt(64 - 8 * size, v) if size < 8 else v))
        if isinstance(rel, int):
            if rel < 0 or rel + size > r.size:
                raise Unsupported(f"store {rel}+{size} outside {r.name}", slot=slot)
            mem = st.region_mem(r.name)
            tags = st.tags[r.name]
            for i in range(size):
                mem[rel + i] = z3.Extract(8 * i + 7, 8 * i, v)
            for k in [k for k in tags if rel - 8 < k < rel + size]:
                del tags[k]
            if size == 8 and value[1] is not None:
                tags[rel] = value[1]
        else:
            old = [self._byte(st, r, k) for k in range(r.size)]
            mem = st.region_mem(r.name)
            st.tags[r.name].clear()
            for k in range(r.size):
                if not k % 64:
                    check_deadline(slot, self.side)  # size terms a byte of the region: see `load1`
                new = old[k]
                for i in range(size):
                    new = z3.If(rel + i == k, z3.Extract(8 * i + 7, 8 * i, v), new)
                mem[k] = new

    def kernel_write(self, val: Val, off: int, size: int, value: Val) -> None:
        """A store through a BTF pointer: an event (address, width, value), ordered against the kernel reads and
        calls.  Kernel memory may be one of the program's map values: loads from those after it are not modelled
        (`load1` refuses them once this encoder has encoded one)."""
        addr = simplify(val[0] + bv(off)) if z3.is_bv_value(val[0]) else val[0] + bv(off)
        v = z3.ZeroExt(64 - 8 * size, z3.Extract(8 * size - 1, 0, value[0])) if size < 8 else value[0]
        self.event(self.pc_now, f"kwrite{size}", (addr, v))
        self.kernel_written = True

    def kernel_read(self, val: Val, off: int, size: int, slot: int) -> Val:
        """A load through a BTF pointer: an event (address, width), its value the environment's answer."""
        addr = simplify(val[0] + bv(off)) if z3.is_bv_value(val[0]) else val[0] + bv(off)
        e = self.event(self.pc_now, f"kread{size}", (addr,))
        word = self.env.kread(e.pos)
        v = z3.ZeroExt(64 - 8 * size, z3.Extract(8 * size - 1, 0, word)) if size < 8 else word
        return (v, KMEM if size == 8 else None)

    def pkt_byte(self, i: int) -> z3.BitVecRef:
        return self.env.sym(f"{self.fresh}pkt_{i}", 8) if self.fresh else self.env.pkt_byte(i)

    def ctx_key(self, o: int):
        """Where context byte `o` lives: (field, byte in the field), or ("@", o) outside every field."""
        if self.lowerings is not None and not self.in_lowering and self.env.prog_type not in UNCONVERTED_CONTEXTS:
            return ("#", o)  # (a context the kernel does not convert: its view is the user's)
        f = L.field_at(self.layout, o, 1)
        if f is None or f.name in L.POINTER_FIELDS:
            return ("@", o)
        return (f.name, o - f.offset)

    def ctx_load(self, st: State, off: int | None, size: int, slot: int) -> Val:
        if off is None:
            raise Unsupported("context access at a variable offset", slot=slot)
        f = L.field_at(self.layout, off, size) if self.lowerings is None or self.in_lowering else None
        if f is not None and f.name in L.POINTER_FIELDS:
            if f.name == L.PKT_END:
                return (bv(self.env.base("pkt")) + st.plen, "pkt_end")
            self.region("pkt")
            return (bv(self.env.base("pkt")), "pkt")
        written = st.mem.get("ctx", {})
        parts = []
        for o in range(off, off + size):
            key = self.ctx_key(o)
            b = written.get(key)
            parts.append(b if b is not None else self.init_byte("ctx", key))
        word = parts[0] if size == 1 else z3.Concat(*reversed(parts))
        if self.kernel_memory and size == 8:
            return (word, KMEM)  # an argument: a BTF pointer if the verifier lets it be dereferenced
        return (z3.ZeroExt(64 - 8 * size, word) if size < 8 else word, None)

    def ctx_store(self, st: State, off: int | None, size: int, value: Val, slot: int) -> None:
        if off is None:
            raise Unsupported("context store at a variable offset", slot=slot)
        f = L.field_at(self.layout, off, size) if self.lowerings is None or self.in_lowering else None
        if f is not None and f.name in L.POINTER_FIELDS:
            raise Unsupported(f"context store to the pointer field {f.name}", slot=slot)
        mem = st.region_mem("ctx")
        for i in range(size):
            mem[self.ctx_key(off + i)] = z3.Extract(8 * i + 7, 8 * i, value[0])

    # the graph ----------------------------------------------------------------------

    def next3(self, node: Node, succ: tuple) -> Node:
        """The successor node: a jump back (to this slot or before it, same frame) counts one iteration."""
        back = succ[0] == node[0] and succ[1] <= node[1]
        return (succ[0], succ[1], node[2] + 1 if back else node[2])

    def successors3(self, node: Node) -> list[Node]:
        return [n for n in (self.next3(node, s) for s in self.successors(node)) if n[2] <= self.unroll]

    def successors(self, node: Node) -> list[tuple]:
        out = self.successors1(node)
        low = self.lowerings.get(node[1]) if self.lowerings else None
        if low is not None:
            # The end first: the visiting order (and so the merge order of states and the order of
            # helper calls) is the original's, where the lowered instruction goes straight there.
            out = [(node[0], low.end)] + [x for x in out if x != (node[0], low.end)]
        return out

    def successors1(self, node: Node) -> list[tuple]:
        frames, slot = node[0], node[1]
        insn = self.insns.get(slot)
        if insn is None:
            raise Unsupported(f"execution runs off the program at slot {slot}")
        kind = KIND_OF[insn.code]
        nxt = (frames, slot + insn.nslots)
        if kind == Kind.EXIT:
            return [] if not frames else [(frames[:-1], frames[-1])]
        if kind in (Kind.JA, Kind.GOTOL):
            return [(frames, slot + 1 + insn.branch_offset)]
        if kind in (Kind.JCOND_K, Kind.JCOND_X):
            return [nxt, (frames, slot + 1 + insn.off)]
        if kind == Kind.CALL and insn.src == CallSrc.PSEUDO_CALL:
            if len(frames) >= 8:
                raise Unsupported("call depth over 8 (recursion?)", slot=slot)
            return [(frames + (slot + 1,), slot + 1 + insn.imm)]
        if kind == Kind.MAY_GOTO:
            raise Unsupported("may_goto (a bounded loop) is not modelled", slot=slot)
        return [nxt]

    def topo_order(self, start: Node, stop: Callable[[Node], bool]) -> list[Node]:
        """Nodes reachable from `start` without entering a `stop` node, in topological order."""
        order: list[Node] = []
        state: dict[Node, int] = {start: 1}
        stack = [(start, iter(self.successors3(start)))]
        while stack:
            node, it = stack[-1]
            for s in it:
                if stop(s):
                    continue
                mark = state.get(s)
                if mark == 1:  # cannot happen: every cycle has a jump back, which counts
                    raise Unsupported(f"cycle through slot {s[1]}", slot=node[1])
                if mark is None:
                    state[s] = 1
                    stack.append((s, iter(self.successors3(s))))
                    break
            else:
                stack.pop()
                state[node] = 2
                order.append(node)
        order.reverse()
        return order

    def run(self, start: Node, state: State, pc: z3.BoolRef = TRUE,
            stop: Callable[[Node], bool] = lambda n: False) -> list[Exit]:
        """Execute from `start`; return every exit (program exits, jumps into `stop` nodes, and
        "bound" exits: a loop taken more than `unroll` times on a path)."""
        if len(start) == 2:
            start = (start[0], start[1], 0)
        order = self.topo_order(start, stop)
        incoming: dict[Node, list] = {start: [(-1, 0, pc, state)]}
        exits: list[Exit] = []
        for node in order:
            ins = incoming.pop(node, None)
            if not ins:
                continue
            check_deadline(node[1], self.side)
            # Merge in the order of the predecessors' positions (the jump before the fall-through
            # of one instruction): a rewrite keeps that order, so equal states merge to equal terms.
            ins = [(p, s) for _, _, p, s in sorted(ins, key=lambda x: (x[0], x[1]))]
            pc, st = merge_all(ins, self.init_byte)
            if self.keep_states is not None:
                self.keep_states[node] = (pc, st)
            if is_false(pc):
                continue
            try:
                outs = self.step(node, pc, st, exits)
            except Unsupported as exc:
                # Not modelled here: the proof must show no input reaches this (the verifier
                # may have proved the path dead: dead code keeps loads through scalars).
                exits.append(Exit((UNSUPPORTED, str(exc)), pc, st, node[1]))
                continue
            for succ2, cond, out in outs:
                npc = conj(pc, cond)
                if is_false(npc):
                    continue
                succ = self.next3(node, succ2)
                if succ[2] > self.unroll:
                    exits.append(Exit("bound", npc, out, node[1]))
                    continue
                if stop(succ):
                    exits.append(Exit(succ, npc, out, node[1]))
                else:
                    incoming.setdefault(succ, []).append((node[1], len(node[0]), npc, out))
        exits.sort(key=lambda e: e.where)
        return exits

    # one instruction ----------------------------------------------------------------

    def step(self, node: Node, pc: z3.BoolRef, st: State, exits: list[Exit]):
        self.pc_now = pc  # the path condition of events made inside loads and stores
        low = self.lowerings.get(node[1]) if self.lowerings else None
        if low is not None:
            out = self.step_lowered(node, pc, st, exits, low)
            if out is not None:
                return out
        return self.step1(node, pc, st, exits)

    def step_lowered(self, node: Node, pc: z3.BoolRef, st: State, exits: list[Exit], low):
        """A kernel sequence as the instruction or call it lowers (None: run its instructions)."""
        frames, slot = node[0], node[1]
        end = (frames, low.end)
        if low.what == "lookup":
            if (st.regs[1][1] or "")[4:] not in low.map_name.split("|") or not (st.regs[1][1] or "").startswith("map:"):
                return None
        elif low.what != "helper" and st.regs[low.base][1] != "ctx":
            return None
        if low.ambiguous:
            raise Unsupported(low.ambiguous, slot=slot)
        if low.what == "prologue":  # the socket buffer is not cloned: nothing happens
            out = [(end, TRUE, st)]
        elif low.what in ("helper", "lookup"):
            out = self.helper(node, pc, st, exits, imm=low.helper, nxt=end)
        else:
            self.in_lowering = True
            try:
                if low.what == "ld_abs":
                    out = self.ld_abs(node, pc, st, exits, low.insn, KIND_OF[low.insn.code], nxt=end)
                else:
                    out = self.step1(node, pc, st, exits, insn=low.insn, nxt=end)
            finally:
                self.in_lowering = False
        res = []
        for succ, cond, s2 in out:
            if low.clobbers:
                s2 = s2.copy()
                for r in low.clobbers:
                    s2.regs[r] = undef(self.env)
            res.append((succ, cond, s2))
        return res

    def step1(self, node: Node, pc: z3.BoolRef, st: State, exits: list[Exit], insn: Insn | None = None,
              nxt: tuple | None = None):
        frames, slot = node[0], node[1]
        insn = self.insns[slot] if insn is None else insn
        kind = KIND_OF[insn.code]
        if insn.code & CLASS_MASK == InsnClass.LDX and insn.code & 0xE0 in PROBE_MODES:
            insn = insn._replace(code=insn.code & 0x1F | PROBE_MODES[insn.code & 0xE0])
            kind = KIND_OF[insn.code]
        if kind is None or kind == Kind.INVALID:
            raise Unsupported(f"instruction {insn} is not modelled", slot=slot)
        nxt = (frames, slot + insn.nslots) if nxt is None else nxt
        regs = st.regs
        if kind in (Kind.ALU_K, Kind.ALU_X, Kind.NEG, Kind.END):
            st = st.copy()
            st.regs[insn.dst] = alu(insn, st.regs[insn.dst], st.regs[insn.src] if kind == Kind.ALU_X else None, slot)
            return [(nxt, TRUE, st)]
        if kind in (Kind.JA, Kind.GOTOL):
            return [(self.successors1(node)[0], TRUE, st)]
        if kind in (Kind.JCOND_K, Kind.JCOND_X):
            d = regs[insn.dst][0]
            s = regs[insn.src][0] if kind == Kind.JCOND_X else None
            cond = jump_cond(insn, d, s)
            if z3.is_bv_value(d) and (s is None or z3.is_bv_value(s)):
                cond = simplify(cond)  # decided: the other way is not taken
                return [((frames, slot + 1 + insn.off), cond, st), (nxt, simplify(z3.Not(cond)), st)]
            return [((frames, slot + 1 + insn.off), cond, st), (nxt, z3.Not(cond), st)]
        if kind == Kind.EXIT:
            if not frames:
                exits.append(Exit("exit", pc, st, slot))
                return []
            st = st.copy()
            saved = st.frames[-1]
            st.frames = st.frames[:-1]
            st.regs[6:11] = list(saved)
            self.clobber(st)
            return [((frames[:-1], frames[-1]), TRUE, st)]
        if kind == Kind.CALL:
            if insn.src == CallSrc.PSEUDO_CALL:
                return [(self.successors1(node)[0], TRUE, self.push_frame(st, len(frames) + 1))]
            if insn.src == CallSrc.KFUNC:
                return self.kfunc(pc, st, insn, nxt, slot, exits)
            if insn.src != CallSrc.HELPER:
                raise Unsupported(f"call with src {insn.src} is not modelled", slot=slot)
            return self.helper(node, pc, st, exits, nxt=nxt)
        if kind == Kind.LD_IMM64:
            st = st.copy()
            st.regs[insn.dst] = self.ld_imm64(insn, slot)
            return [(nxt, TRUE, st)]
        if kind in (Kind.LDX, Kind.LDSX):
            size = SIZE_BYTES[Size(insn.code & SIZE_MASK)]
            v = self.load(st, regs[insn.src], insn.off, size, slot)
            if kind == Kind.LDSX:
                v = (z3.SignExt(64 - 8 * size, z3.Extract(8 * size - 1, 0, v[0])), None)
            st = st.copy()
            st.regs[insn.dst] = v
            return [(nxt, TRUE, st)]
        if kind in (Kind.ST, Kind.STX):
            size = SIZE_BYTES[Size(insn.code & SIZE_MASK)]
            value = (bv(insn.imm), None) if kind == Kind.ST else regs[insn.src]
            st = st.copy()
            self.store(st, regs[insn.dst], insn.off, size, value, slot)
            return [(nxt, TRUE, st)]
        if kind == Kind.ATOMIC:
            st = st.copy()
            self.atomic(st, insn, slot)
            return [(nxt, TRUE, st)]
        if kind in (Kind.LD_ABS, Kind.LD_IND):
            return self.ld_abs(node, pc, st, exits, insn, kind, nxt=nxt)
        raise Unsupported(f"instruction {insn} is not modelled", slot=slot)

    def ld_imm64(self, insn: Insn, slot: int) -> Val:
        ref = self.map_refs.get(slot)
        if insn.src == PseudoSrc.NONE and ref is None:
            return (bv(insn.imm), None)
        if ref is not None:
            name, value_off = ref
        elif insn.src in (PseudoSrc.MAP_FD, PseudoSrc.MAP_IDX):
            name, value_off = f"fd{insn.imm_lo}", None
        elif insn.src in (PseudoSrc.MAP_VALUE, PseudoSrc.MAP_IDX_VALUE):
            name, value_off = f"fd{insn.imm_lo}", insn.imm_hi
        elif insn.src == PseudoSrc.FUNC:  # a callback's address: the same on both sides for the same subprogram
            target = slot + 1 + insn.imm
            return (bv(self.env.base("func") + self.func_ordinal(target)), f"func:{target}")
        else:
            raise Unsupported(f"ld_imm64 with src {insn.src} is not modelled", slot=slot)
        if name not in self.env.maps:
            raise Unsupported(f"map {name} has no description (key/value sizes)", slot=slot)
        if value_off is None:
            return (bv(self.env.base(f"map:{name}")), f"map:{name}")
        r = self.region(f"gd:{name}")
        return (bv(r.base + value_off), r.name)

    def func_ordinal(self, target: int) -> int:
        """The position of the subprogram starting at `target` among the program's subprograms (0 the main
        one): a callback's address, the same in a rewrite that keeps the subprograms in their order."""
        if self.func_starts is None:
            starts = {0}
            for slot, insn in self.insns.items():
                if (KIND_OF[insn.code] == Kind.CALL and insn.src == CallSrc.PSEUDO_CALL) or (
                        KIND_OF[insn.code] == Kind.LD_IMM64 and insn.src == PseudoSrc.FUNC):
                    starts.add(slot + 1 + insn.imm)
            self.func_starts = sorted(starts)
        if target not in self.func_starts:
            raise Unsupported(f"callback at slot {target} is no subprogram", slot=target)
        return self.func_starts.index(target)

    def atomic(self, st: State, insn: Insn, slot: int) -> None:
        size = SIZE_BYTES[Size(insn.code & SIZE_MASK)]
        op = insn.imm
        ptr = st.regs[insn.dst]
        if op == AtomicOp.LOAD_ACQ:
            st.regs[insn.src] = self.load(st, st.regs[insn.src], insn.off, size, slot)  # dst = *(src + off)
            return
        if op == AtomicOp.STORE_REL:
            self.store(st, ptr, insn.off, size, st.regs[insn.src], slot)
            return
        loaded = self.load(st, ptr, insn.off, size, slot)
        old = loaded[0]
        src, src_tag = st.regs[insn.src]
        bits = 8 * size
        # an 8-byte exchange hands out what the slot held: a pointer spilled there, else (a tracing program's
        # kptr field) a BTF pointer, as bpf_kptr_xchg, which the kernel inlines so, gives it
        xchg_tag = loaded[1] or (KMEM if self.kernel_memory and size == 8 else None)

        def lo(x):
            return z3.Extract(bits - 1, 0, x)

        def widen(x):
            return z3.ZeroExt(64 - bits, x) if bits < 64 else x

        base = op & ~ATOMIC_FETCH
        if op == AtomicOp.XCHG:
            new = lo(src)
            st.regs[insn.src] = (widen(lo(old)), xchg_tag)
        elif op == AtomicOp.CMPXCHG:
            r0 = st.regs[0][0]
            new = z3.If(lo(old) == lo(r0), lo(src), lo(old))
            st.regs[0] = (widen(lo(old)), None)
        else:
            fn = {AtomicOp.ADD: lambda a, b: a + b, AtomicOp.OR: lambda a, b: a | b,
                  AtomicOp.AND: lambda a, b: a & b, AtomicOp.XOR: lambda a, b: a ^ b}.get(base)
            if fn is None:
                raise Unsupported(f"atomic op {op:#x}", slot=slot)
            new = fn(lo(old), lo(src))
            if op & ATOMIC_FETCH:
                st.regs[insn.src] = (widen(lo(old)), None)
        self.store(st, ptr, insn.off, size, (widen(new), src_tag if op == AtomicOp.XCHG and size == 8 else None), slot)

    def ld_abs(self, node, pc, st, exits, insn, kind, nxt=None):
        frames, slot = node[0], node[1]
        nxt = (frames, slot + 1) if nxt is None else nxt
        size = SIZE_BYTES[Size(insn.code & SIZE_MASK)]
        if self.env.prog_type not in L.SKB_TYPES:
            raise Unsupported("LD_ABS/LD_IND outside socket buffers", slot=slot)
        off = bv(insn.imm)
        if kind == Kind.LD_IND:
            off = z3.SignExt(32, z3.Extract(31, 0, st.regs[insn.src][0] + off))
        ok = simplify(z3.And(off >= bv(0), z3.ULE(off + size, st.plen)))
        bad = simplify(z3.Not(ok))
        out = []
        if not z3.is_false(bad):
            est = st.copy()
            est.regs[0] = (bv(0), None)
            exits.append(Exit("exit", conj(pc, bad), est, slot))
        if z3.is_false(ok):
            return out
        st = st.copy()
        self.region("pkt")
        v = self.load(st, (bv(self.env.base("pkt")) + off, "pkt"), 0, size, slot)[0]
        if size > 1:  # network order
            v = z3.ZeroExt(64 - 8 * size, bswap(z3.Extract(8 * size - 1, 0, v)))
        st.regs[0] = (v, None)
        self.clobber(st)
        out.append((nxt, ok, st))
        return out

    # helpers ------------------------------------------------------------------------

    def event(self, pc: z3.BoolRef, kind: str, fields: tuple, **extra) -> Event:
        e = Event(len(self.events), pc, self.count, kind, fields, extra)
        self.events.append(e)
        # Folded by hand, not by z3.simplify: its result depends on term ids (which z3 reuses once terms
        # are freed), so the same count on both sides could become two different terms.
        if is_true(pc) and z3.is_bv_value(self.count):
            self.count = bv(self.count.as_long() + 1, 32)
        elif not is_false(pc):
            self.count = self.count + z3.If(pc, bv(1, 32), bv(0, 32))
        return e

    def mem_bytes(self, st: State, val: Val, size: int, slot: int) -> z3.BitVecRef:
        parts = []
        for i in range(0, size, 8):
            n = min(8, size - i)
            parts.append(z3.Extract(8 * n - 1, 0, self.load(st, val, i, n, slot)[0]))
        return parts[0] if len(parts) == 1 else z3.Concat(*reversed(parts))

    def helper(self, node, pc, st: State, exits, imm: int | None = None, nxt=None):
        frames, slot = node[0], node[1]
        imm = self.insns[slot].imm if imm is None else imm
        nxt = (frames, slot + 1) if nxt is None else nxt
        if imm in CALLBACK_LOOPS:
            return self.callback_loop(node, pc, st, exits, imm, nxt)
        if imm == BPF_FUNC_FIND_VMA:
            return self.find_vma(node, pc, st, exits, nxt)
        known = HELPERS.get(imm)
        if known is None:
            raise Unsupported(f"helper {imm} is not modelled", slot=slot)
        name, nargs, how = known
        regs = st.regs
        for r in range(1, 6):  # a callback this model does not run would go unchecked
            if "func:" in (regs[r][1] or ""):
                raise Unsupported(f"{name} is given a callback (r{r}): when the kernel runs it is not modelled",
                                  slot=slot)
        args = tuple(regs[r][0] for r in range(1, nargs + 1))
        st = st.copy()
        if how == "load_bytes":  # pure: packet bytes to memory, zeros and -EFAULT when out of range
            n = as_int(args[3])
            if n is None or not 0 < n <= 512:
                raise Unsupported("skb_load_bytes with a variable length", slot=slot)
            off = z3.SignExt(32, z3.Extract(31, 0, args[1]))
            ok = simplify(z3.And(off >= bv(0), z3.ULE(off + n, st.plen)))
            pkt = (bv(self.env.base("pkt")) + off, "pkt")
            self.region("pkt")
            for i in range(n):
                b = self.load(st, pkt, i, 1, slot)[0] if not z3.is_false(ok) else bv(0)
                self.store(st, regs[3], i, 1, (ite(ok, b, bv(0)), None), slot)
            result = (ite(ok, bv(0), bv(-14)), None)
        elif how == "xchg":
            # bpf_kptr_xchg(map value field, new): the old pointer out, the new one in, nothing else (the
            # kernel inlines it as `r0 = r2; r0 = xchg(r1 + 0, r0)`: no call event, as that sequence makes none)
            old = self.load(st, regs[1], 0, 8, slot)
            self.store(st, regs[1], 0, 8, regs[2], slot)
            result = (old[0], old[1] or KMEM)
        elif how == "reserve":
            n = as_int(args[1])
            if n is None or not 0 < n <= 512:
                raise Unsupported(f"{name} with a variable size or one over 512", slot=slot)
            e = self.event(pc, f"call:{imm}", args)
            k = self.lookups.get("rb:", 0)
            self.lookups["rb:"] = k + 1
            rname = f"rb:{k}"
            pos = e.pos
            r = Region(rname, self.env.base(rname), n, lambda off, p=pos: self.env.probe_byte(p, bv(0x10000 + off)))
            self.regions[rname] = r
            result = (z3.If(self.env.helper_ret(e.pos) != bv(0), bv(r.base), bv(0)), rname)
        elif how == "submit":
            tag = regs[1][1] or ""
            if not tag.startswith("rb:") or "|" in tag:
                raise Unsupported(f"{name}: r1 is no ring buffer record the model knows", slot=slot)
            r = self.regions[tag]
            data = (self.mem_bytes(st, regs[1], r.size, slot),) if imm == 132 else ()
            e = self.event(pc, f"call:{imm}", (args[1],) + data)
            result = (self.env.helper_ret(e.pos), None)
        elif how == "storage":
            result = self.storage_get(pc, st, regs, args, name, slot)
        elif how == "lock":
            # bpf_spin_lock(lock in a map value): once taken, the value holding it is as other CPUs left it (the
            # environment's bytes at this call), whatever this program stored before
            tag = regs[1][1] or ""
            if "|" in tag or not tag.startswith(("mv:", "gd:")):
                raise Unsupported(f"{name}: r1 is no map value the model knows", slot=slot)
            e = self.event(pc, f"call:{imm}", args)
            r = self.regions.get(tag) or self.region(tag)
            mem = st.region_mem(tag)
            st.tags[tag].clear()
            for k in range(r.size):
                mem[k] = self.env.locked_byte(e.pos, bv(r.base + k))
            result = (self.env.helper_ret(e.pos), None)
        elif how == "cgroup_storage":
            # bpf_get_local_storage(map, flags): the current cgroup's element, always there (one key per run)
            tag = regs[1][1]
            if not (tag or "").startswith("map:") or tag[4:] not in self.env.maps:
                raise Unsupported(f"{name}: r1 is not a map the model knows", slot=slot)
            mname = tag[4:]
            info = self.env.maps[mname]
            key = bv(0, 8 * info.key_size)
            e = self.event(pc, f"lookup:{mname}", (key,))
            _, content = self.map_fold(st, info, key, e)
            k = self.lookups.get(mname, 0)
            self.lookups[mname] = k + 1
            r = self.new_value_region(f"mv:{mname}:{k}", info.value_size, content)
            e.extra.update(present=TRUE, region=r.name)
            result = (bv(r.base), r.name)
        elif how == "storage_delete":
            tag = regs[1][1]
            if not (tag or "").startswith("map:") or tag[4:] not in self.env.maps:
                raise Unsupported(f"{name}: r1 is not a map the model knows", slot=slot)
            e = self.event(pc, f"delete:{tag[4:]}", (args[1], bv(0, 8), bv(0)))  # as storage_get keys it
            ret = self.env.helper_ret(e.pos)
            e.extra.update(ok=ret == 0)
            result = (ret, None)
        elif how == "tail_call":
            e = self.event(pc, f"call:{imm}", args)
            taken = self.env.tail_taken(e.pos)
            done = st.copy()
            done.regs[0] = (self.env.helper_ret(e.pos), None)  # the called program's result
            exits.append(Exit("exit", conj(pc, taken), done, slot))
            st.regs[0] = undef(self.env)  # not taken: r0 is not set (the verifier: NOT_INIT)
            self.clobber(st)
            return [(nxt, z3.Not(taken), st)]
        elif how in ("probe_read", "probe_read_str", "fill", "fill_str"):
            result = self.probe_read(pc, st, regs, args, imm, name, how, slot)
        elif how in ("lookup", "update", "delete"):
            tag = regs[1][1]
            # one map the model knows: not paths merged into "one of map:a|mv:outer:0" (katran's balancer, a
            # map or an array of maps' inner map)
            if not (tag or "").startswith("map:") or tag[4:] not in self.env.maps:
                raise Unsupported(f"{name}: r1 is not a map the model knows", slot=slot)
            mname = tag[4:]
            info = self.env.maps[mname]
            key = self.mem_bytes(st, regs[2], info.key_size, slot)
            if how == "lookup":
                e = self.event(pc, f"lookup:{mname}", (key,))
                present, content = self.map_fold(st, info, key, e)
                k = self.lookups.get(mname, 0)
                self.lookups[mname] = k + 1
                rname = f"mv:{mname}:{k}"
                r = self.new_value_region(rname, info.value_size, content)
                e.extra.update(present=present, region=rname)
                result = (z3.If(present, bv(r.base), bv(0)), rname)
            else:
                value = self.mem_bytes(st, regs[3], info.value_size, slot) if how == "update" else bv(0, 8)
                flags = args[3] if how == "update" else bv(0)
                e = self.event(pc, f"{how}:{mname}", (key, value, flags))
                ret = self.env.helper_ret(e.pos)
                e.extra.update(ok=ret == 0)
                result = (ret, None)
        else:
            fields = args
            if how == "printk" and (n := as_int(args[1])) is not None and n <= 64:
                fields = fields + (self.mem_bytes(st, regs[1], n, slot),)
            if how == "csum_diff":
                for p, sz in ((regs[1], args[1]), (regs[3], args[3])):
                    n = as_int(sz)
                    if n is None or n > 512:
                        raise Unsupported("csum_diff with a variable size", slot=slot)
                    if n:
                        fields = fields + (self.mem_bytes(st, p, n, slot),)
            if imm in OUTPUT_DATA:
                for dreg, sreg in OUTPUT_DATA[imm]:
                    n = as_int(args[sreg - 1])
                    if n is None:  # up to the end of the buffer's region, the bytes past the size as zeros
                        fields = fields + (self.bytes_upto(st, regs[dreg], args[sreg - 1], name, slot),)
                        continue
                    if n > 512:
                        raise Unsupported(f"{name} with a size over 512", slot=slot)
                    if n:
                        fields = fields + (self.mem_bytes(st, regs[dreg], n, slot),)
            if how in ("pkt", "pkt_len"):
                pkt = [self._byte(st, self.region("pkt"), i) for i in range(self.env.max_len)]
                fields = fields + (z3.Concat(*pkt), st.plen)
            e = self.event(pc, f"call:{imm}", fields)
            ret = self.env.helper_ret(e.pos)
            if how == "kptr":  # a trusted BTF pointer (bpf_get_current_task_btf)
                st.regs[0] = (ret, KMEM)
                self.clobber(st)
                return [(nxt, TRUE, st)]
            if how == "fresh32":
                ret = z3.ZeroExt(32, z3.Extract(31, 0, ret))
            result = (ret, None)
            if how in ("pkt", "pkt_len"):
                mem = st.region_mem("pkt")
                for i in range(self.env.max_len):
                    mem[i] = self.env.pkt_after(e.pos, bv(i))
                if how == "pkt_len":
                    st.plen = self.env.len_after(e.pos)
                for r in range(NREGS):  # packet pointers are invalid after the call (the verifier)
                    if st.regs[r][1] in ("pkt", "pkt_end"):
                        st.regs[r] = undef(self.env)
        st.regs[0] = result
        self.clobber(st)
        return [(nxt, TRUE, st)]

    def callback_loop(self, node, pc, st: State, exits, imm: int, nxt):
        """bpf_loop(nr, callback, ctx, flags) and bpf_for_each_map_elem(array map, callback, ctx, flags), as
        kernel/bpf/bpf_iter.c and arraymap.c run them: -EINVAL when flags are not 0 (and -E2BIG for over
        BPF_MAX_LOOPS loops), else callback(i, ctx, 0, 0, 0) (for each element: callback(map, &key, &value, ctx,
        0), the element as a lookup of key i gives it) for i = 0, 1, ... until i reaches the bound (the result
        i) or the callback returns non-zero (the result i + 1).  Each call of the callback runs its subprogram
        on a frame of its own, inlined as a pseudo call is; each one counts as a jump back (`UNROLL`)."""
        slot = node[1]
        name = "bpf_loop" if imm == BPF_FUNC_LOOP else "bpf_for_each_map_elem"
        regs = st.regs
        fn = regs[2][1] or ""
        if not fn.startswith("func:") or "|" in fn:
            raise Unsupported(f"{name}: r2 is no callback the model knows", slot=slot)
        target = int(fn[5:])
        flags = regs[4][0]
        if imm == BPF_FUNC_LOOP:
            bound = z3.Extract(31, 0, regs[1][0])
            ok = z3.And(flags == 0, z3.ULE(bound, bv(BPF_MAX_LOOPS, 32)))
            err = ite(flags == 0, bv(-E2BIG), bv(-EINVAL))
            info = None
        else:
            tag = regs[1][1] or ""
            info = self.env.maps.get(tag[4:]) if tag.startswith("map:") else None
            if info is None or info.map_type not in ARRAY_MAPS:
                raise Unsupported(f"{name}: r1 is no array map the model knows (which elements a hash map"
                                  " holds is not modelled)", slot=slot)
            bound = bv(info.max_entries, 32)
            ok = flags == 0
            err = bv(-EINVAL)
        if z3.is_bv_value(flags) and z3.is_bv_value(simplify(bound)):
            ok = simplify(ok)
        ctx = regs[3]
        done = st.copy()
        done.regs[0] = (err, None)
        outs = [(nxt, z3.Not(ok), done)]
        go, cur, count = conj(pc, ok), st, node[2]
        until = _DEADLINE[0]
        i = 0
        while True:
            end = bound == bv(i, 32)
            if z3.is_bv_value(simplify(bound)):
                end = simplify(end)
            fin = cur.copy()
            fin.regs[0] = (bv(i), None)
            outs.append((nxt, conj(go, end), fin))
            go = conj(go, z3.Not(end))
            if is_false(go):
                break
            if count + 1 > self.unroll:
                exits.append(Exit("bound", go, cur, slot))
                break
            if until is not None and time.perf_counter() > until:
                raise ProofTimeout(f"the time ran out while encoding {name}'s callback at instruction {slot}"
                                   f" (side {self.side})")
            self.pc_now = go
            if info is None:
                args = [(bv(i), None), ctx]
            else:
                key = bv(i, 8 * info.key_size)
                e = self.event(go, f"lookup:{info.name}", (key,))
                _, content = self.map_fold(cur, info, key, e)
                k = self.lookups.get(info.name, 0)
                self.lookups[info.name] = k + 1
                value = self.new_value_region(f"mv:{info.name}:{k}", info.value_size, content)
                e.extra.update(present=TRUE, region=value.name)
                kname = f"cbkey:{info.name}:{k}"
                self.regions[kname] = Region(kname, self.env.base(kname), info.key_size,
                                             lambda off, c=key: z3.Extract(8 * off + 7, 8 * off, c), writable=False)
                args = [regs[1], (bv(self.regions[kname].base), kname), (bv(value.base), value.name), ctx]
            back = self.run_callback(node, go, cur, exits, target, args, count + 1)
            self.pc_now = pc
            if not back:
                break
            go, cur = merge_all([(p, s2) for p, s2, _ in back], self.init_byte)
            count = max(c for _, _, c in back)
            stop = cur.regs[0][0] != bv(0)
            brk = cur.copy()
            brk.regs[0] = (bv(i + 1), None)
            outs.append((nxt, conj(go, stop), brk))
            go = conj(go, z3.Not(stop))
            i += 1
        return self.after_call(outs)

    def find_vma(self, node, pc, st: State, exits, nxt):
        """bpf_find_vma(task, addr, callback, ctx, flags), as kernel/bpf/task_iter.c runs it: -EINVAL when flags
        are not 0; else an event (task, addr) whose answer says whether a vma holds addr (0: the callback is
        called once, callback(task, vma, ctx, 0, 0), vma a BTF pointer of the environment's, its result
        dropped; else the answer, -ENOENT or -EBUSY, is the result)."""
        slot = node[1]
        regs = st.regs
        fn = regs[3][1] or ""
        if not fn.startswith("func:") or "|" in fn:
            raise Unsupported("bpf_find_vma: r3 is no callback the model knows", slot=slot)
        if not self.kernel_memory:
            raise Unsupported("bpf_find_vma outside tracing and LSM programs is not modelled", slot=slot)
        flags = regs[5][0]
        bad = flags != 0
        if z3.is_bv_value(flags):
            bad = simplify(bad)
        err = st.copy()
        err.regs[0] = (bv(-EINVAL), None)
        outs = [(nxt, bad, err)]
        go = conj(pc, z3.Not(bad))
        if not is_false(go):
            self.pc_now = go
            e = self.event(go, f"call:{BPF_FUNC_FIND_VMA}", (regs[1][0], regs[2][0]))
            ret = self.env.helper_ret(e.pos)
            found = ret == bv(0)
            missed = st.copy()
            missed.regs[0] = (ret, None)
            outs.append((nxt, conj(go, z3.Not(found)), missed))
            vma = (z3.Function("find_vma_vma", BV32, BV64)(e.pos), KMEM)
            back = self.run_callback(node, conj(go, found), st, exits, int(fn[5:]), [regs[1], vma, regs[4]],
                                     node[2] + 1)
            self.pc_now = pc
            for p2, s2, _ in back:
                s2 = s2.copy()
                s2.regs[0] = (bv(0), None)
                outs.append((nxt, p2, s2))
        return self.after_call(outs)

    def clobber(self, st: State) -> None:
        """r1-r5 after a call: the caller-saved registers, each undefined (the verifier's NOT_INIT)."""
        for r in range(1, 6):
            st.regs[r] = undef(self.env)

    def after_call(self, outs: list) -> list:
        """The successors of a helper that ran a callback (`bpf_loop`, `bpf_find_vma`): those whose
        condition can hold, each on its own copy with r1-r5 clobbered."""
        res = []
        for succ, cond, s2 in outs:
            if is_false(cond):
                continue
            s2 = s2.copy()
            self.clobber(s2)
            res.append((succ, cond, s2))
        return res

    def push_frame(self, st: State, depth: int) -> State:
        """A copy of `st` entering a call frame at `depth` (a subprogram's or a callback's): r6-r10 saved
        for the return, a stack of its own, empty, and r10 its top."""
        st = st.copy()
        st.frames = st.frames + (tuple(st.regs[6:11]),)
        name = f"stack{depth}"
        self.region(name)
        st.regs[10] = (bv(self.env.base(name) + STACK_SIZE), name)
        st.mem[name] = {}
        st.tags[name] = {}
        st.owned.discard(name)
        return st

    def run_callback(self, node, pc, st: State, exits, target: int, args: list, count: int) -> list:
        """Run the subprogram at `target` as the kernel calls a callback from the helper at `node`: a frame of its
        own (r6-r10 the caller's again after it), r1-r5 `args` then zeros.  Returns the (path condition, state,
        jumps back) of each way it returns; its other exits (bounds, what is not modelled) go to `exits`."""
        frames, slot = node[0], node[1]
        ret = -(slot + 1)  # the callback returns to no instruction: the helper goes on
        cst = self.push_frame(st, len(frames) + 1)
        for r in range(1, 6):
            cst.regs[r] = args[r - 1] if r <= len(args) else (bv(0), None)
        keep, self.keep_states = self.keep_states, None
        try:
            out = self.run((frames + (ret,), target, count), cst, pc, stop=lambda n: n[0] == frames and n[1] == ret)
        finally:
            self.keep_states = keep
        back = []
        for e in out:
            if isinstance(e.key, tuple) and not is_unsupported(e) and e.key[0] == frames and e.key[1] == ret:
                back.append((e.pc, e.state, e.key[2]))
            else:
                exits.append(e)
        return back

    def kfunc(self, pc, st: State, insn: Insn, nxt, slot: int, exits: list):
        """A kfunc of the running kernel's BTF (a tracing or LSM program's): an event with its arguments, its
        result the environment's answer (a pointer result is a BTF pointer, ``kmem``).  A kfunc given a pointer
        into the program's own memory (stack, context, maps: dynptrs, iterators, buffers) may write it: not
        modelled."""
        if insn.off != 0:
            raise Unsupported(f"kfunc {insn.imm} of a module's BTF is not modelled", slot=slot)
        from bpfpatch.btf.vmlinux import kernel_types

        kt = kernel_types()
        proto = kt.kfunc(insn.imm) if kt is not None else None
        if proto is None:
            raise Unsupported(f"kfunc {insn.imm} is no function of the running kernel's BTF", slot=slot)
        if proto.name in ITER_NUM and len(proto.args) == len(ITER_NUM[proto.name]):  # any program type's
            return self.iter_num(pc, st, insn, proto.name, nxt, slot)
        if proto.name == "bpf_throw":  # any program type's
            return self.throw(pc, st, slot, exits)
        if not self.kernel_memory:
            raise Unsupported("kfunc calls are not modelled outside tracing and LSM programs (but the numbers"
                              " iterator's)", slot=slot)
        if len(proto.args) > 5:
            raise Unsupported(f"kfunc {proto.name} takes {len(proto.args)} arguments", slot=slot)
        regs = st.regs
        for k in range(len(proto.args)):
            tag = regs[k + 1][1]
            if tag is not None and tag != KMEM:
                raise Unsupported(f"kfunc {proto.name} is given a pointer into {tag.split('|')[0]} (r{k + 1}):"
                                  " what it does there is not modelled", slot=slot)
        e = self.event(pc, f"kfunc:{insn.imm}", tuple(regs[k + 1][0] for k in range(len(proto.args))))
        st = st.copy()
        ret = self.env.helper_ret(e.pos)
        st.regs[0] = (ret, KMEM if proto.ret.startswith(("ptr", "mem")) else None)
        self.clobber(st)
        return [(nxt, TRUE, st)]

    def throw(self, pc, st: State, slot: int, exits: list):
        """bpf_throw(cookie): the program ends, its result the exception callback's given the cookie; the
        kernel's default callback (a program naming none: `bpfpatch.elf.link.exception_callback`) is
        ``r0 = r1; exit``, the cookie itself.  A callback of the program's own is not modelled."""
        from bpfpatch.elf.link import EXCEPTION_CALLBACK

        named = self.program.meta.get(EXCEPTION_CALLBACK)
        if named is None:
            raise Unsupported("bpf_throw: whether the program names an exception callback is not known (no BTF"
                              " func_info)", slot=slot)
        if named:
            raise Unsupported(f"bpf_throw: the program's own exception callback {named} is not modelled", slot=slot)
        st = st.copy()
        st.regs[0] = st.regs[1]
        st.frames = ()  # every frame unwound
        exits.append(Exit("exit", pc, st, slot))
        return []

    def iter_num(self, pc, st: State, insn: Insn, name: str, nxt, slot: int):
        """The open-coded numbers iterator on the program's stack, as kernel/bpf/bpf_iter.c runs it: ``struct
        bpf_iter_num_kern {int cur; int end;}``; new(it, start, end) sets cur = start - 1 (0, 0 and -EINVAL when
        start > end, -E2BIG over BPF_MAX_LOOPS numbers), next(it) gives NULL (and 0, 0) once cur + 1 >= end, else
        &cur after cur++, destroy(it) zeroes it.  Each call is an event (the iterator's address), its int result's
        upper half the environment's."""
        it = st.regs[1]
        if not (it[1] or "").startswith("stack") or "|" in it[1]:
            raise Unsupported(f"{name}: r1 is no iterator on the program's stack", slot=slot)
        e = self.event(pc, f"kfunc:{insn.imm}", (it[0],) + tuple(st.regs[r][0] for r in range(2, 1 + len(ITER_NUM[name]))))
        st = st.copy()
        zero = (bv(0), None)

        def put(cur, end):
            self.store(st, it, 0, 4, (z3.ZeroExt(32, cur), None), slot)
            self.store(st, it, 4, 4, (z3.ZeroExt(32, end), None), slot)

        upper = z3.Extract(63, 32, self.env.helper_ret(e.pos))
        if name == "bpf_iter_num_new":
            start, end = z3.Extract(31, 0, st.regs[2][0]), z3.Extract(31, 0, st.regs[3][0])
            bad = start > end  # signed
            big = z3.SignExt(32, end) - z3.SignExt(32, start) > bv(BPF_MAX_LOOPS)
            if z3.is_bv_value(simplify(start)) and z3.is_bv_value(simplify(end)):  # decided (a concrete run)
                bad, big = simplify(bad), simplify(big)
            fail = z3.Or(bad, big)
            zero32 = bv(0, 32)
            put(ite(fail, zero32, start - 1), ite(fail, zero32, end))
            ret = ite(bad, bv(-EINVAL, 32), ite(big, bv(-E2BIG, 32), zero32))
            result = (z3.Concat(upper, ret), None)
        elif name == "bpf_iter_num_next":
            cur = z3.Extract(31, 0, self.load(st, it, 0, 4, slot)[0])
            end = z3.Extract(31, 0, self.load(st, it, 4, 4, slot)[0])
            done = cur + 1 >= end  # signed, cur + 1 wrapping as the kernel's int does
            if z3.is_bv_value(simplify(cur)) and z3.is_bv_value(simplify(end)):  # decided: the loop's exit is known
                done = simplify(done)
            zero32 = bv(0, 32)
            put(ite(done, zero32, cur + 1), ite(done, zero32, end))
            result = (ite(done, bv(0), it[0]), it[1])
        else:
            put(bv(0, 32), bv(0, 32))
            result = zero
        st.regs[0] = result
        self.clobber(st)
        return [(nxt, TRUE, st)]

    def probe_read(self, pc, st: State, regs, args, imm: int, name: str, how: str, slot: int) -> Val:
        """bpf_probe_read{,_kernel,_user}{,_str}(dst, size, src) and bpf_get_current_comm(dst, size).

        From kernel or user memory the bytes are the environment's answer at the call's position
        (``probe_byte``; a fault zeroes them, one of the answers); a ``_str`` read writes a prefix of
        ``probe_len`` bytes and leaves the rest as it was.  From the program's own memory (a pointer
        the model tracks) the bytes are what it holds now.
        """
        fill = how.startswith("fill")
        partial = how.endswith("_str")  # writes a prefix (a string and its NUL), leaves the rest
        dreg, sreg = FILL_DEST.get(imm, (1, 2)) if fill else (1, 2)
        n = as_int(args[sreg - 1]) if sreg > 0 else -sreg
        if n is None or not 0 <= n <= 512:
            raise Unsupported(f"{name} with a variable size", slot=slot)
        src = regs[3] if not fill else None
        own = src is not None and src[1] not in (None, KMEM)
        if own and partial:
            raise Unsupported(f"{name} from the program's own memory is not modelled", slot=slot)
        data = self.mem_bytes(st, src, n, slot) if own and n else None
        before = (self.mem_bytes(st, regs[dreg], n, slot),) if imm in FILL_READS and n else ()
        e = self.event(pc, f"call:{imm}", args + ((data,) if data is not None else ()) + before)
        for i in range(0, n, 8):
            k = min(8, n - i)
            if data is not None:
                chunk = [z3.Extract(8 * (i + j) + 7, 8 * (i + j), data) for j in range(k)]
            else:
                chunk = [self.env.probe_byte(e.pos, bv(i + j)) for j in range(k)]
            if partial:
                old = self.load(st, regs[dreg], i, k, slot)[0]
                chunk = [ite(z3.ULT(bv(i + j), self.env.probe_len(e.pos)), b, z3.Extract(8 * j + 7, 8 * j, old))
                         for j, b in enumerate(chunk)]
            word = chunk[0] if k == 1 else z3.Concat(*reversed(chunk))
            self.store(st, regs[dreg], i, k, (z3.ZeroExt(64 - 8 * k, word) if k < 8 else word, None), slot)
        return (self.env.helper_ret(e.pos), None)

    def bytes_upto(self, st: State, val: Val, size: z3.BitVecRef, name: str, slot: int) -> z3.BitVecRef:
        """The bytes a helper reads at `val`, `size` of them, where `size` is one of several constants (paths
        merged before the call): as many as the largest, those past `size` as zeros."""
        leaves = _constant_leaves(size)
        if leaves is None or max(leaves) > 512 or val[1] in (None, KMEM):
            raise Unsupported(f"{name} with a variable size", slot=slot)
        n = max(leaves)
        if n == 0:
            return bv(0, 8)
        data = self.mem_bytes(st, val, n, slot)
        parts = [ite(z3.ULT(bv(i), size), z3.Extract(8 * i + 7, 8 * i, data), bv(0, 8)) for i in range(n)]
        return parts[0] if n == 1 else z3.Concat(*reversed(parts))

    def storage_get(self, pc, st: State, regs, args, name: str, slot: int) -> Val:
        """bpf_{task,cgrp,sk,inode}_storage_get(map, owner, value, flags): the map's element of the owner (its
        address is the key), created with `value` (or zeros) under BPF_LOCAL_STORAGE_GET_F_CREATE when absent
        (creation may fail: NULL)."""
        tag = regs[1][1]
        if not (tag or "").startswith("map:") or tag[4:] not in self.env.maps:
            raise Unsupported(f"{name}: r1 is not a map the model knows", slot=slot)
        mname = tag[4:]
        size = self.env.maps[mname].value_size
        info = MapInfo(mname, 1, 8, size, self.env.maps[mname].max_entries)
        key = args[1]
        e = self.event(pc, f"lookup:{mname}", (key,) + args[3:4])
        present, content = self.map_fold(st, info, key, e)
        if regs[3][1] is not None:
            init = self.mem_bytes(st, regs[3], size, slot)
        elif as_int(args[2]) == 0:
            init = bv(0, 8 * size)
        else:
            raise Unsupported(f"{name}: an initial value the model cannot read", slot=slot)
        created = z3.Function("storage_created", BV32, z3.BoolSort())(e.pos)
        create = (args[3] & bv(STORAGE_CREATE)) != bv(0)
        content = ite(present, content, init)
        present = disj(present, conj(create, created))
        k = self.lookups.get(mname, 0)
        self.lookups[mname] = k + 1
        rname = f"mv:{mname}:{k}"
        r = self.new_value_region(rname, size, content)
        e.extra.update(present=present, region=rname)
        return (z3.If(present, bv(r.base), bv(0)), rname)

    def map_fold(self, st: State, info: MapInfo, key, e: Event):
        """(present, content) of `key` in map `info` at event `e`, from the initial map and earlier events."""
        mname = info.name
        ks, vs = 8 * info.key_size, 8 * info.value_size
        content = z3.Function(f"{self.fresh}mapval_{mname}", z3.BitVecSort(ks), z3.BitVecSort(vs))(key)
        if info.map_type in ARRAY_MAPS:
            present = z3.ULT(z3.Extract(31, 0, key) if ks >= 32 else z3.ZeroExt(32 - ks, key), bv(info.max_entries, 32))
        else:
            present = z3.Function(f"{self.fresh}mappresent_{mname}", z3.BitVecSort(ks), z3.BoolSort())(key)
        for prev in self.events[: e.seq]:
            kind, _, pm = prev.kind.partition(":")
            if pm != mname:
                continue
            same = conj(prev.guard, prev.fields[0] == key)
            if kind == "lookup":
                r = self.regions[prev.extra["region"]]
                now = z3.Concat(*reversed([self._byte(st, r, i) for i in range(r.size)])) if r.size > 1 else self._byte(st, r, 0)
                content = ite(conj(same, prev.extra["present"]), now, content)
            elif kind == "update":
                hit = conj(same, prev.extra["ok"])
                content = ite(hit, prev.fields[1], content)
                present = ite(hit, TRUE, present)
            elif kind == "delete" and info.map_type not in ARRAY_MAPS:
                present = ite(conj(same, prev.extra["ok"]), FALSE, present)
        return present, content


def _summands(x: z3.BitVecRef) -> list[z3.BitVecRef]:
    """The terms of a (nested) bit-vector sum."""
    if not z3.is_app_of(x, z3.Z3_OP_BADD):
        return [x]
    return [y for i in range(x.num_args()) for y in _summands(x.arg(i))]


def _inside_leaf(addr: z3.BitVecRef, delta: int, size: int) -> int | None:
    """The one offset inside a region of `size` bytes among an If-tree of constant addresses (plus `delta`), or
    None: a pointer that is NULL on some paths (a lookup's, an iterator's next) is only dereferenced where it is
    not (the verifier checked), so the out-of-region leaves are paths that do not get here."""
    if not z3.is_app_of(addr, z3.Z3_OP_ITE):
        return None
    leaves = _constant_leaves(addr)
    if leaves is None:
        return None
    inside = {v for v in ((x + delta) % (1 << 64) for x in leaves) if v < size}
    return inside.pop() if len(inside) == 1 else None


def _constant_leaves(x: z3.BitVecRef, limit: int = 16) -> list[int] | None:
    """The values of an If-tree of constants (a value merged from paths), or None."""
    x = simplify(x)
    if z3.is_bv_value(x):
        return [x.as_long()]
    if z3.is_app_of(x, z3.Z3_OP_ITE) and limit > 0:
        a, b = _constant_leaves(x.arg(1), limit - 1), _constant_leaves(x.arg(2), limit - 1)
        return a + b if a is not None and b is not None else None
    return None


def merge_all(ins: list, init: Callable[[str, Any], z3.BitVecRef]) -> tuple[z3.BoolRef, State]:
    """Merge the (path condition, state) pairs reaching one node.

    Two paths that split at one branch, ``p and c`` and ``p and not c``, merge to ``p`` with
    ``c`` choosing between the states (what the merged state means is only asked under ``p``):
    a diamond (a division guard, a lowered context read) leaves the path condition as it was.
    """
    pc, st = ins[0]
    for npc, nst in ins[1:]:
        c = npc
        if z3.is_and(npc) and z3.is_and(pc) and npc.num_args() == 2 and pc.num_args() == 2 and npc.arg(0).eq(pc.arg(0)):
            p, x, y = npc.arg(0), npc.arg(1), pc.arg(1)
            c = x
            pc = p if _complementary(x, y) else conj(p, disj(x, y))
        else:
            pc = disj(pc, npc)
        st = merge_states(c, nst, st, init)
    return pc, st


def _complementary(x: z3.BoolRef, y: z3.BoolRef) -> bool:
    return (z3.is_not(x) and x.arg(0).eq(y)) or (z3.is_not(y) and y.arg(0).eq(x))


def merge_states(c: z3.BoolRef, a: State, b: State, init: Callable[[str, Any], z3.BitVecRef]) -> State:
    """c ? a : b; a byte written on one side only is merged with the region's initial content."""
    if a is b:
        return a
    regs = [merge_val(c, x, y) for x, y in zip(a.regs, b.regs)]
    mem, tags, owned = {}, {}, set()
    for name in set(a.mem) | set(b.mem):
        ma, mb = a.mem.get(name, {}), b.mem.get(name, {})
        if ma is mb:
            mem[name] = ma
            tags[name] = a.tags.get(name, {})
            continue
        owned.add(name)
        out = {}
        for k in set(ma) | set(mb):
            va, vb = ma.get(k), mb.get(k)
            out[k] = ite(c, va if va is not None else init(name, k), vb if vb is not None else init(name, k))
        mem[name] = out
        ta, tb = a.tags.get(name, {}), b.tags.get(name, {})
        tags[name] = {k: v for k, v in ta.items() if tb.get(k) == v}
    frames = tuple(tuple(merge_val(c, x, y) for x, y in zip(fa, fb)) for fa, fb in zip(a.frames, b.frames))
    return State(regs, mem, tags, frames, ite(c, a.plen, b.plen), owned)


def bswap(x: z3.BitVecRef) -> z3.BitVecRef:
    """Byte-reverse a bit vector (8, 16, 32 or 64 bits)."""
    n = x.size() // 8
    if n == 1:
        return x
    return z3.Concat(*[z3.Extract(8 * i + 7, 8 * i, x) for i in range(n)])


# --- ALU and jumps ----------------------------------------------------------------------


def alu(insn: Insn, dst: Val, src: Val | None, slot: int) -> Val:
    """The new value of dst after an ALU instruction; constants fold (so blinded immediates vanish)."""
    if z3.is_bv_value(dst[0]) and (src is None or z3.is_bv_value(src[0])):
        v = fold_alu(insn, dst[0].as_long(), src[0].as_long() if src is not None else None)
        if v is not None:
            return (bv(v), alu_tag(insn, dst, src))
    out = alu1(insn, dst, src, slot)
    if z3.is_bv_value(dst[0]) and (src is None or z3.is_bv_value(src[0])) and not z3.is_bv_value(out[0]):
        return (simplify(out[0]), out[1])
    return out


M64, M32 = (1 << 64) - 1, (1 << 32) - 1


def _signed(x: int, bits: int) -> int:
    return x - (1 << bits) if x >> (bits - 1) & 1 else x


def fold_alu(insn: Insn, d: int, s: int | None) -> int | None:
    """An ALU instruction on constants, in Python (what `alu1` gives, without building terms); None: not folded here."""
    is64 = insn.code & CLASS_MASK == InsnClass.ALU64
    op = insn.code & OP_MASK
    bits = 64 if is64 else 32
    m = M64 if is64 else M32
    if op == AluOp.END:
        width = insn.imm
        if width not in (16, 32, 64):
            return None
        low = d & ((1 << width) - 1)
        if is64 or insn.code & SOURCE_MASK:
            low = int.from_bytes(low.to_bytes(width // 8, "little"), "big")
        return low
    if op == AluOp.NEG:
        return -d & m
    b = (s if s is not None else insn.imm) & M64
    if op == AluOp.MOV:
        if insn.off and s is not None:
            if insn.off not in (8, 16, 32):
                return None
            v = _signed(b & ((1 << insn.off) - 1), insn.off) & M64
            return v if is64 else v & M32
        return b if is64 else b & M32
    a, b = d & m, b & m
    signed = insn.off == 1
    if op == AluOp.ADD:
        r = a + b
    elif op == AluOp.SUB:
        r = a - b
    elif op == AluOp.MUL:
        r = a * b
    elif op == AluOp.OR:
        r = a | b
    elif op == AluOp.AND:
        r = a & b
    elif op == AluOp.XOR:
        r = a ^ b
    elif op == AluOp.LSH:
        r = a << (b & (bits - 1))
    elif op == AluOp.RSH:
        r = a >> (b & (bits - 1))
    elif op == AluOp.ARSH:
        r = _signed(a, bits) >> (b & (bits - 1))
    elif op == AluOp.DIV:
        if b == 0:
            r = 0
        elif signed:
            sa, sb = _signed(a, bits), _signed(b, bits)
            q = abs(sa) // abs(sb)
            r = q if (sa < 0) == (sb < 0) else -q
        else:
            r = a // b
    elif op == AluOp.MOD:
        if b == 0:
            r = a
        elif signed:
            sa, sb = _signed(a, bits), _signed(b, bits)
            r = abs(sa) % abs(sb)
            r = -r if sa < 0 else r
        else:
            r = a % b
    else:
        return None
    return r & m


def alu_tag(insn: Insn, dst: Val, src: Val | None) -> str | None:
    """The pointer tag of dst after an ALU instruction (`alu1`'s rule: add/sub keep it, mov copies it)."""
    is64 = insn.code & CLASS_MASK == InsnClass.ALU64
    op = insn.code & OP_MASK
    stag = src[1] if src is not None else None
    if op in (AluOp.END, AluOp.NEG):
        return None
    if op == AluOp.MOV:
        return None if (insn.off and src is not None) or not is64 else stag
    tag = None
    if is64 and op in (AluOp.ADD, AluOp.SUB):
        if dst[1] is not None and stag is None:
            tag = dst[1]
        elif op == AluOp.ADD and stag is not None and dst[1] is None:
            tag = stag
    if tag in ("pkt_end",) and op == AluOp.SUB and stag == "pkt":
        tag = None
    return tag


def alu1(insn: Insn, dst: Val, src: Val | None, slot: int) -> Val:
    """The new value of dst after an ALU instruction (pointer tags follow add/sub/mov)."""
    is64 = insn.code & CLASS_MASK == InsnClass.ALU64
    op = insn.code & OP_MASK
    d = dst[0]
    if op == AluOp.END:
        width = insn.imm
        if width not in (16, 32, 64):
            raise Unsupported(f"byte swap of width {width}", slot=slot)
        low = z3.Extract(width - 1, 0, d)
        to_be = is64 or insn.code & SOURCE_MASK
        res = bswap(low) if to_be else low
        return (z3.ZeroExt(64 - width, res) if width < 64 else res, None)
    if op == AluOp.NEG:
        return ((-d) if is64 else zext32(-lo32(d)), None)
    s = src[0] if src is not None else bv(insn.imm)
    stag = src[1] if src is not None else None
    if op == AluOp.MOV:
        if insn.off and src is not None:  # movsx
            if insn.off not in (8, 16, 32):
                raise Unsupported(f"movsx with off {insn.off}", slot=slot)
            v = z3.SignExt(64 - insn.off, z3.Extract(insn.off - 1, 0, s))
            return (v if is64 else zext32(lo32(v)), None)
        return (s, stag) if is64 else (zext32(lo32(s)), None)
    bits = 64 if is64 else 32
    a = d if is64 else lo32(d)
    b = s if is64 else lo32(s)
    zero = bv(0, bits)
    signed = insn.off == 1
    if src is not None and a.eq(b) and op in (AluOp.XOR, AluOp.SUB):
        r = zero  # x ^ x and x - x: the blinding of `r = 0` is `r ^= r`
    elif src is not None and a.eq(b) and op in (AluOp.AND, AluOp.OR):
        r = a
    elif op == AluOp.ADD:
        r = a + b
    elif op == AluOp.SUB:
        r = a - b
    elif op == AluOp.MUL:
        r = a * b
    elif op == AluOp.OR:
        r = a | b
    elif op == AluOp.AND:
        r = a & b
    elif op == AluOp.XOR:
        r = a ^ b
    elif op == AluOp.LSH:
        r = a << (b & (bits - 1))
    elif op == AluOp.RSH:
        r = z3.LShR(a, b & (bits - 1))
    elif op == AluOp.ARSH:
        r = a >> (b & (bits - 1))
    elif op == AluOp.DIV:
        r = z3.If(b == zero, zero, (a / b) if signed else z3.UDiv(a, b))
    elif op == AluOp.MOD:
        r = z3.If(b == zero, a, z3.SRem(a, b) if signed else z3.URem(a, b))
    else:
        raise Unsupported(f"ALU op {op:#x}", slot=slot)
    tag = None
    if is64 and op in (AluOp.ADD, AluOp.SUB):
        if dst[1] is not None and stag is None:
            tag = dst[1]
        elif op == AluOp.ADD and stag is not None and dst[1] is None:
            tag = stag
    if tag in ("pkt_end",) and op == AluOp.SUB and stag == "pkt":
        tag = None
    return (r if is64 else zext32(r), tag)


def jump_cond(insn: Insn, d: z3.BitVecRef, s: z3.BitVecRef | None) -> z3.BoolRef:
    """The condition under which a conditional jump is taken."""
    is32 = insn.code & CLASS_MASK == InsnClass.JMP32
    b = s if s is not None else bv(insn.imm)
    if is32:
        d, b = lo32(d), lo32(b)
    op = insn.code & OP_MASK
    return {
        JmpOp.JEQ: lambda: d == b, JmpOp.JNE: lambda: d != b,
        JmpOp.JGT: lambda: z3.UGT(d, b), JmpOp.JGE: lambda: z3.UGE(d, b),
        JmpOp.JLT: lambda: z3.ULT(d, b), JmpOp.JLE: lambda: z3.ULE(d, b),
        JmpOp.JSGT: lambda: d > b, JmpOp.JSGE: lambda: d >= b,
        JmpOp.JSLT: lambda: d < b, JmpOp.JSLE: lambda: d <= b,
        JmpOp.JSET: lambda: (d & b) != 0,
    }[JmpOp(op)]()


def map_infos(*programs: Program) -> dict[str, MapInfo]:
    """Map descriptions from the programs' ``meta["map_specs"]`` (the ELF linker's)."""
    out: dict[str, MapInfo] = {}
    for p in programs:
        for name, spec in (p.meta.get("map_specs") or {}).items():
            out[name] = MapInfo(name, int(spec.map_type), int(spec.key_size), int(spec.value_size),
                                int(spec.max_entries), spec.initial)
    return out

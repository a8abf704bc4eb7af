"""A path-sensitive abstract interpreter following the kernel verifier's ``do_check``.

    analysis = analyze(program, "xdp")
    analysis.aux[5].ptr_type      # RegType.PTR_TO_PACKET
    analysis.aux[0].seen          # True

`analyze` walks every path of a program the way kernel/bpf/verifier.c does
(privileged rules: root loads), from the entry state ``R1=ctx() R10=fp0``:
scalars carry known bits and four ranges (`bpfpatch.analysis.state`),
pointers their kind and offsets; conditional jumps refine both sides
(``reg_set_min_max``) or go one way when decided (``is_branch_taken``);
comparisons against ``data_end`` give packet pointers a range; helper calls
are checked against the generated prototype table; bpf-to-bpf calls push a
frame.  At prune points a state that an explored one subsumes is not walked
again (``states_equal`` with range/tnum subsumption over live registers), so
bounded loops are unrolled until they leave and the work stays close to the
number of distinct states.

Per slot it yields an `InsnAux` (`bpfpatch.analysis.facts`): ``seen``, the
pointer type of memory accesses, ``zext_dst`` (the kernel's rule: a 32-bit
definition whose upper half some path reads as 64 bits), the map of map loads
and helper calls, the helper id, and (``keep_states``) the states before it.
While the walk runs, ``seen``, ``zext_dst`` and the kept states are columns (a
byte or an entry an instruction); each `InsnAux` is made after the walk, when
its checkpoints are gone, so the two never peak together.

A program the kernel would refuse raises `AnalysisRejected` with the
instruction index and the kernel's message (``R2 invalid mem access 'scalar'``);
more than ``budget`` processed instructions raise `BudgetExceeded`.
"""

from __future__ import annotations

import gc
import traceback
from os import cpu_count
from array import array
from bisect import bisect_left
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from bpfpatch.analysis.ctxlayout import CtxLayout, layout_for, uapi_layout
from bpfpatch.analysis.facts import InsnAux, MapRef, RegType, keep
from bpfpatch.analysis.funcinfo import ArgKind, SubprogFunc
from bpfpatch.analysis.helpers import HelperProto, helper_name, proto
from bpfpatch.analysis.kfuncs import KernelTypes, kfunc_flags
from bpfpatch.analysis.livestack import LiveStack, Successors
from bpfpatch.analysis.liveness import slot_edges, slot_liveness, uses_defs
from bpfpatch.analysis.scc import MAX_BACKEDGE_ITERS, SccVisit, SccVisits, scc_ids
from bpfpatch.analysis.state import (
    ADD_CONST,
    ADD_CONST32,
    ADD_CONST64,
    AT_PKT_END,
    BEYOND_PKT_END,
    ITER_ACTIVE,
    ITER_DRAINED,
    MAX_BPF_STACK,
    MAX_PACKET_OFF,
    S32_MAX,
    S32_MIN,
    S64_MAX,
    S64_MIN,
    STACK_INVALID,
    STACK_MISC,
    STACK_SPILL,
    STACK_ZERO,
    Checkpoint,
    Frame,
    ParkedStack,
    Reg,
    Slot,
    State,
    bounds_sane,
    btf_trusted,
    coerce_subreg_to_size_sx,
    coerce_to_size,
    coerce_to_size_sx,
    iter_depth,
    iter_reg,
    iter_state,
    mark_btf_trusted,
    mark_known,
    mark_known32,
    mark_not_init,
    mark_unbounded,
    mark_unbounded32,
    mark_unbounded64,
    mark_unknown,
    reg_bounds_sync,
    s32,
    s64,
    update_bounds,
    update_bounds32,
    zext_32_to_64,
)
from bpfpatch.analysis.vlog import format_frame, format_reg, format_state, type_name
from bpfpatch.asm.syntax import format_kernel
from bpfpatch.isa import Insn
from bpfpatch.analysis.tnum import (
    U32,
    U64,
    tnum_add,
    tnum_and,
    tnum_arshift,
    tnum_bswap,
    tnum_in,
    tnum_intersect,
    tnum_lshift,
    tnum_mul,
    tnum_or,
    tnum_overlap,
    tnum_rshift,
    tnum_sub,
    tnum_subreg,
    tnum_with_subreg,
    tnum_xor,
)
from bpfpatch.errors import BpfPatchError
from bpfpatch.progtype import ProgType, prog_type_of
from bpfpatch.program import Program

# opcode fields
LD, LDX, ST, STX, ALU, JMP, JMP32, ALU64 = range(8)
MODE_IMM, MODE_ABS, MODE_IND, MODE_MEM, MODE_MEMSX, MODE_ATOMIC = 0x00, 0x20, 0x40, 0x60, 0x80, 0xC0
SIZES = {0x00: 4, 0x08: 2, 0x10: 1, 0x18: 8}
OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_OR, OP_AND, OP_LSH, OP_RSH, OP_NEG, OP_MOD, OP_XOR, OP_MOV, OP_ARSH, OP_END = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0)
J_JA, J_JEQ, J_JGT, J_JGE, J_JSET, J_JNE, J_JSGT, J_JSGE, J_CALL, J_EXIT, J_JLT, J_JLE, J_JSLT, J_JSLE, J_JCOND = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0, 0xE0)
ALU_NAMES = {OP_ADD: "add", OP_SUB: "sub", OP_MUL: "mul", OP_DIV: "div", OP_OR: "or", OP_AND: "and",
             OP_LSH: "lsh", OP_RSH: "rsh", OP_NEG: "neg", OP_MOD: "mod", OP_XOR: "xor", OP_MOV: "mov",
             OP_ARSH: "arsh", OP_END: "endian"}
PSEUDO_MAP_FD, PSEUDO_MAP_VALUE, PSEUDO_BTF_ID, PSEUDO_FUNC, PSEUDO_MAP_IDX, PSEUDO_MAP_IDX_VALUE = 1, 2, 3, 4, 5, 6
PSEUDO_CALL, PSEUDO_KFUNC_CALL = 1, 2
MAX_CALL_FRAMES = 8
BPF_COMPLEXITY_LIMIT_JMP_SEQ = 8192  # pending branches the kernel keeps at most
#: Pending branches beyond this many are packed while they wait (`ParkedStack`: shared with a snapshot,
#: copied again when taken up); the first 64 are not (real programs keep up to a thousand: pyperf_global 112,
#: strobemeta_nounroll1 929, pyperf180 6,280).  With the packed history shared with the live path, not copied,
#: freezing from 64 instead of 512 took no measurable time on those three (best of 3, a loaded machine: within
#: +-10%) and took jump fan-in at 16k from 477 to 399 B/insn (the copy packing did cost pyperf_global 20% at 64).
FREEZE_AFTER = 64
ATOMIC_FETCH, ATOMIC_XCHG, ATOMIC_CMPXCHG = 0x01, 0xE0 | 0x01, 0xF0 | 0x01

NULLABLE = {
    RegType.PTR_TO_MAP_VALUE_OR_NULL: RegType.PTR_TO_MAP_VALUE,
    RegType.PTR_TO_SOCKET_OR_NULL: RegType.PTR_TO_SOCKET,
    RegType.PTR_TO_SOCK_COMMON_OR_NULL: RegType.PTR_TO_SOCK_COMMON,
    RegType.PTR_TO_TCP_SOCK_OR_NULL: RegType.PTR_TO_TCP_SOCK,
    RegType.PTR_TO_MEM_OR_NULL: RegType.PTR_TO_MEM,
    RegType.PTR_TO_BTF_ID_OR_NULL: RegType.PTR_TO_BTF_ID,
    RegType.PTR_TO_BUF_OR_NULL: RegType.PTR_TO_BUF,
}
PKT_TYPES = (RegType.PTR_TO_PACKET, RegType.PTR_TO_PACKET_META)
SOCKISH = (RegType.PTR_TO_SOCKET, RegType.PTR_TO_SOCK_COMMON, RegType.PTR_TO_TCP_SOCK, RegType.PTR_TO_BTF_ID,
           RegType.PTR_TO_XDP_SOCK)


class AnalysisError(BpfPatchError):
    """The analysis cannot go on: the program is refused or too big (names the instruction)."""

    def __init__(self, message: str, *, index: int | None = None, analysis: "Analysis | None" = None) -> None:
        self.index = index
        self.message = message
        self.analysis = analysis
        prefix = f"instruction {index}: " if index is not None else ""
        super().__init__(prefix + message)


class AnalysisRejected(AnalysisError):
    """A program the kernel's verifier would refuse; ``message`` is the kernel's text where we know it."""


class BudgetExceeded(AnalysisError):
    """More processed instructions than the budget (the kernel's 1M limit)."""


@dataclass
class Analysis:
    """What `analyze` found: one `InsnAux` per slot (None for an ld_imm64's second slot) and counters."""

    program: Program
    prog_type: ProgType
    aux: list[InsnAux | None]
    processed: int = 0
    total_states: int = 0
    peak_states: int = 0
    max_stack_depth: int = 0
    log: list[str] = field(default_factory=list)
    #: the most branches that waited on the walk's stack at once (the kernel's ``env->stack_size`` at its highest)
    peak_pending: int = 0

    def seen(self) -> list[bool]:
        """``seen`` per slot (an ld_imm64's second slot follows its first)."""
        out = []
        last = False
        for a in self.aux:
            if a is not None:
                last = a.seen
            out.append(last)
        return out


@dataclass
class _Env:
    """Per-analysis constants and counters (the parts of ``bpf_verifier_env`` we need)."""

    code: list[int]
    dst: list[int]
    src: list[int]
    off: list[int]
    imm: list[int]
    n: int
    prog_type: ProgType
    ctx: CtxLayout
    maps: dict[int, MapRef]
    slot_maps: dict[int, tuple[MapRef, int | None]]
    aux: dict[int, InsnAux]  # by slot: the aux of an instruction with a fact not in a column (`_aux`)
    live: array  # "H": registers live before each slot (`slot_liveness`)
    prune: list[bool]
    keep_states: bool
    budget: int
    live64: array = field(default_factory=lambda: array("H"))  # read as 64 bits
    jmp_point: list[bool] = field(default_factory=list)
    force_checkpoint: list[bool] = field(default_factory=list)
    jmps_processed: int = 0
    prev_jmps_processed: int = 0
    prev_insn_processed: int = 0
    test_state_freq: bool = False
    hist_extra: object = None
    cur_state: State | None = None
    last: State | None = None  # the newest frozen snapshot of a live state: new frozen states share with it
    id_gen: int = 0
    processed: int = 0
    explored: "dict[int, list[State] | State]" = field(default_factory=dict)  # by `_explored_key` (`_explored`)
    total_states: int = 0
    subprog_starts: array = field(default_factory=lambda: array("i"))  # sorted, with 0
    max_depth: int = 0
    max_pending: int = 0
    log: list[str] | None = None
    attach_type: int | None = None
    kernel_types: Any = None
    iter_next_sites: set[int] = field(default_factory=set)
    scc: SccVisits | None = None
    ls: LiveStack | None = None
    ls_cleaned: dict[int, State] = field(default_factory=dict)  # checkpoints cleaned once (kept: ids stay unique)
    funcs: dict[int, SubprogFunc] = field(default_factory=dict)  # subprogram start -> its BTF prototype
    globals_called: list[int] = field(default_factory=list)  # global subprograms to verify, in call order
    callback_sites: set[int] = field(default_factory=set)  # calls of sync callbacks (calls_callback)
    # the walk's columns of facts, a byte or an entry an instruction (`_walked_aux` makes the `InsnAux` of them)
    middle: bytearray = field(default_factory=bytearray)  # 1: an ld_imm64's second slot (its aux is None)
    seen: bytearray = field(default_factory=bytearray)  # ``InsnAux.seen``
    zext: bytearray = field(default_factory=bytearray)  # ``InsnAux.zext_dst``
    before: "list | None" = None  # with keep_states: the states kept before each instruction (`keep`)
    after: "list | None" = None  # and after it


def analyze(
    program: Program,
    prog_type: "ProgType | int | str" = ProgType.SOCKET_FILTER,
    *,
    maps: "Mapping[int, MapRef] | None" = None,
    budget: int = 1_000_000,
    ctx_layout: "CtxLayout | Callable[[ProgType], CtxLayout | None] | None" = None,
    keep_states: bool = True,
    log: bool = False,
    attach_type: int | None = None,
    kernel_types: "KernelTypes | Callable[[], KernelTypes | None] | None" = None,
    test_state_freq: bool = False,
    funcs: "Mapping[int, SubprogFunc] | None" = None,
) -> Analysis:
    """Analyze `program` as a program of `prog_type`; raise `AnalysisRejected` where the kernel would refuse it.

    ``maps`` names the maps of ld_imm64 map references by the fd / index in
    their immediate.  The program's ELF metadata (``meta["map_refs"]`` /
    ``meta["map_specs"]``) names them by slot and wins; maps neither names are unknown (key and value size 0: accesses
    through their values are not bounds-checked).  ``ctx_layout`` is a layout or a
    function giving one per program type (e.g. read from the running kernel's
    BTF by the kernel layer); otherwise `layout_for`'s (the installed provider's, else the uapi
    table).  ``attach_type`` is
    the program's ``expected_attach_type`` (enum bpf_attach_type): it decides
    the return values some types may give (cgroup_skb egress, sock_addr
    bind/recvmsg); unknown, the widest range of the type is allowed.
    ``kernel_types`` (`bpfpatch.analysis.kfuncs.KernelTypes`, or a function
    making one, called at the first kfunc call or kernel-struct load) gives
    kfunc prototypes and kernel struct members
    (`bpfpatch.btf.vmlinux.kernel_types` reads the running kernel's); without
    it a kfunc returns an unknown scalar and a kernel-struct load a scalar.
    ``test_state_freq`` checkpoints at every prune point, as the kernel does
    for a program loaded with ``BPF_F_TEST_STATE_FREQ`` (the facts do not
    depend on it, the work does).
    ``funcs`` (`bpfpatch.analysis.funcinfo.SubprogFunc` by first instruction,
    e.g. from `bpfpatch.btf.funcs.subprog_funcs`) are the subprograms' BTF
    prototypes: a global one is verified on its own from its argument types,
    after the main program, and its callers see R0 as an unknown scalar, as
    the kernel does; without them every subprogram is verified as static.

    The cycle collector is paused while it runs (the analysis makes millions of
    short-lived objects and no cycles); garbage with cycles made meanwhile is
    collected after.
    """
    collecting = gc.isenabled()
    gc.disable()  # millions of short-lived acyclic objects: the cycle collector would cost a third of the time
    try:
        return _analyze(program, prog_type, maps, budget, ctx_layout, keep_states, log, attach_type, kernel_types,
                        test_state_freq, funcs)
    except AnalysisError as exc:
        traceback.clear_frames(exc.__traceback__)  # `_analyze`'s own frame (done now) held the walk's `_Env`
        raise
    finally:
        if collecting:
            gc.enable()


def _analyze(program: Program, prog_type: "ProgType | int | str", maps: "Mapping[int, MapRef] | None", budget: int,
             ctx_layout: "CtxLayout | Callable[[ProgType], CtxLayout | None] | None", keep_states: bool,
             log: bool, attach_type: int | None,
             kernel_types: "KernelTypes | Callable[[], KernelTypes | None] | None", test_state_freq: bool,
             funcs: "Mapping[int, SubprogFunc] | None" = None) -> Analysis:
    ptype = prog_type_of(prog_type)
    layout = None
    if callable(ctx_layout):
        layout = ctx_layout(ptype)
    elif ctx_layout is not None:
        layout = ctx_layout
    layout = layout or layout_for(ptype)
    slots = program.slots
    n = len(slots)
    # The fields as machine-integer columns (no Python int kept per instruction; indexing gives ints)
    code = array("B", slots["code"].tobytes())
    regs_b = slots["regs"]
    dst = array("B", (regs_b & 0xF).astype(np.uint8).tobytes())
    src = array("B", (regs_b >> 4).astype(np.uint8).tobytes())
    off = array("h", slots["off"].astype(np.int16).tobytes())
    imm = array("i", slots["imm"].astype(np.int32).tobytes())
    del regs_b
    # the facts are columns while the walk runs (`_Env.aux`), each instruction's `InsnAux` made after it
    # (`_walked_aux`), when the walk's checkpoints are gone: an aux an instruction is 64 bytes of its peak
    middle = bytearray(n)  # 1: an ld_imm64's second slot
    i = 0
    while i < n:
        if code[i] == 0x18 and i + 1 < n:
            middle[i + 1] = 1
            i += 2
        else:
            i += 1
    env = _Env(code, dst, src, off, imm, n, ptype, layout, dict(maps or {}), _map_table(program), {}, [], bytearray(n),
               keep_states, budget, subprog_starts=array("i", sorted(set(program.subprogs) | {0})),
               log=[] if log else None, middle=middle, seen=bytearray(n), zext=bytearray(n),
               before=[None] * n if keep_states else None, after=[None] * n if keep_states else None)
    env.attach_type = attach_type
    env.kernel_types = kernel_types
    env.funcs = dict(funcs or {})
    edges = slot_edges(code, src, off, imm)
    env.live, env.live64 = slot_liveness(code, dst, src, off, imm, _helper_args, edges)
    env.test_state_freq = test_state_freq
    env.jmp_point = bytearray(n)  # flags: a byte per slot
    env.force_checkpoint = bytearray(n)
    _mark_prune_points(env)
    succ = _flow_successors(code, *edges)
    del edges
    env.scc = SccVisits(_loops(succ))
    env.ls = LiveStack(n, sorted(program.subprogs), succ)
    result = Analysis(program, ptype, [])
    try:
        _do_check(env)
        _check_globals(env)
    except AnalysisError as exc:
        exc.analysis = result
        # the walk's frames hold its pending branches and checkpoints, and the error's traceback holds the
        # frames: their locals go (the lines stay), or the facts would be made beside them and an error kept
        # would keep them alive
        traceback.clear_frames(exc.__traceback__)
        raise
    finally:
        result.aux = _walked_aux(env)
        result.processed = env.processed
        result.total_states = env.total_states
        result.max_stack_depth = env.max_depth
        result.peak_pending = env.max_pending
        result.log = env.log or []
    return result


def _walked_aux(env: _Env) -> list[InsnAux | None]:
    """Every instruction's `InsnAux`, from the walk's columns (None for an ld_imm64's second slot): the ones a
    fact of another kind made during the walk (`_aux`) take the columns' entries, the rest are made
    (`InsnAux.walked`).  The walk's checkpoints go first."""
    env.explored = {}
    env.ls_cleaned = {}
    env.cur_state = env.last = None
    env.scc = env.ls = None
    middle, seen, zext, before, after = env.middle, env.seen, env.zext, env.before, env.after
    env.before = env.after = None
    walked = InsnAux.walked
    if before is None:
        aux = [None if m else walked(s != 0, z != 0) for m, s, z in zip(middle, seen, zext)]
    else:
        aux = [None if m else walked(s != 0, z != 0, b, f) for m, s, z, b, f in zip(middle, seen, zext, before, after)]
    for i, a in env.aux.items():
        a.take_walked(seen[i] != 0, zext[i] != 0, *((before[i], after[i]) if before is not None else ()))
        aux[i] = a
    return aux


def _aux(env: _Env, idx: int) -> InsnAux:
    """The `InsnAux` of instruction `idx` for a fact other than the walk's columns (``seen``, ``zext_dst``, the
    kept states), made on its first one."""
    a = env.aux.get(idx)
    if a is None:
        a = env.aux[idx] = InsnAux()
    return a


def attach(patchlist: Any, analysis: Analysis) -> None:
    """Store each instruction's `InsnAux` on its patch-list node, by reference (the node's aux)."""
    nodes = list(patchlist)
    slot = 0
    for node in nodes:
        if slot >= len(analysis.aux):
            break
        node.aux = analysis.aux[slot]
        slot += 2 if node.insn.code == 0x18 else 1


# --- setup ------------------------------------------------------------------------------------


def _map_table(program: Program) -> dict[int, tuple[MapRef, int | None]]:
    """slot -> (the map, value offset or None) from an ELF program's relocation metadata."""
    refs = program.meta.get("map_refs") or {}
    specs = program.meta.get("map_specs") or {}
    out: dict[int, tuple[MapRef, int | None]] = {}
    names = sorted({r[0] for r in refs.values()})
    for slot, (name, value_off) in refs.items():
        spec = specs.get(name)
        if spec is None:
            ref = MapRef(names.index(name), name)
        else:
            # libbpf freezes .rodata (and .kconfig) after filling it with the section's bytes
            frozen = spec.initial if name.startswith((".rodata", ".kconfig")) else None
            i = getattr(spec, "inner", None)  # a map of maps' inner map, as its BTF declares it
            inner = MapRef(-1, "", None, i.map_type, i.key_size, i.value_size, i.max_entries, map_flags=i.flags) \
                if i is not None else None
            ref = MapRef(names.index(name), name, None, spec.map_type, spec.key_size, spec.value_size, spec.max_entries,
                         frozen_value=frozen, inner=inner)
        out[int(slot)] = (ref, value_off)
    return out


def _helper_args(func_id: int) -> int:
    """How many arguments (r1 up) helper `func_id` reads: its prototype's, else all five."""
    p = proto(func_id)
    return p.nargs if p else 5


def _mark_prune_points(env: _Env) -> None:
    """``check_cfg``'s marks (``visit_insn``, ``push_insn``): where the kernel looks for an equal state.

    Prune points: a conditional jump itself and its branch target (not its
    fall-through), an unconditional jump's target, the instruction after a
    call, a bpf-to-bpf call and its callee's entry (also for ``ld_imm64``
    of a function).  Jump points (entries of the kernel's jump history): the
    branch and jump targets and the instructions after calls.  ``may_goto``
    forces a checkpoint.
    """
    n = env.n
    prune, jmp = env.prune, env.jmp_point
    i = 0
    while i < n:
        c = env.code[i]
        cls = c & 7
        if c == 0x18:
            if env.src[i] == PSEUDO_FUNC:
                for t in (i + 2, i + 1 + env.imm[i]):
                    if 0 <= t < n:
                        prune[t] = True
                if i + 2 < n:
                    jmp[i + 2] = True
                prune[i] = True
                t = i + 1 + env.imm[i]
                if 0 <= t < n:
                    jmp[t] = True
            i += 2
            continue
        if cls == JMP or cls == JMP32:
            op = c & 0xF0
            if op == J_CALL:
                if i + 1 < n:
                    prune[i + 1] = jmp[i + 1] = True
                if env.src[i] == PSEUDO_KFUNC_CALL:
                    # the kernel's are the iterators' next calls and bpf_rbtree_add's (a sync callback's
                    # call), both forced checkpoints; a kfunc we cannot name may be either
                    kt = _kernel_types(env) if env.off[i] == 0 else None
                    kp = kt.kfunc(env.imm[i]) if kt is not None else None
                    if kp is None:
                        prune[i] = True
                    elif kp.name == "bpf_rbtree_add_impl" or "KF_ITER_NEXT" in kp.flags:
                        prune[i] = env.force_checkpoint[i] = True
                        if kp.name == "bpf_rbtree_add_impl":
                            env.callback_sites.add(i)
                if env.src[i] == 0 and (p := proto(env.imm[i])) is not None and p.name in SYNC_CALLBACK_HELPERS:
                    # visit_insn: a sync callback's call is visited again after each callback run
                    prune[i] = env.force_checkpoint[i] = True
                    env.callback_sites.add(i)
                if env.src[i] == PSEUDO_CALL:
                    prune[i] = True
                    t = i + 1 + env.imm[i]
                    if 0 <= t < n:
                        prune[t] = jmp[t] = True
            elif op == J_JA:
                t = i + 1 + (env.imm[i] if cls == JMP32 else env.off[i])
                if 0 <= t < n:
                    prune[t] = jmp[t] = True
            elif op != J_EXIT:
                prune[i] = True
                if op == J_JCOND:
                    env.force_checkpoint[i] = True
                t = i + 1 + env.off[i]
                if 0 <= t < n:
                    prune[t] = jmp[t] = True
        i += 1


# --- the main loop ----------------------------------------------------------------------------


def _entry_state(env: _Env) -> State:
    f = Frame(0)
    f.regs[1] = Reg.pointer(RegType.PTR_TO_CTX)
    f.regs[10] = Reg.pointer(RegType.PTR_TO_STACK, frameno=0)
    return State([f])


def _err(idx: int, msg: str) -> AnalysisRejected:
    return AnalysisRejected(msg, index=idx)


def _do_check(env: _Env, entry: "tuple[State, int] | None" = None) -> None:
    stack: list = [(*(entry or (_entry_state(env), 0)), -1)]  # (state, idx, prev), or `parked` for one it packed
    parked = ParkedStack()  # the pending branches past the first 64, packed while they wait
    n = env.n
    log = env.log
    middle, seen, prune, jmp_points, code = env.middle, env.seen, env.prune, env.jmp_point, env.code
    held_before, held_after = env.before, env.after
    keep_states, budget = env.keep_states, env.budget
    last = env.last  # the newest frozen snapshot (kept, with keep_states): frozen states share with it
    kept = last  # the last state kept (`State.keep`: a `KeptState` packed against `last`, or `last`)
    while stack:
        state, idx, prev = parked.pop(stack.pop())  # a pending branch past the first 64 waited packed
        if log is not None:
            text = format_state(state)
            log.append(f"from {prev} to {idx}: {text}" if prev >= 0 else f"{idx}: {text}")
        hist = state.hist
        same = False  # nothing changed the state since `kept` was kept (the last step's state after)
        while True:
            if idx < 0 or idx >= n or middle[idx]:
                raise _err(idx, f"invalid insn idx {idx} insn_cnt {n}" if idx >= n or idx < 0 else
                           f"jump into the middle of ldimm64 insn {idx}")
            # the kernel counts an instruction before it looks for an equal state (do_check)
            env.processed += 1
            if env.processed > budget:
                raise BudgetExceeded(f"BPF program is too large. Processed {env.processed} insn", index=idx)
            if prune[idx]:
                env.last = last
                visited = _is_state_visited(env, state, idx)
                last = env.last  # a new checkpoint shares with the snapshot it was made from
                if visited:
                    if log is not None:
                        log.append(f"{idx}: safe")
                    _path_done(env, state)
                    env.ls.update(state.frames)
                    break
                hist = state.hist  # a new checkpoint starts a new history
            jmp_point = jmp_points[idx]
            if jmp_point:
                state.jhist += 1
            seen[idx] = 1
            if keep_states:
                # packed against the newest frozen snapshot, the key frame (`State.keep`); the state before an
                # instruction that is no prune point is what was kept after the one before (a checkpoint may
                # change both the key and the state: `_is_state_visited`)
                if not same or prune[idx]:
                    last, kept = state.keep(last, kept)
                held_before[idx] = keep(held_before[idx], kept)
            before = state.copy() if log is not None else None
            depth = len(stack)
            frame = len(state.frames) - 1
            env.hist_extra = None
            env.cur_state = state
            c = code[idx]
            cls = c & 7
            # 6.18's live stack marks: what this instruction writes whole, joined over its visits
            marks = cls == ST or cls == STX or (c == 0x85 and env.src[idx] != PSEUDO_CALL)
            if marks:
                env.ls.begin(idx)
                if c == 0x85:
                    _objects_read(env, state, idx)
            try:
                if cls == ALU64 or cls == ALU:
                    _check_alu(env, state, idx)
                    nxt = idx + 1
                else:
                    nxt = _step(env, state, idx, stack)
                if marks:
                    env.ls.commit(state.frames)
            except AnalysisRejected as exc:
                if log is not None:
                    log.append(f"{idx}: {_insn_text(env, idx)}")
                    log.append(exc.message)
                raise
            extra = env.hist_extra
            # the path's history, an int an entry: the bare index for the common one (frame 0, nothing extra)
            entry = idx if frame == 0 and extra is None else _hist_entry(idx, frame, extra)
            hist.append(entry)
            if extra is not None and not jmp_point:
                state.jhist += 1  # a spill, fill or linked branch: one more entry of the kernel's jump history
            if cls == JMP or cls == JMP32:
                env.jmps_processed += 1
            if keep_states:
                last, kept = state.keep(last, kept)
                held_after[idx] = keep(held_after[idx], kept)
                same = True
            if len(stack) > depth:
                freeze = len(stack) > FREEZE_AFTER
                if len(stack) > env.max_pending:
                    env.max_pending = len(stack)
                for k in range(depth, len(stack)):
                    pushed = stack[k][0]
                    pushed.jhist = state.jhist
                    if pushed.parent is not None:
                        pushed.parent.branches += 1
                    if freeze and len(pushed.hist) + 1 == len(hist):
                        # packed, sharing with the newest frozen snapshot what is equal to it, and the live
                        # path's history (its copy made at this step, and this step's entry)
                        stack[k] = parked.push(pushed, last, stack[k][1], stack[k][2], hist)
                        continue
                    pushed.hist.append(entry)
                    if freeze:
                        stack[k] = parked.push(pushed, last, stack[k][1], stack[k][2])
            if log is not None:
                log.append(_step_line(env, idx, before, state))
            if nxt is None:
                _path_done(env, state)
                env.ls.update(state.frames)
                break
            idx = nxt


def _flow_successors(code: array, fall: bytearray, tgt: array) -> Successors:
    """Per instruction, where control goes next within its subprogram (``bpf_insn_successors``: a call falls
    through, an exit goes nowhere), from `slot_edges` (whose jump column it takes); an ld_imm64 goes past its
    second slot, which goes nowhere."""
    n = len(code)
    nxt = array("i", [-1]) * n
    i = 0
    while i < n:
        if code[i] == 0x18:
            nxt[i] = i + 2
            i += 2
            continue
        if fall[i]:
            nxt[i] = i + 1
        i += 1
    return Successors(nxt, tgt)


def _loops(succ: Successors) -> "Sequence[int]":
    """Per instruction, the number of its loop (`scc_ids`), all 0 when no jump goes backwards (then a
    byte an instruction)."""
    n = len(succ)
    if not any(0 <= t <= i for i, t in enumerate(succ.jump)):
        return bytes(n)
    return scc_ids(n, succ.__getitem__)


def _objects_read(env: _Env, st: State, idx: int) -> None:
    """A call may read the dynptrs and iterators on the stack (``mark_stack_slot_obj_read``, taken wide)."""
    for f in st.frames:
        mask = 0
        for k, sl in f.stack.items():
            if sl.types[0] == STACK_DYNPTR or sl.types[0] == STACK_ITER:
                mask |= 1 << k
        if mask:
            env.ls.read(st.frames, idx, f.frameno, mask)


def _clean(env: _Env, old: State, cur: State, idx: int) -> None:
    """``clean_live_states`` for one finished checkpoint, once: the stack slots not live at `idx` are forgotten."""
    if len(old.frames) != len(cur.frames) or any(a.callsite != b.callsite for a, b in zip(old.frames, cur.frames)) \
            or env.scc.incomplete(idx, old):
        return
    env.ls_cleaned[id(old)] = old
    frames = []
    alive = env.ls.alive
    for i, f in enumerate(old.frames):
        dead = [k for k in f.stack if not alive(old.frames, idx, i, k)]
        if dead:
            f = f.shallow()  # frozen: a new frame without them, the registers and other slots still shared
            for k in dead:
                del f.stack[k]
        frames.append(f)
    old.frames = tuple(frames)


def _path_done(env: _Env, state: State) -> None:
    """``update_branch_counts``: a path ended; checkpoints whose every path ended may prune from now on.

    A checkpoint that entered a loop's visit (6.18's SCCs) ends the visit when its last path ends:
    the precision its backedges' equal states found is carried into their paths (``maybe_exit_scc``).
    """
    st = state.parent
    while st is not None:
        st.branches -= 1
        if st.branches > 0:
            break
        visit = env.scc.exit(st) if env.scc.entries else None
        if visit is not None:
            _propagate_backedges(env, visit)
        st = st.parent


def _propagate_backedges(env: _Env, visit: SccVisit) -> None:
    """``propagate_backedges``: precision from each backedge's equal state into the backedge's path, to a fixed point."""
    for _ in range(MAX_BACKEDGE_ITERS + 1):
        changed = False
        for cur, old in visit.backedges:
            changed |= _propagate_precision(env, old, cur)
        if not changed:
            break
    else:
        for cur, _old in visit.backedges:
            _mark_all_precise(cur)
    visit.backedges.clear()


# --- precision (mark_chain_precision) -------------------------------------------------------


def _lookup(st: State, item: tuple) -> Reg | None:
    kind, f, n = item
    if f >= len(st.frames):
        return None
    fr = st.frames[f]
    if kind == "r":
        return fr.regs[n]
    slot = fr.stack.get(n)
    if slot is None or slot.types[7] != STACK_SPILL:
        return None
    return slot.spilled


def _mark_all_precise(st: State) -> None:
    """``mark_all_scalars_precise``: what backtracking cannot follow, every checkpoint keeps exact."""
    p = st.parent
    memo: dict = {}  # what the child checkpoint's marks replaced: its parent shares the copies (`State.set_precise`)
    while p is not None:
        marks = []
        for fi, f in enumerate(p.frames):
            pm = p.marks(fi)
            for n, r in enumerate(f.regs):
                if r.type is RegType.SCALAR and not r.precise and not pm >> n & 1:
                    marks.append(("r", fi, n))
            for k, slot in f.stack.items():
                sp = slot.spilled
                if sp is not None and sp.type is RegType.SCALAR and not sp.precise:
                    marks.append(("s", fi, k))
        if marks:
            memo = p.set_precise(marks, memo)  # copy on write: the checkpoint shares its registers with others
        p = p.parent


def _backtrack(env: _Env, idx: int, frame: int, extra: object, bt: set) -> bool:
    """``backtrack_insn``: which earlier registers/slots the wanted ones came from. False: give up."""
    c = env.code[idx]
    cls = c & 7
    d, s = env.dst[idx], env.src[idx]
    rd = ("r", frame, d)
    if cls == ALU or cls == ALU64:
        if rd not in bt:
            return True
        op = c & 0xF0
        if op == OP_MOV:
            bt.discard(rd)
            if c & 0x08 and not (cls == ALU64 and env.imm[idx]):
                bt.add(("r", frame, s))
        elif op not in (OP_NEG, OP_END) and c & 0x08:
            bt.add(("r", frame, s))
        return True
    if cls == LDX:
        if rd not in bt:
            return True
        bt.discard(rd)
        if extra is not None:
            bt.add(("s",) + extra)
        return True
    if cls == ST or cls == STX:
        if c & 0xE0 == MODE_ATOMIC:
            imm = env.imm[idx]
            if imm == ATOMIC_CMPXCHG:
                bt.discard(("r", frame, 0))
            elif imm & ATOMIC_FETCH:
                bt.discard(("r", frame, s))
            return True
        if extra is not None:
            item = ("s",) + extra
            if item in bt:
                bt.discard(item)
                if cls == STX:
                    bt.add(("r", frame, s))
        return True
    if cls == LD:
        bt.discard(rd if c == 0x18 else ("r", frame, 0))
        return True
    op = c & 0xF0
    if op == J_CALL:
        if s == PSEUDO_CALL:
            for r in range(1, 6):
                item = ("r", frame + 1, r)
                if item in bt:
                    bt.discard(item)
                    bt.add(("r", frame, r))
            for item in [i for i in bt if i[1] > frame]:
                bt.discard(item)
            bt.discard(("r", frame, 0))
            return True
        bt.discard(("r", frame, 0))
        return not any(("r", frame, r) in bt for r in range(1, 6))
    if op == J_EXIT:
        if frame > 0 and ("r", frame - 1, 0) in bt:
            bt.discard(("r", frame - 1, 0))
            bt.add(("r", frame, 0))
        return True
    if op == J_JA or op == J_JCOND:
        return True
    if c & 0x08:
        rs = ("r", frame, s)
        if rd in bt or rs in bt:
            bt.add(rd)
            bt.add(rs)
    if extra:
        linked = [("r", frame, r) for r in range(11) if extra >> r & 1]
        if any(x in bt for x in linked):
            bt.update(linked)
    return True


#: A history entry at least this is packed (`_hist_entry`); below it, an index of frame 0 with nothing extra.
_HIST_FRAME = 1 << 32


def _hist_entry(idx: int, frame: int, extra: "tuple[int, int] | int | None") -> int:
    """A path-history entry as one int: index | (frame + 1) << 32 | what else << 40, where what else is the
    stack slot a spill or fill touched, (its frame << 8 | slot) << 1 | 1, or the registers a branch linked << 1."""
    if extra is None:
        more = 0
    elif extra.__class__ is int:
        more = extra << 1
    else:
        more = (extra[0] | extra[1] << 8) << 1 | 1
    return idx | (frame + 1) << 32 | more << 40


def _mark_precise(env: _Env, st: State, want: "set[tuple]") -> bool:
    """``mark_chain_precision``: the wanted scalars' exact values matter; mark their sources in every checkpoint.

    True when some checkpoint's scalar became precise."""
    bt = {w for w in want if (r := _lookup(st, w)) is not None and r.type is RegType.SCALAR}
    cur = st
    code, dsts = env.code, env.dst
    changed = False
    memo: dict = {}  # what the child checkpoint's marks replaced: its parent shares the copies (`State.set_precise`)
    while bt:
        for entry in reversed(cur.hist):
            if entry < _HIST_FRAME:
                idx, frame, extra = entry, 0, None
            else:
                idx, frame, extra = entry & U32, (entry >> 32 & 0xFF) - 1, entry >> 40
                if extra & 1:
                    extra = (extra >> 1 & 0xFF, extra >> 9)  # a stack slot: (frame, slot)
                else:
                    extra = (extra >> 1) or None  # the registers a branch linked
            cls = code[idx] & 7
            if (cls == ALU64 or cls == ALU) and ("r", frame, dsts[idx]) not in bt:
                continue  # defines nothing wanted (_backtrack's first test, without the call)
            if not _backtrack(env, idx, frame, extra, bt):
                _mark_all_precise(st)
                return changed
            if not bt:
                return changed
        parent = cur.parent
        if parent is None:
            return changed
        marks = []
        for item in list(bt):
            r = _lookup(parent, item)
            if r is None or r.type is not RegType.SCALAR or r.precise \
                    or (item[0] == "r" and parent.marks(item[1]) >> item[2] & 1):
                bt.discard(item)
            else:
                marks.append(item)
        if marks:
            memo = parent.set_precise(marks, memo)  # copy on write: it shares its registers with other states
            changed = True
        cur = parent
    return changed


def _precise_regs(env: _Env, st: State, *regnos: int) -> None:
    f = len(st.frames) - 1
    _mark_precise(env, st, {("r", f, r) for r in regnos})


def _insn_text(env: _Env, idx: int) -> str:
    c = env.code[idx]
    imm = env.imm[idx]
    if c == 0x18 and idx + 1 < env.n:
        imm = (imm & U32) | ((env.imm[idx + 1] & U32) << 32)
        imm = s64(imm)
    insn = Insn(c, env.dst[idx], env.src[idx], env.off[idx], imm)
    text = format_kernel(insn, idx)
    if c == 0x85 and env.src[idx] == 0:
        text = f"({c:02x}) call {helper_name(env.imm[idx])}#{env.imm[idx]}"
    return text


def _step_line(env: _Env, idx: int, before: State, after: State) -> str:
    head = f"{idx}: {_insn_text(env, idx)}"
    c = env.code[idx]
    uses, defs = uses_defs(Insn(c, env.dst[idx], env.src[idx], env.off[idx], env.imm[idx]), _helper_args(env.imm[idx]))
    if c == 0x95 or len(before.frames) != len(after.frames):
        return head
    if c == 0x85:
        uses, defs = 0, 1
    bf, af = before.cur, after.cur
    regs = [r for r in range(11) if (uses | defs) >> r & 1]
    slots = [k for k, s in af.stack.items() if _slot_changed(bf.stack.get(k), s)]
    tail = format_frame(af, regs, slots).strip()
    return f"{head:<37} ; {tail}" if tail else head


def _slot_changed(before: Slot | None, after: Slot) -> bool:
    """Does the log show slot `after` as changed since `before`: new, other byte types, or a spilled
    register that prints differently.  Field equality (`Reg.same`) settles most spills without
    formatting them: a program with dozens of spilled slots formats none of the unchanged ones."""
    if before is None or before.types != after.types:
        return True
    a, b = after.spilled, before.spilled
    if a is None or a is b:
        return False
    return b is None or (not a.same(b) and format_reg(b) != format_reg(a))


def _zext_on_prune(env: _Env, cur: State, idx: int) -> None:
    """A pruned path still reads what the explored one read: 32-bit definitions live as 64 bits here get zext_dst."""
    for depth, f in enumerate(cur.frames):
        if depth == len(cur.frames) - 1:
            live = env.live64[idx]
        else:
            nxt = cur.frames[depth + 1].callsite + 1
            live = env.live64[nxt] if nxt < env.n else 0
        regs = [r for i, r in enumerate(f.regs) if live >> i & 1]
        regs += [s.spilled for s in f.stack.values() if s.spilled is not None]
        for r in regs:
            if r.subreg_def:
                env.zext[r.subreg_def - 1] = 1


def _is_state_visited(env: _Env, cur: State, idx: int) -> bool:
    """``is_state_visited``: prune when an explored state at `idx` subsumes `cur`, else maybe checkpoint `cur`.

    The kernel's heuristics: a new checkpoint needs 2 jumps and 8 instructions
    processed (by any path) since the last one, unless forced (``may_goto``,
    or more than 40 entries of jump history); while a loop is being explored
    (an explored state with branches left) only every 20 jumps or 100
    instructions; states compared newest first; a state that misses more
    than 3 times its hits plus 3 is dropped from the list.
    """
    force = env.test_state_freq or env.force_checkpoint[idx] or cur.jhist > 40
    djmps = env.jmps_processed - env.prev_jmps_processed
    dinsns = env.processed - env.prev_insn_processed
    add = force or (djmps >= 2 and dinsns >= 8)
    callsite = cur.frames[-1].callsite
    key = _explored_key(env, idx, callsite)
    got = env.explored.get(key)  # a list from the second state on (`_explored`)
    lst = [got] if got.__class__ is Checkpoint else got or ()
    iter_next = idx in env.iter_next_sites
    may_goto = env.code[idx] == JMP | J_JCOND
    if iter_next:
        force = add = True  # an open-coded iterator's next: the kernel forces a checkpoint (mark_force_checkpoint)
    scc = env.scc
    i = len(lst) - 1
    while i >= 0:
        old = lst[i]
        if old.branches:
            if may_goto and old.may_goto_depth != cur.may_goto_depth and _states_equal(env, old, cur, idx, True):
                # around a may_goto loop: a state within one still being explored, an iteration ago
                old.hit += 1
                _propagate_precision(env, old, cur)
                scc.add_backedge(idx, old, cur)
                return True
            if idx in env.callback_sites and _states_equal(env, old, cur, idx, True):
                # back at a callback's call after a run of it: within the state an iteration ago (calls_callback)
                old.hit += 1
                _propagate_precision(env, old, cur)
                scc.add_backedge(idx, old, cur)
                return True
            if iter_next:
                # an open-coded iterator's next around its loop: the kernel prunes against the state
                # still being explored, range within, while the iterator is active (the loop converges
                # on the iterator, not on a bound); no other loop check here
                if _states_equal(env, old, cur, idx, True) and (at := _iter_slot(cur, cur.regs[1])) is not None \
                        and iter_state(at[0].stack[at[1]].spilled) == ITER_ACTIVE:
                    old.hit += 1
                    _propagate_precision(env, old, cur)
                    scc.add_backedge(idx, old, cur)
                    return True
            # still being explored (a loop around): not safe to prune against; add fewer states
            if not force and djmps < 20 and dinsns < 100:
                add = False
        else:
            if id(old) not in env.ls_cleaned:
                _clean(env, old, cur, idx)  # its dead stack slots forgotten, once (6.18's live stack)
            # in a loop whose visit has backedges, imprecise scalars compare too (6.18: incomplete_read_marks)
            loop = scc.incomplete(idx, old)
            if _states_equal(env, old, cur, idx, loop):
                old.hit += 1
                _zext_on_prune(env, cur, idx)
                _propagate_precision(env, old, cur)
                if loop:
                    scc.add_backedge(idx, old, cur)
                return True
        if add:
            old.miss += 1
        k = 64 if old.branches and (iter_next or env.force_checkpoint[idx]) else 3
        if old.miss > old.hit * k + k:
            del lst[i]  # unlikely to help (it stays a parent of the states derived from it)
        i -= 1
    if got is not None and len(lst) < (1 if got.__class__ is Checkpoint else 2):  # states dropped: one left, or none
        if lst:
            got = env.explored[key] = lst[0]
        else:
            del env.explored[key]
            got = None
    if not add:
        return False
    env.prev_jmps_processed = env.jmps_processed
    env.prev_insn_processed = env.processed
    # the checkpoint is frozen: it shares its frames with the newest snapshot of the live state
    # (without kept states, the path's last checkpoint is the nearest frozen state); it takes the snapshot's
    # frames, a tuple that precision marks and `_clean` replace and never change, and the snapshot stays the
    # sharing base (``env.last``: what marks change later is no base for the live state)
    ref = env.last = cur.snapshot(env.last if env.keep_states or cur.parent is None else cur.parent)
    snap = Checkpoint.__new__(Checkpoint)
    snap.frames = ref.frames
    snap.refs = ref.refs  # frozen too: a checkpoint's references are never changed
    snap.may_goto_depth = cur.may_goto_depth
    snap.hist = cur.hist
    snap.branches = 1
    snap.parent = cur.parent
    snap.hit = snap.miss = snap.pmask = 0
    cur.parent = snap
    cur.hist = array("q")
    cur.first_idx = idx
    cur.jhist = 0
    if got is None:
        env.explored[key] = snap
    elif got.__class__ is Checkpoint:
        env.explored[key] = [got, snap]
    else:
        got.append(snap)
    env.total_states += 1
    scc.enter(idx, snap)
    return False


def _explored_key(env: _Env, idx: int, callsite: int) -> int:
    """The checkpoint list of states at `idx` whose last frame was called at `callsite`: the kernel keeps one
    list per hash of (idx ^ callsite) (``explored_state``) and skips the other instructions' states in it,
    so a list holds the states at `idx` of every callsite of the same hash."""
    return ((idx ^ callsite) & U32) % env.n * env.n + idx


def _explored(env: _Env, key: int) -> "list[Checkpoint] | tuple[Checkpoint, ...]":
    """The checkpoints of `_explored_key` `key`, oldest first: ``env.explored`` holds a list from the second one
    on, a lone checkpoint as itself (most lists would hold one)."""
    got = env.explored.get(key, ())
    return (got,) if got.__class__ is Checkpoint else got


def _propagate_precision(env: _Env, old: State, cur: State) -> bool:
    """``propagate_precision``: what the explored state needed exact, the pruned path needs exact too (True: it
    made some checkpoint's scalar precise)."""
    want = set()
    for f, fr in enumerate(old.frames):
        pm = old.marks(f)
        for r, reg in enumerate(fr.regs):
            if reg.type is RegType.SCALAR and (reg.precise or pm >> r & 1):
                want.add(("r", f, r))
        for k, slot in fr.stack.items():
            if slot.spilled is not None and slot.types[7] == STACK_SPILL and slot.spilled.type is RegType.SCALAR \
                    and slot.spilled.precise:
                want.add(("s", f, k))
    return _mark_precise(env, cur, want) if want else False


# --- states_equal -----------------------------------------------------------------------------


class _IdMap:
    __slots__ = ("fwd", "rev", "tmp")

    def __init__(self) -> None:
        self.fwd: dict[int, int] = {}
        self.rev: dict[int, int] = {}
        self.tmp = 1 << 40

    def check(self, old: int, cur: int) -> bool:
        if old == 0 and cur == 0:
            return True
        if old == 0:
            self.tmp += 1
            old = self.tmp
        if cur == 0:
            self.tmp += 1
            cur = self.tmp
        m = self.fwd.get(old)
        if m is not None:
            return m == cur
        if cur in self.rev:
            return False
        self.fwd[old] = cur
        self.rev[cur] = old
        return True


def _scalar_ids(idmap: _IdMap, old: int, cur: int) -> bool:
    """``check_scalar_ids`` (6.18): an unlinked old scalar takes any; a linked one maps its id, and with a
    delta its set's id too; an unlinked current scalar counts as a set of its own."""
    if not old:
        return True
    if not cur:
        idmap.tmp += 1
        cur = idmap.tmp
    if not idmap.check(old, cur):
        return False
    return not old & ADD_CONST or idmap.check(old & ~ADD_CONST, cur & ~ADD_CONST)


def _range_within(o: Reg, c: Reg) -> bool:
    return (o.umin <= c.umin and o.umax >= c.umax and o.smin <= c.smin and o.smax >= c.smax
            and o.u32min <= c.u32min and o.u32max >= c.u32max and o.s32min <= c.s32min and o.s32max >= c.s32max)


def _regsafe(o: Reg, c: Reg, idmap: _IdMap, within: bool = False) -> bool:
    """``regsafe``; `within` is the kernel's RANGE_WITHIN: imprecise scalars must be within too."""
    if o.type is RegType.NOT_INIT:
        return True
    if c.type is RegType.NOT_INIT:
        return False
    if o.type is not c.type:
        return False
    t = o.type
    if t is RegType.SCALAR:
        if not o.precise and not within:
            return True
        oid = o.id
        if oid and (oid & ADD_CONST != c.id & ADD_CONST or (oid & ADD_CONST and o.off != c.off)):
            return False  # another kind of link, or another delta (6.18's regsafe)
        return _range_within(o, c) and tnum_in(o.var_off, c.var_off) and _scalar_ids(idmap, oid, c.id)
    if t in (RegType.PTR_TO_MAP_VALUE, RegType.PTR_TO_MAP_VALUE_OR_NULL, RegType.PTR_TO_MEM,
             RegType.PTR_TO_MEM_OR_NULL, RegType.PTR_TO_MAP_KEY):
        return (o.off == c.off and o.map == c.map and o.mem_size == c.mem_size and o.btf_name == c.btf_name
                and _range_within(o, c)
                and tnum_in(o.var_off, c.var_off) and idmap.check(o.id, c.id) and idmap.check(o.ref_obj_id, c.ref_obj_id))
    if t in PKT_TYPES:
        if c.range < o.range or (o.range < 0 and c.range != o.range):
            return False
        if c.range < 0 and o.range >= 0 and o.range > 0:
            return False
        return o.off == c.off and idmap.check(o.id, c.id) and _range_within(o, c) and tnum_in(o.var_off, c.var_off)
    if t is RegType.PTR_TO_STACK:
        return o.off == c.off and o.frameno == c.frameno and o.var_off == c.var_off
    return (o.off == c.off and o.var_off == c.var_off and o.map == c.map and o.range == c.range
            and o.mem_size == c.mem_size and o.btf_name == c.btf_name and idmap.check(o.id, c.id)
            and idmap.check(o.ref_obj_id, c.ref_obj_id))


ALL_MISC = STACK_MISC * 8
#: ``unbound_reg``: what a load from an all-MISC slot gives, compared as a spilled scalar would be.
_UNBOUND = Reg.unknown()


def _scalar_for_slot(s: Slot) -> Reg | None:
    """``scalar_reg_for_stack``: a 64-bit spilled scalar, an unbound scalar for an all-MISC (or, privileged,
    uninitialized) slot, else None."""
    sp = s.spilled
    if s.types[0] == STACK_SPILL and sp is not None and sp.type is SCALAR_T:
        return sp
    if s.types.strip(STACK_MISC + STACK_INVALID) == "":
        return _UNBOUND
    return None


def _stacksafe(o: Frame, c: Frame, idmap: _IdMap, within: bool = False) -> bool:
    """``stacksafe``: every slot of the explored frame `o` is safe against the current frame `c`'s.  Range
    within (`within`), the byte types must be the same over the explored stack (the slots up to its deepest
    one, where an absent slot is INVALID)."""
    if within:
        if not o.stack:
            return True
        deepest = max(o.stack)
        for k, cs in c.stack.items():
            if k <= deepest and cs.types != (o.stack[k].types if k in o.stack else STACK_INVALID * 8):
                return False
        for k, os in o.stack.items():
            if k not in c.stack and os.types != STACK_INVALID * 8:
                return False
    for k, os in o.stack.items():
        cs = c.stack.get(k)
        if os.types[0] == STACK_ITER:
            if cs is None or cs.types != os.types:
                return False
            if os.spilled is None:
                continue  # an iterator's other slots: their types are compared, nothing else
            # iter.depth is not compared: it would keep the loop from converging (stacksafe)
            ci = cs.spilled if cs is not None and cs.types[0] == STACK_ITER else None
            if ci is None or ci.btf_name != os.spilled.btf_name or iter_state(ci) != iter_state(os.spilled) \
                    or not idmap.check(os.spilled.ref_obj_id, ci.ref_obj_id):
                return False
            continue
        if not within and cs is not None and os.types[0] == STACK_SPILL:
            # a 64-bit scalar spill against a spilled scalar or all-MISC bytes (a load of those is an
            # unbound scalar): compared as registers (stacksafe's scalar_reg_for_stack, at the slot's first
            # byte that is neither INVALID nor MISC: a 64-bit spill's first)
            oreg = _scalar_for_slot(os)
            creg = _scalar_for_slot(cs) if oreg is not None else None
            if creg is not None:
                if not _regsafe(oreg, creg, idmap, within):
                    return False
                continue
        ot8 = os.types
        if ot8 == ALL_MISC:
            continue  # no byte to compare (the byte loop's first test, for the common slot)
        ct = cs.types if cs is not None else STACK_INVALID * 8
        for j in range(8) if ot8 != ct else ():  # equal bytes pass every byte test
            ot = ot8[j]
            if ot == STACK_INVALID or ot == STACK_MISC:
                continue  # privileged: uninitialized and misc stack read as unknown scalars
            if ot == STACK_ZERO and ct[j] == STACK_ZERO:
                continue
            if ot == STACK_ZERO and ct[j] == STACK_SPILL and cs is not None and cs.spilled is not None and \
                    cs.spilled.is_const() and cs.spilled.var_off[0] == 0:
                continue
            if ot != ct[j]:
                return False
        if os.types[7] == STACK_SPILL:
            if cs is None or cs.spilled is None or os.spilled is None or not _regsafe(os.spilled, cs.spilled, idmap, within):
                return False
    return True


def _states_equal(env: _Env, old: State, cur: State, idx: int, within: bool = False) -> bool:
    if len(old.frames) != len(cur.frames) or len(old.refs) != len(cur.refs):
        return False
    idmap = _IdMap()
    # refsafe: the same number of references, their ids equal up to renaming (each path numbers its own)
    for o, c in zip(old.refs, cur.refs):
        if not idmap.check(o, c):
            return False
    for depth, (of, cf) in enumerate(zip(old.frames, cur.frames)):
        if of.callsite != cf.callsite:
            return False
        if depth == len(old.frames) - 1:
            live = env.live[idx] | (1 << 10)
        else:
            nxt = old.frames[depth + 1].callsite + 1
            live = (env.live[nxt] if nxt < env.n else 0) & ~0x3F | (1 << 10)
        oregs, cregs = of.regs, cf.regs
        pm = old.marks(depth)  # the registers marked precise since `old` was made
        for r in range(11):
            if live >> r & 1:
                o = oregs[r]
                t = o.type
                marked = pm >> r & 1
                if t is NOT_INIT_T or (t is SCALAR_T and not within and not o.precise and not marked
                                       and cregs[r].type is t):
                    continue  # `_regsafe`'s first answers, without the call
                # a scalar marked since compares as a precise one: within (`_regsafe` reads it for scalars only)
                if not _regsafe(o, cregs[r], idmap, within or marked == 1):
                    return False
        if not _stacksafe(of, cf, idmap, within):
            return False
    return True


# --- one instruction --------------------------------------------------------------------------


def _new_id(env: _Env) -> int:
    env.id_gen += 1
    return env.id_gen


def _check_read(env: _Env, st: State, idx: int, regno: int, is64: bool) -> Reg:
    """``check_reg_arg(SRC_OP)``: the register must be initialized; a 64-bit read marks zext_dst."""
    r = st.regs[regno]
    if r.type is RegType.NOT_INIT:
        raise _err(idx, f"R{regno} !read_ok")
    if is64 and r.subreg_def:
        env.zext[r.subreg_def - 1] = 1
        r.subreg_def = 0
    return r


def _def(st: State, idx: int, regno: int, is64: bool) -> Reg:
    if regno == 10:
        raise _err(idx, "frame pointer is read only")
    r = st.regs[regno]
    r.subreg_def = 0 if is64 else idx + 1
    return r


def _step(env: _Env, st: State, idx: int, stack: list) -> int | None:
    c = env.code[idx]
    cls = c & 7
    if cls in (ALU, ALU64):
        _check_alu(env, st, idx)
        return idx + 1
    if cls == LDX:
        mode = c & 0xE0
        if mode not in (MODE_MEM, MODE_MEMSX):
            raise _err(idx, "unknown opcode %02x" % c)
        size = SIZES[c & 0x18]
        s = env.src[idx]
        _check_read(env, st, idx, s, True)
        _check_mem_access(env, st, idx, s, env.off[idx], size, "read", env.dst[idx], sign=mode == MODE_MEMSX)
        return idx + 1
    if cls == ST:
        size = SIZES[c & 0x18]
        d = env.dst[idx]
        _check_read(env, st, idx, d, True)
        _check_mem_access(env, st, idx, d, env.off[idx], size, "write", -1, st_imm=env.imm[idx])
        return idx + 1
    if cls == STX:
        mode = c & 0xE0
        size = SIZES[c & 0x18]
        d, s = env.dst[idx], env.src[idx]
        if mode == MODE_ATOMIC:
            _check_atomic(env, st, idx, size)
            return idx + 1
        sreg = st.regs[s]
        _check_read(env, st, idx, s, size == 8 or (sreg.type is not RegType.SCALAR and sreg.type is not RegType.NOT_INIT))
        _check_read(env, st, idx, d, True)
        _check_mem_access(env, st, idx, d, env.off[idx], size, "write", s)
        return idx + 1
    if cls == LD:
        if c == 0x18:
            _check_ld_imm64(env, st, idx)
            return idx + 2
        mode = c & 0xE0
        if mode in (MODE_ABS, MODE_IND):
            _check_ld_abs(env, st, idx)
            return idx + 1
        raise _err(idx, "unknown opcode %02x" % c)
    # JMP / JMP32
    op = c & 0xF0
    if op == J_EXIT and cls == JMP:
        return _check_exit(env, st, idx)
    if op == J_CALL and cls == JMP:
        return _check_call(env, st, idx, stack)
    if op == J_JA:
        return idx + 1 + (env.imm[idx] if cls == JMP32 else env.off[idx])
    if op == J_JCOND:
        return _check_may_goto(env, st, idx, stack)
    return _check_cond_jmp(env, st, idx, stack)


def _clobber_caller_saved(regs: list[Reg]) -> Reg:
    """After a helper or kfunc call: r1-r5 unreadable, r0 an unknown 64-bit scalar (returned)."""
    for r in range(1, 6):
        mark_not_init(regs[r])
    r0 = regs[0]
    mark_unknown(r0)
    r0.subreg_def = 0
    return r0


def _check_may_goto(env: _Env, st: State, idx: int, stack: list) -> int:
    """``may_goto`` as the kernel walks it: this path takes the jump (the loop's way out) and the
    fall-through (the loop body) is explored later, one ``may_goto_depth`` deeper, its imprecise
    scalars widened against the state this path had here one iteration before
    (``find_prev_entry``, ``widen_imprecise_scalars``): the loop converges in a few iterations.
    """
    body = st.copy()
    body.may_goto_depth += 1
    prev = _prev_entry(env, st, idx)
    if prev is not None:
        _widen_imprecise_scalars(prev, body)
    stack.append((body, idx + 1, idx))
    return idx + 1 + env.off[idx]


def _prev_entry(env: _Env, st: State, idx: int) -> State | None:
    """``find_prev_entry``: the newest checkpoint at `idx` that is an earlier point of this path
    (still being explored), not the checkpoint this very visit made."""
    ancestors = set()
    p = st.parent
    if p is not None and st.first_idx == idx and not st.hist:
        p = p.parent  # this visit's own checkpoint
    while p is not None:
        ancestors.add(id(p))
        p = p.parent
    for old in reversed(_explored(env, _explored_key(env, idx, st.frames[-1].callsite))):
        if old.branches and id(old) in ancestors and len(old.frames) == len(st.frames) \
                and all(a.callsite == b.callsite for a, b in zip(old.frames, st.frames)):
            return old
    return None


def _widen_imprecise_scalars(old: State, cur: State) -> None:
    """``widen_imprecise_scalars``: a scalar nobody needs exact that changed since `old` becomes unknown."""
    for fi, (fo, fc) in enumerate(zip(old.frames, cur.frames)):
        pm = old.marks(fi)  # registers marked precise in `old` since it was made
        pairs = [(ro, rc) for n, (ro, rc) in enumerate(zip(fo.regs, fc.regs)) if not pm >> n & 1]
        for k, so in fo.stack.items():
            sc = fc.stack.get(k)
            if so.spilled is not None and sc is not None and sc.spilled is not None \
                    and so.types[7] == STACK_SPILL and sc.types[7] == STACK_SPILL:
                pairs.append((so.spilled, sc.spilled))
        for ro, rc in pairs:
            if ro.type is not RegType.SCALAR or rc.type is not RegType.SCALAR or ro.precise or rc.precise:
                continue
            if (ro.var_off, ro.smin, ro.smax, ro.umin, ro.umax, ro.s32min, ro.s32max, ro.u32min, ro.u32max) == \
                    (rc.var_off, rc.smin, rc.smax, rc.umin, rc.umax, rc.s32min, rc.s32max, rc.u32min, rc.u32max):
                continue  # regs_exact (ids aside)
            sub = rc.subreg_def
            mark_unknown(rc)
            rc.subreg_def = sub


# --- ALU ----------------------------------------------------------------------------------------


def _fold_known(env: _Env, st: State, idx: int, c: int, op: int) -> bool:
    """``dst op= src`` (an op of `CONST_FOLDS`) when both are synced known scalars: the known result; False: not that case.

    The short cut of `_check_alu` (same effects: the reads' zext_dst marks, the
    subregister definition, the id dropped), before any general work.
    """
    regs = st.frames[-1].regs
    dreg = regs[env.dst[idx]]
    if dreg.type is not SCALAR_T or (dreg.id and (op == OP_ADD or op == OP_SUB)):
        return False  # (a linked known scalar's += keeps the link: the general path)
    vo = dreg.var_off
    if vo[1] or dreg.umin != dreg.umax or dreg.smin != dreg.smax or dreg.u32min != dreg.u32max \
            or dreg.s32min != dreg.s32max:
        return False
    is64 = (c & 7) == ALU64
    if c & 0x08:
        sreg = regs[env.src[idx]]
        if sreg.type is not SCALAR_T or not _exactly_known(sreg):
            return False
        b = sreg.var_off[0]
        if op in SHIFTS and b >= (64 if is64 else 32):
            return False  # not safe_to_compute: the general path makes it unknown
        if is64 and sreg.subreg_def:
            _check_read(env, st, idx, env.src[idx], True)
    else:
        b = env.imm[idx]
        if op in SHIFTS and not 0 <= b < (64 if is64 else 32):
            return False  # refused by the general path
    if is64:
        if dreg.subreg_def:
            _check_read(env, st, idx, env.dst[idx], True)
        dreg.subreg_def = 0
    else:
        dreg.subreg_def = idx + 1
    v = const_alu(op, vo[0], b, is64)
    dreg.var_off = (v, 0)
    dreg.umin = dreg.umax = v
    dreg.smin = dreg.smax = v - (1 << 64) if v >> 63 else v
    lo = v if v <= U32 else v & U32  # the same int object where it is the same value (kept states hold them)
    dreg.u32min = dreg.u32max = lo
    dreg.s32min = dreg.s32max = lo - (1 << 32) if lo >> 31 else lo
    dreg.id = dreg.off = 0
    return True


def _check_alu(env: _Env, st: State, idx: int) -> None:
    c = env.code[idx]
    op = c & 0xF0
    if op in CONST_FOLDS and _fold_known(env, st, idx, c, op):
        return
    is64 = (c & 7) == ALU64
    x = c & 0x08
    d, s, off, imm = env.dst[idx], env.src[idx], env.off[idx], env.imm[idx]
    regs = st.frames[-1].regs
    if op in (OP_NEG, OP_END):
        if op == OP_END:
            reads64 = is64 and imm == 64 or (not is64 and imm == 64)
        else:
            reads64 = is64
        r = _check_read(env, st, idx, d, reads64)
        if r.is_pointer:  # privileged (allow_ptr_leaks): the pointer becomes an unknown scalar (DST_OP)
            mark_unknown(_def(st, idx, d, is64 if op == OP_NEG else imm == 64))
            return
        if op == OP_NEG:
            src = r.copy()
            r = _def(st, idx, d, is64)
            mark_known(r, 0)
            r.type = RegType.SCALAR
            _scalar_alu(env, st, idx, r, src, OP_SUB, is64)
            return
        _def(st, idx, d, imm == 64)  # is_reg64: a 16/32-bit swap defines a subregister, even in ALU64
        _bswap(r, imm, is64 or (c & 0x08) == 0x08, is64)
        return
    if op == OP_MOV:
        if x:
            sreg = _check_read(env, st, idx, s, is64)
            sreg_copy = sreg
            dreg = regs[d]
            if d == 10:
                raise _err(idx, "frame pointer is read only")
            if is64:
                if imm:  # addr_space_cast
                    new = Reg.unknown()
                    dreg.assign(new)
                    if imm == 1:
                        dreg.type = RegType.PTR_TO_ARENA
                    dreg.subreg_def = 0
                elif off == 0:
                    _id_before_mov(env, sreg)
                    dreg.assign(sreg_copy)
                    dreg.subreg_def = 0
                elif sreg.is_pointer:  # privileged: is_pointer_value() is false, the kernel marks it unknown
                    mark_unknown(dreg)
                    dreg.subreg_def = 0
                else:
                    no_sext = sreg.umax < (1 << (off - 1))
                    if no_sext:
                        _id_before_mov(env, sreg)
                    dreg.assign(sreg_copy)
                    if not no_sext:
                        dreg.id = dreg.off = 0
                    coerce_to_size_sx(dreg, off >> 3)
                    dreg.subreg_def = 0
            else:
                if sreg.is_pointer:  # privileged: no "partial copy of pointer", an unknown low half
                    mark_unknown(dreg)
                    dreg.subreg_def = idx + 1
                elif off == 0:
                    is_u32 = sreg.umax <= U32
                    if is_u32:
                        _id_before_mov(env, sreg)
                    dreg.assign(sreg_copy)
                    if not is_u32:
                        dreg.id = dreg.off = 0
                    dreg.subreg_def = idx + 1
                else:
                    no_sext = sreg.umax < (1 << (off - 1))
                    if no_sext:
                        _id_before_mov(env, sreg)
                    dreg.assign(sreg_copy)
                    if not no_sext:
                        dreg.id = dreg.off = 0
                    dreg.subreg_def = idx + 1
                    coerce_subreg_to_size_sx(dreg, off >> 3)
                zext_32_to_64(dreg)
                reg_bounds_sync(dreg)
        else:
            r = _def(st, idx, d, is64)
            sd = r.subreg_def
            mark_unknown(r)
            r.subreg_def = sd
            mark_known(r, imm if is64 else imm & U32)
        return
    if op > OP_END:
        raise _err(idx, f"invalid BPF_ALU opcode {op >> 4:x}")
    # binary ops (the reads as `_check_read`, inline: this is the hottest path)
    if x:
        sreg = regs[s]
        if sreg.type is NOT_INIT_T:
            raise _err(idx, f"R{s} !read_ok")
        if is64 and sreg.subreg_def:
            _check_read(env, st, idx, s, True)
    else:
        sreg = None
    dreg = regs[d]
    if dreg.type is NOT_INIT_T:
        raise _err(idx, f"R{d} !read_ok")
    if is64 and dreg.subreg_def:
        _check_read(env, st, idx, d, True)
    if not x:
        if imm == 0 and (op == OP_MOD or op == OP_DIV):
            raise _err(idx, "div by zero")
        if op in SHIFTS and (imm < 0 or imm >= (64 if is64 else 32)):
            raise _err(idx, f"invalid shift {imm}")
    if d == 10:
        raise _err(idx, "frame pointer is read only")
    dreg.subreg_def = 0 if is64 else idx + 1
    dtype = dreg.type
    if dtype is ARENA_T or (sreg is not None and sreg.type is ARENA_T):
        return
    if sreg is not None:
        if sreg.type is not SCALAR_T:
            if dtype is not SCALAR_T:
                if op == OP_SUB:
                    sd = dreg.subreg_def
                    mark_unknown(dreg)
                    dreg.subreg_def = sd
                    return
                raise _err(idx, f"R{d} pointer {ALU_NAMES[op]} pointer prohibited")
            off_reg = dreg.copy()
            _precise_regs(env, st, d)
            _ptr_alu(env, st, idx, dreg, sreg, off_reg, op, is64, d, scalar_dst=True)
            return
        if dtype is not SCALAR_T:
            _precise_regs(env, st, s)
            _ptr_alu(env, st, idx, dreg, dreg.copy(), sreg, op, is64, d)
            return
        if not _safe_to_compute(op, sreg, is64):
            _scalar_alu(env, st, idx, dreg, sreg, op, is64)  # unknown: reads src first
            dreg.id = dreg.off = 0
            return
        dumax = dreg.umax
        key = (c, dreg.smin, dreg.smax, dreg.umin, dreg.umax, dreg.s32min, dreg.s32max, dreg.u32min, dreg.u32max,
               dreg.var_off, sreg.smin, sreg.smax, sreg.umin, sreg.umax, sreg.s32min, sreg.s32max, sreg.u32min,
               sreg.u32max, sreg.var_off)
        src = sreg.copy() if s == d else sreg
    else:
        if dtype is not SCALAR_T:
            _ptr_alu(env, st, idx, dreg, dreg.copy(), Reg.known(imm), op, is64, d)
            return
        if op not in SAFE_IMM_OPS:
            _scalar_alu(env, st, idx, dreg, Reg.known(imm), op, is64)
            dreg.id = dreg.off = 0
            return
        dumax = dreg.umax
        key = (c, imm, dreg.smin, dreg.smax, dreg.umin, dreg.umax, dreg.s32min, dreg.s32max, dreg.u32min, dreg.u32max,
               dreg.var_off)
        src = None
    # a computable op changes only the nine numeric fields, as a pure function of both operands' (and the opcode)
    out = _ALU_DONE.get(key)
    if out is None:
        _scalar_alu(env, st, idx, dreg, src if src is not None else Reg.known(imm), op, is64)
        if len(_ALU_DONE) >= _ALU_DONE_MAX:
            _ALU_DONE.clear()
        _ALU_DONE[key] = (dreg.smin, dreg.smax, dreg.umin, dreg.umax, dreg.s32min, dreg.s32max, dreg.u32min,
                          dreg.u32max, dreg.var_off)
    else:
        (dreg.smin, dreg.smax, dreg.umin, dreg.umax, dreg.s32min, dreg.s32max, dreg.u32min, dreg.u32max,
         dreg.var_off) = out
    if dreg.id:
        _link_delta(dreg, sreg, imm, op, is64, dumax, x and s == d)


def _id_before_mov(env: _Env, src: Reg) -> None:
    """``assign_scalar_id_before_mov``: a scalar copied (or spilled whole) shares an id with its copy; one
    already ``+= const`` from its set starts a new set (one delta a register)."""
    if src.type is not SCALAR_T:
        return
    if src.id & ADD_CONST:
        src.id = src.off = 0
    if src.id == 0 and not src.is_const():
        src.id = _new_id(env)


def _link_delta(dreg: Reg, sreg: Reg | None, imm: int, op: int, is64: bool, dst_umax: int, self_src: bool) -> None:
    """The end of ``adjust_reg_min_max_vals`` (6.18): ``dst += c`` or ``dst -= c`` of a constant keeps the
    set's id with ADD_CONST64 (ALU32: ADD_CONST32, when the upper half was zero) and the delta in ``off``;
    any other op, a second delta, one outside s32, ``-= S32_MIN`` or ``r -= r`` drops the link."""
    if (op == OP_ADD or op == OP_SUB) and not self_src:
        if sreg is None:
            val = imm & U64 if is64 else imm & U32
            const = True
        elif is64:
            val, const = sreg.var_off[0], sreg.var_off[1] == 0
        else:
            val, const = sreg.var_off[0] & U32, sreg.var_off[1] & U32 == 0
        if const and not dreg.id & ADD_CONST and (not is64 or s64(val) == s32(val)) and (is64 or dst_umax <= U32):
            off = s32(val)
            if op == OP_SUB:
                off = -off
            if off != 1 << 31:  # (-S32_MIN)
                dreg.id |= ADD_CONST64 if is64 else ADD_CONST32
                dreg.off = off
                return
    dreg.id = dreg.off = 0


#: The results of `_scalar_alu` on computable operations, by opcode and both operands' numeric fields
#: (for an immediate: the opcode, the immediate and the destination's); cleared at `_ALU_DONE_MAX` entries.
_ALU_DONE: dict[tuple, tuple] = {}
_ALU_DONE_MAX = 1 << 16


def _exactly_known(r: Reg) -> bool:
    """A known value whose four ranges are that value (a synced constant)."""
    return r.var_off[1] == 0 and r.umin == r.umax and r.smin == r.smax and r.u32min == r.u32max \
        and r.s32min == r.s32max


#: The ALU operations whose result on two known values is the known value `const_alu` computes.
CONST_FOLDS = frozenset((OP_ADD, OP_SUB, OP_MUL, OP_AND, OP_OR, OP_XOR, OP_LSH, OP_RSH, OP_ARSH))
SHIFTS = frozenset((OP_LSH, OP_RSH, OP_ARSH))
#: The ops `_safe_to_compute` allows with any immediate `_check_alu` lets through (a shift's is in range).
SAFE_IMM_OPS = frozenset((OP_ADD, OP_SUB, OP_MUL, OP_AND, OP_OR, OP_XOR, OP_LSH, OP_RSH, OP_ARSH))
SCALAR_T = RegType.SCALAR
NOT_INIT_T = RegType.NOT_INIT
ARENA_T = RegType.PTR_TO_ARENA


def const_alu(op: int, a: int, b: int, is64: bool) -> int:
    """``a op b`` for an op of `CONST_FOLDS` on 64 bits or (ALU32) the low 32, zero-extended.

    `a` is the destination's value (as u64), `b` the source's (an immediate as
    s32, a register as u64); shifts take a validated amount.
    """
    if not is64:
        a &= U32
        b &= U32
        if op == OP_ARSH:
            return (s32(a) >> b) & U32
    if op == OP_ADD:
        v = a + b
    elif op == OP_SUB:
        v = a - b
    elif op == OP_XOR:
        v = a ^ b
    elif op == OP_AND:
        v = a & b
    elif op == OP_OR:
        v = a | b
    elif op == OP_MUL:
        v = a * b
    elif op == OP_LSH:
        v = a << b
    elif op == OP_RSH:
        v = (a & U64) >> b
    else:  # OP_ARSH, 64-bit
        v = s64(a) >> b
    return v & (U64 if is64 else U32)


def _bswap(r: Reg, imm: int, swap: bool, is64: bool) -> None:
    """BPF_END: to-le truncates, to-be / bswap swaps the low `imm` bits."""
    sd = r.subreg_def
    if not swap:
        # to little endian on a little-endian machine: truncate to imm bits
        if imm == 64:
            return
        coerce_to_size(r, imm // 8)
        r.subreg_def = sd
        return
    if r.var_off[1] == 0:
        v = int.from_bytes((r.var_off[0] & ((1 << imm) - 1)).to_bytes(imm // 8, "little"), "big")
        mark_known(r, v)
    else:
        r.var_off = tnum_bswap(r.var_off, imm)
        mark_unbounded(r)
        reg_bounds_sync(r)
    r.id = r.off = 0
    r.subreg_def = sd


def _safe_to_compute(op: int, src: Reg, is64: bool) -> bool:
    if is64:
        const = src.var_off[1] == 0 and src.smin == src.smax and src.umin == src.umax
    else:
        const = (src.var_off[1] & U32) == 0 and src.s32min == src.s32max and src.u32min == src.u32max
    if op in (OP_ADD, OP_SUB, OP_AND, OP_XOR, OP_OR, OP_MUL):
        return True
    if op in (OP_LSH, OP_RSH, OP_ARSH):
        return const and src.umax < (64 if is64 else 32)
    return False


def _add_ov(a: int, b: int, lo: int, hi: int) -> tuple[int, bool]:
    v = a + b
    return v, v < lo or v > hi


def _add_bounds(dst: Reg, src: Reg) -> None:
    """``scalar32_min_max_add``, ``scalar_min_max_add`` and ``tnum_add``: `dst` += `src`, both halves."""
    smin, o1 = _add_ov(dst.s32min, src.s32min, S32_MIN, S32_MAX)
    smax, o2 = _add_ov(dst.s32max, src.s32max, S32_MIN, S32_MAX)
    dst.s32min, dst.s32max = (S32_MIN, S32_MAX) if (o1 or o2) else (smin, smax)
    umin, o1 = _add_ov(dst.u32min, src.u32min, 0, U32)
    umax, o2 = _add_ov(dst.u32max, src.u32max, 0, U32)
    dst.u32min, dst.u32max = (0, U32) if (o1 or o2) else (umin, umax)
    smin, o1 = _add_ov(dst.smin, src.smin, S64_MIN, S64_MAX)
    smax, o2 = _add_ov(dst.smax, src.smax, S64_MIN, S64_MAX)
    dst.smin, dst.smax = (S64_MIN, S64_MAX) if (o1 or o2) else (smin, smax)
    umin, o1 = _add_ov(dst.umin, src.umin, 0, U64)
    umax, o2 = _add_ov(dst.umax, src.umax, 0, U64)
    dst.umin, dst.umax = (0, U64) if (o1 or o2) else (umin, umax)
    dst.var_off = tnum_add(dst.var_off, src.var_off)


def _scalar_alu(env: _Env, st: State, idx: int, dst: Reg, src: Reg, op: int, is64: bool) -> None:
    """``adjust_scalar_min_max_vals``."""
    alu32 = not is64
    if not _safe_to_compute(op, src, is64):
        # the kernel returns before zero-extending: a 32-bit div/mod/variable shift is unknown in 64 bits
        sd = dst.subreg_def
        mark_unknown(dst)
        dst.subreg_def = sd
        return
    if op == OP_ADD:
        _add_bounds(dst, src)
    elif op == OP_SUB:
        smin, o1 = _add_ov(dst.s32min, -src.s32max, S32_MIN, S32_MAX)
        smax, o2 = _add_ov(dst.s32max, -src.s32min, S32_MIN, S32_MAX)
        dst.s32min, dst.s32max = (S32_MIN, S32_MAX) if (o1 or o2) else (smin, smax)
        if dst.u32min < src.u32max:
            dst.u32min, dst.u32max = 0, U32
        else:
            dst.u32min, dst.u32max = dst.u32min - src.u32max, dst.u32max - src.u32min
        smin, o1 = _add_ov(dst.smin, -src.smax, S64_MIN, S64_MAX)
        smax, o2 = _add_ov(dst.smax, -src.smin, S64_MIN, S64_MAX)
        dst.smin, dst.smax = (S64_MIN, S64_MAX) if (o1 or o2) else (smin, smax)
        if dst.umin < src.umax:
            dst.umin, dst.umax = 0, U64
        else:
            dst.umin, dst.umax = dst.umin - src.umax, dst.umax - src.umin
        dst.var_off = tnum_sub(dst.var_off, src.var_off)
    elif op == OP_MUL:
        dst.var_off = tnum_mul(dst.var_off, src.var_off)
        _mul_bounds(dst, src)
    elif op in (OP_AND, OP_OR, OP_XOR):
        if op != OP_XOR and src.var_off[1] == 0:
            if _maybe_fork(env, st, idx, dst):
                pass
        if op == OP_AND:
            dst.var_off = tnum_and(dst.var_off, src.var_off)
        elif op == OP_OR:
            dst.var_off = tnum_or(dst.var_off, src.var_off)
        else:
            dst.var_off = tnum_xor(dst.var_off, src.var_off)
        _bitop32(dst, src, op)
        _bitop64(dst, src, op)
    elif op == OP_LSH:
        if alu32:
            umin, umax = src.u32min, src.u32max
            sub = tnum_subreg(dst.var_off)
            _lsh32(dst, umin, umax)
            dst.var_off = tnum_subreg(tnum_lshift(sub, umin))
            mark_unbounded64(dst)
            update_bounds32(dst)
        else:
            umin, umax = src.umin, src.umax
            if umin == 32 and umax == 32:
                dst.smax = s64(dst.s32max << 32)
                dst.smin = s64(dst.s32min << 32)
            else:
                dst.smin, dst.smax = S64_MIN, S64_MAX
            if dst.umax > (1 << (63 - umax)):
                dst.umin, dst.umax = 0, U64
            else:
                dst.umin <<= umin
                dst.umax <<= umax
            _lsh32(dst, umin, umax)
            dst.var_off = tnum_lshift(dst.var_off, umin)
            update_bounds(dst)
    elif op == OP_RSH:
        if alu32:
            sub = tnum_subreg(dst.var_off)
            umin, umax = src.u32min, src.u32max
            dst.s32min, dst.s32max = S32_MIN, S32_MAX
            dst.var_off = tnum_rshift(sub, umin)
            dst.u32min >>= umax
            dst.u32max >>= umin
            mark_unbounded64(dst)
            update_bounds32(dst)
        else:
            umin, umax = src.umin, src.umax
            dst.smin, dst.smax = S64_MIN, S64_MAX
            dst.var_off = tnum_rshift(dst.var_off, umin)
            dst.umin >>= umax
            dst.umax >>= umin
            mark_unbounded32(dst)
            update_bounds(dst)
    elif op == OP_ARSH:
        if alu32:
            umin = src.u32min
            dst.s32min = dst.s32min >> umin
            dst.s32max = dst.s32max >> umin
            dst.var_off = tnum_arshift(tnum_subreg(dst.var_off), umin, 32)
            dst.u32min, dst.u32max = 0, U32
            mark_unbounded64(dst)
            update_bounds32(dst)
        else:
            umin = src.umin
            dst.smin >>= umin
            dst.smax >>= umin
            dst.var_off = tnum_arshift(dst.var_off, umin, 64)
            dst.umin, dst.umax = 0, U64
            mark_unbounded32(dst)
            update_bounds(dst)
    if alu32:
        zext_32_to_64(dst)
    reg_bounds_sync(dst)


def _mul_bounds(dst: Reg, src: Reg) -> None:
    """``scalar{32,}_min_max_mul`` as of Linux 6.13+: products of the bounds unless one overflows."""
    umax, umin = dst.u32max * src.u32max, dst.u32min * src.u32min
    if umax > U32 or umin > U32:
        dst.u32min, dst.u32max = 0, U32
    else:
        dst.u32min, dst.u32max = umin, umax
    prods = [dst.s32min * src.s32min, dst.s32min * src.s32max, dst.s32max * src.s32min, dst.s32max * src.s32max]
    if any(p < S32_MIN or p > S32_MAX for p in prods):
        dst.s32min, dst.s32max = S32_MIN, S32_MAX
    else:
        dst.s32min, dst.s32max = min(prods), max(prods)
    umax, umin = dst.umax * src.umax, dst.umin * src.umin
    if umax > U64 or umin > U64:
        dst.umin, dst.umax = 0, U64
    else:
        dst.umin, dst.umax = umin, umax
    prods = [dst.smin * src.smin, dst.smin * src.smax, dst.smax * src.smin, dst.smax * src.smax]
    if any(p < S64_MIN or p > S64_MAX for p in prods):
        dst.smin, dst.smax = S64_MIN, S64_MAX
    else:
        dst.smin, dst.smax = min(prods), max(prods)


def _maybe_fork(env: _Env, st: State, idx: int, dst: Reg) -> bool:
    return False


def _lsh32(dst: Reg, umin: int, umax: int) -> None:
    dst.s32min, dst.s32max = S32_MIN, S32_MAX
    if umax > 31 or dst.u32max > (1 << (31 - umax)):
        dst.u32min, dst.u32max = 0, U32
    else:
        dst.u32min = (dst.u32min << umin) & U32
        dst.u32max = (dst.u32max << umax) & U32


def _bitop32(dst: Reg, src: Reg, op: int) -> None:
    src_known = (src.var_off[1] & U32) == 0
    dst_known = (dst.var_off[1] & U32) == 0
    v, m = dst.var_off[0] & U32, dst.var_off[1] & U32
    if src_known and dst_known:
        mark_known32(dst, v)
        return
    if op == OP_AND:
        dst.u32min = v
        dst.u32max = min(dst.u32max, src.u32max)
    elif op == OP_OR:
        dst.u32min = max(dst.u32min, src.u32min)
        dst.u32max = v | m
    else:
        dst.u32min = v
        dst.u32max = v | m
    if s32(dst.u32min) <= s32(dst.u32max):
        dst.s32min, dst.s32max = s32(dst.u32min), s32(dst.u32max)
    else:
        dst.s32min, dst.s32max = S32_MIN, S32_MAX


def _bitop64(dst: Reg, src: Reg, op: int) -> None:
    if src.var_off[1] == 0 and dst.var_off[1] == 0:
        v = dst.var_off[0]
        mark_known(dst, v)
        return
    v, m = dst.var_off
    if op == OP_AND:
        dst.umin = v
        dst.umax = min(dst.umax, src.umax)
    elif op == OP_OR:
        dst.umin = max(dst.umin, src.umin)
        dst.umax = v | m
    else:
        dst.umin = v
        dst.umax = v | m
    if s64(dst.umin) <= s64(dst.umax):
        dst.smin, dst.smax = s64(dst.umin), s64(dst.umax)
    else:
        dst.smin, dst.smax = S64_MIN, S64_MAX
    update_bounds(dst)


def _ptr_alu(env: _Env, st: State, idx: int, dst: Reg, ptr: Reg, off_reg: Reg, op: int, is64: bool, regno: int,
             scalar_dst: bool = False) -> None:
    """``adjust_ptr_min_max_vals``: pointer += / -= scalar."""
    t = ptr.type
    known = off_reg.is_const()
    smin_val, smax_val, umin_val, umax_val = off_reg.smin, off_reg.smax, off_reg.umin, off_reg.umax
    if (known and smin_val != smax_val) or (known and umin_val != umax_val) or smin_val > smax_val or umin_val > umax_val:
        mark_unknown(dst)  # the offset's bounds are invalid (a dead branch): taint, whatever the rest
        return
    if not is64:
        if op == OP_SUB:  # privileged (allow_ptr_leaks): a meaningless scalar
            mark_unknown(dst)
            return
        raise _err(idx, f"R{regno} 32-bit pointer arithmetic prohibited")
    if t in NULLABLE:
        raise _err(idx, f"R{regno} pointer arithmetic on {t.value} prohibited, null-check it first")
    if t in (RegType.CONST_PTR_TO_MAP, RegType.PTR_TO_PACKET_END, RegType.PTR_TO_SOCKET, RegType.PTR_TO_SOCK_COMMON,
             RegType.PTR_TO_TCP_SOCK, RegType.PTR_TO_XDP_SOCK, RegType.PTR_TO_FLOW_KEYS):
        if t is RegType.CONST_PTR_TO_MAP and op == OP_ADD and off_reg.is_const() and off_reg.var_off[0] == 0:
            dst.assign(ptr)
            return
        raise _err(idx, f"R{regno} pointer arithmetic on {t.value} prohibited")
    _sane_offset(idx, off_reg, t)
    _sane_offset(idx, ptr, t)
    if op not in (OP_ADD, OP_SUB):
        if op in (OP_AND, OP_OR, OP_XOR):
            raise _err(idx, f"R{regno} bitwise operator {ALU_NAMES[op]} on pointer prohibited")
        raise _err(idx, f"R{regno} pointer arithmetic with {ALU_NAMES[op]} operator prohibited")
    off_reg_is_dst = ptr if scalar_dst else None
    sd = 0
    res = ptr.copy()
    res.subreg_def = sd
    mark_unbounded32(res)
    if op == OP_ADD:
        if known and _fits_s32(ptr.off + smin_val):
            res.smin, res.smax, res.umin, res.umax = ptr.smin, ptr.smax, ptr.umin, ptr.umax
            res.var_off = ptr.var_off
            res.off = ptr.off + smin_val
        else:
            a, o1 = _add_ov(ptr.smin, smin_val, S64_MIN, S64_MAX)
            b, o2 = _add_ov(ptr.smax, smax_val, S64_MIN, S64_MAX)
            res.smin, res.smax = (S64_MIN, S64_MAX) if (o1 or o2) else (a, b)
            a, o1 = _add_ov(ptr.umin, umin_val, 0, U64)
            b, o2 = _add_ov(ptr.umax, umax_val, 0, U64)
            res.umin, res.umax = (0, U64) if (o1 or o2) else (a, b)
            res.var_off = tnum_add(ptr.var_off, off_reg.var_off)
            res.off = ptr.off
            if t in PKT_TYPES:
                res.id = _new_id(env)
                res.range = 0
    else:
        if ptr is off_reg_is_dst:
            raise _err(idx, f"R{regno} tried to subtract pointer from scalar")
        if t is RegType.PTR_TO_STACK:
            raise _err(idx, f"R{regno} subtraction from stack pointer prohibited")
        if known and _fits_s32(ptr.off - smin_val):
            res.smin, res.smax, res.umin, res.umax = ptr.smin, ptr.smax, ptr.umin, ptr.umax
            res.var_off = ptr.var_off
            res.off = ptr.off - smin_val
        else:
            a, o1 = _add_ov(ptr.smin, -smax_val, S64_MIN, S64_MAX)
            b, o2 = _add_ov(ptr.smax, -smin_val, S64_MIN, S64_MAX)
            res.smin, res.smax = (S64_MIN, S64_MAX) if (o1 or o2) else (a, b)
            if ptr.umin < umax_val:
                res.umin, res.umax = 0, U64
            else:
                res.umin, res.umax = ptr.umin - umax_val, ptr.umax - umin_val
            res.var_off = tnum_sub(ptr.var_off, off_reg.var_off)
            res.off = ptr.off
            if t in PKT_TYPES:
                res.id = _new_id(env)
                if smin_val < 0:
                    res.range = 0
    _sane_offset(idx, res, t)
    reg_bounds_sync(res)
    if t is RegType.PTR_TO_STACK and res.var_off[1] == 0:
        pass
    dst.assign(res)
    dst.subreg_def = 0


def _sane_offset(idx: int, r: Reg, t: RegType) -> None:
    """``check_reg_sane_offset``: the offset, the pointer and the result of pointer arithmetic stay within
    BPF_MAX_VAR_OFF, and a scalar whose smin is S64_MIN is refused outright (bcc's cpufreq, clang-19 -mcpu=v4:
    a 32-bit division leaves its result unknown in 64 bits, the kernel refuses the map-value index at the add)."""
    val = s64(r.var_off[0])
    if r.var_off[1] == 0 and (val >= BPF_MAX_VAR_OFF or val <= -BPF_MAX_VAR_OFF):
        raise _err(idx, f"math between {t.value} pointer and {val} is not allowed")
    if r.off >= BPF_MAX_VAR_OFF or r.off <= -BPF_MAX_VAR_OFF:
        raise _err(idx, f"{t.value} pointer offset {r.off} is not allowed")
    if r.smin == S64_MIN:
        raise _err(idx, f"math between {t.value} pointer and register with unbounded min value is not allowed")
    if r.smin >= BPF_MAX_VAR_OFF or r.smin <= -BPF_MAX_VAR_OFF:
        raise _err(idx, f"value {r.smin} makes {t.value} pointer be out of bounds")


def _fits_s32(v: int) -> bool:
    return S32_MIN <= v <= S32_MAX


# --- loads, stores, atomics --------------------------------------------------------------------


def _kptr_field(m: MapRef, at: int) -> tuple[int, str, str] | None:
    """The map value's kptr field at byte offset `at` (``btf_record_find``), if any."""
    for f in m.kptr_fields:
        if f[0] <= at < f[0] + 8:
            return f
    return None


def _load_kptr(env: _Env, r: Reg, field: tuple[int, str, str]) -> None:
    """``check_map_kptr_access`` for a load (``mark_btf_ld_reg``): a maybe-NULL pointer to the field's struct
    with a fresh id (rcu-protected or untrusted: flags the analysis does not keep)."""
    mark_known(r, 0)
    r.type = RegType.PTR_TO_BTF_ID_OR_NULL
    r.btf_name = field[2]
    r.id = _new_id(env)
    r.subreg_def = 0


def _record_ptr_type(env: _Env, idx: int, t: RegType) -> None:
    a = _aux(env, idx)
    if a.ptr_type is None:
        a.ptr_type = t
    elif a.ptr_type is not t:
        ok = {a.ptr_type, t}
        if not (ok <= {RegType.PTR_TO_CTX} or RegType.PTR_TO_CTX not in ok):
            raise _err(idx, "same insn cannot be used with different pointers")


def _set_loaded(env: _Env, st: State, idx: int, value_regno: int, size: int, sign: bool) -> Reg:
    """The register a load defines; a scratch one for value_regno -1 (an atomic's read: nothing is written)."""
    if value_regno < 0:
        return Reg()
    r = _def(st, idx, value_regno, size == 8 or sign)
    sd = r.subreg_def
    mark_unknown(r)
    r.subreg_def = sd
    return r


def _finish_load(r: Reg, size: int, sign: bool) -> None:
    if size < 8 and r.type is RegType.SCALAR:
        if sign:
            coerce_to_size_sx(r, size)
        else:
            coerce_to_size(r, size)


def _check_mem_access(env: _Env, st: State, idx: int, regno: int, off: int, size: int, kind: str,
                      value_regno: int, *, sign: bool = False, st_imm: int | None = None) -> None:
    reg = st.regs[regno]
    t = reg.type
    _record_ptr_type(env, idx, t if t is not RegType.NOT_INIT else RegType.SCALAR)
    read = kind == "read"
    if t is RegType.SCALAR or t is RegType.NOT_INIT:
        raise _err(idx, f"R{regno} invalid mem access '{t.value}'")
    if t in NULLABLE:
        raise _err(idx, f"R{regno} invalid mem access '{t.value}'")
    off_full = off + reg.off
    if t is RegType.PTR_TO_STACK:
        _stack_access(env, st, idx, regno, reg, off, size, kind, value_regno, sign, st_imm)
        return
    if t is RegType.PTR_TO_CTX:
        _ctx_access(env, st, idx, regno, reg, off, size, kind, value_regno, sign)
        return
    if t in PKT_TYPES:
        if reg.smin < 0:
            raise _err(idx, f"R{regno} min value is negative, either use unsigned index or do a if (index >=0) check.")
        if reg.range < 0 or not (off_full >= 0 and off_full + size <= reg.range):
            raise _err(idx, f"invalid access to packet, off={off_full} size={size}, R{regno}(id={reg.id},"
                            f"off={reg.off},r={reg.range})")
        if read:
            r = _set_loaded(env, st, idx, value_regno, size, sign)
            _finish_load(r, size, sign)
        return
    if t is RegType.PTR_TO_PACKET_END:
        raise _err(idx, f"R{regno} invalid mem access 'pkt_end'")
    if t in (RegType.PTR_TO_MAP_VALUE, RegType.PTR_TO_MAP_KEY, RegType.PTR_TO_MEM, RegType.PTR_TO_FLOW_KEYS,
             RegType.PTR_TO_TP_BUFFER, RegType.PTR_TO_BUF):
        if t is RegType.PTR_TO_MAP_VALUE:
            limit = reg.map.value_size if reg.map and reg.map.value_size else None
        elif t is RegType.PTR_TO_MAP_KEY:
            limit = reg.map.key_size if reg.map and reg.map.key_size else None
        elif t is RegType.PTR_TO_MEM:
            if not read and reg.btf_name == RDONLY_MEM:
                raise _err(idx, f"R{regno} cannot write into rdonly_mem")
            limit = reg.mem_size or None
        elif t is RegType.PTR_TO_FLOW_KEYS:
            limit = 56
        else:
            limit = None
        if limit is not None:
            if reg.smin + off_full < 0:
                raise _err(idx, f"R{regno} min value is outside of the allowed memory range")
            if reg.umax + off_full + size > limit:
                if reg.var_off[1] == 0:
                    what = "map value" if t is RegType.PTR_TO_MAP_VALUE else "memory"
                    if t is RegType.PTR_TO_MAP_VALUE:
                        raise _err(idx, f"invalid access to map value, value_size={limit} off={off_full} size={size}")
                    raise _err(idx, f"invalid access to {what}, mem_size={limit} off={off_full} size={size}")
                raise _err(idx, f"R{regno} max value is outside of the allowed memory range")
        if read:
            frozen = reg.map.frozen_value if t is RegType.PTR_TO_MAP_VALUE and reg.map is not None else None
            at = off_full + reg.var_off[0]
            const_off = not reg.var_off[1]
            kptr = _kptr_field(reg.map, at) if t is RegType.PTR_TO_MAP_VALUE and const_off and reg.map else None
            r = _set_loaded(env, st, idx, value_regno, size, sign)  # may be `reg` itself
            if kptr is not None and size == 8 and value_regno >= 0:
                _load_kptr(env, r, kptr)
                return
            if frozen is not None and const_off and size in (1, 2, 4, 8) and value_regno >= 0:
                if 0 <= at and at + size <= len(frozen):
                    val = int.from_bytes(frozen[at:at + size], "little", signed=sign)  # bpf_map_direct_read
                    mark_known(r, val & U64)
                    return
            _finish_load(r, size, sign)
        return
    if t is RegType.CONST_PTR_TO_MAP:
        if read:
            r = _set_loaded(env, st, idx, value_regno, size, sign)
            _finish_load(r, size, sign)
            return
        raise _err(idx, f"R{regno} invalid mem access '{t.value}'")
    if read and t is RegType.PTR_TO_BTF_ID:
        _btf_load(env, st, idx, value_regno, reg, off_full, size, sign)
        return
    # sockets, arena: loads give unknown scalars
    if read:
        if t is RegType.PTR_TO_TCP_SOCK or t is RegType.PTR_TO_SOCKET or t is RegType.PTR_TO_SOCK_COMMON:
            if off_full < 0:
                raise _err(idx, f"R{regno} invalid {t.value} access off={off_full} size={size}")
        r = _set_loaded(env, st, idx, value_regno, size, sign)
        _finish_load(r, size, sign)
        return
    if t is RegType.PTR_TO_ARENA or t is RegType.PTR_TO_BTF_ID:
        return
    raise _err(idx, f"R{regno} cannot write into {t.value}")


def _btf_load(env: _Env, st: State, idx: int, value_regno: int, reg: Reg, off: int, size: int, sign: bool) -> None:
    """A load from a kernel struct (``btf_struct_access``): a pointer member gives a pointer to its struct."""
    name = reg.btf_name  # read before the load: `r` may be `reg` itself
    r = _set_loaded(env, st, idx, value_regno, size, sign)
    kt = _kernel_types(env) if name else None
    what = kt.member(name, off, size) if kt is not None else None
    if what is not None and what.startswith("ptr:") and value_regno >= 0:
        mark_known(r, 0)
        r.type = RegType.PTR_TO_BTF_ID
        r.btf_name = what[4:]
        r.subreg_def = 0
        return
    if what is not None and what.startswith("mem:") and value_regno >= 0:
        # 6.18 (not 6.12, where it is a scalar): a pointer to a sized non-struct member is read-only
        # untrusted memory of unknown size, the log's rdonly_untrusted_mem(sz=0)
        mark_known(r, 0)
        r.type = RegType.PTR_TO_MEM
        r.mem_size = 0
        r.btf_name = RDONLY_MEM
        r.subreg_def = 0
        return
    _finish_load(r, size, sign)


def _kernel_types(env: _Env) -> "KernelTypes | None":
    """The analysis's `KernelTypes`, made at first use when a function was given."""
    kt = env.kernel_types
    if kt is not None and not hasattr(kt, "kfunc"):
        kt = env.kernel_types = kt()
    return kt


def _ctx_access(env: _Env, st: State, idx: int, regno: int, reg: Reg, off: int, size: int, kind: str,
                value_regno: int, sign: bool) -> None:
    if reg.off:
        raise _err(idx, f"dereference of modified ctx ptr R{regno} off={reg.off} disallowed")
    if reg.var_off[1]:
        raise _err(idx, f"variable ctx access var_off=({hex(reg.var_off[0])}; {hex(reg.var_off[1])}) disallowed")
    lay = env.ctx
    if lay.args is not None:
        _btf_ctx_access(env, st, idx, off, size, kind, value_regno, sign)
        return
    read = kind == "read"
    fld = lay.field_at(off) if lay.fields else None
    bad = (off < 0 or (lay.size and off + size > lay.size) or off in lay.denied or (fld is not None and fld.offset in lay.denied))
    if lay.size and fld is None and lay.fields:
        bad = True
    ptr = lay.pointers.get(off)
    if ptr is not None and read and size != ptr[1]:
        bad = True
    if ptr is not None and not read:
        bad = True
    if not read and lay.writable is not None and off not in lay.writable:
        bad = True
    if fld is not None and off + size > fld.offset + fld.size and fld.size >= size:
        bad = True
    if bad:
        raise _err(idx, f"invalid bpf_context access off={off} size={size}")
    a = _aux(env, idx)
    if fld is not None:
        a.ctx_field_size = fld.size if size < fld.size else size
    else:
        a.ctx_field_size = size
    if not read:
        return
    r = _set_loaded(env, st, idx, value_regno, size, sign)
    if ptr is not None:
        mark_known(r, 0)
        r.type = ptr[0]
        if ptr[0] in NULLABLE or ptr[0] in (RegType.PTR_TO_SOCKET, RegType.PTR_TO_SOCK_COMMON):
            r.id = _new_id(env)
        return
    _finish_load(r, size, sign)


MAX_BPF_FUNC_ARGS = 12


def _btf_ctx_access(env: _Env, st: State, idx: int, off: int, size: int, kind: str, value_regno: int,
                    sign: bool) -> None:
    """A load from a BTF-typed context (``tracing_prog_is_valid_access`` and ``btf_ctx_access``): the
    attach target's argument at ``off // 8``, a pointer to a kernel struct read as that struct's pointer."""
    args = env.ctx.args
    arg = off // 8
    ok = kind == "read" and 0 <= off < 8 * MAX_BPF_FUNC_ARGS and off % size == 0 and off % 8 == 0 and arg < len(args)
    what = args[arg] if ok else None
    if what is not None and (what.pointer or what.type is not RegType.SCALAR) and size != 8:
        ok = False
    if not ok:
        raise _err(idx, f"invalid bpf_context access off={off} size={size}")
    _aux(env, idx).ctx_field_size = size
    r = _set_loaded(env, st, idx, value_regno, size, sign)
    if what.type is RegType.SCALAR or value_regno < 0:
        _finish_load(r, size, sign)
        return
    mark_known(r, 0)
    r.type = what.type
    r.btf_name = what.btf_name
    r.subreg_def = 0
    if what.type in NULLABLE:
        r.id = _new_id(env)


def _slot(frame: Frame, k: int) -> Slot:
    s = frame.stack.get(k)
    if s is None:
        s = frame.stack[k] = Slot()
    return s


def _subprog_depth(env: _Env, frame: Frame, depth: int) -> None:
    """update_stack_depth: the subprogram's stack depth (rounded up to 8 bytes), kept in its entry's aux."""
    a = _aux(env, frame.subprog) if 0 <= frame.subprog < env.n and not env.middle[frame.subprog] else None
    if a is not None and a.stack_depth < depth:
        a.extra["stack_depth"] = (depth + 7) & ~7


def _stack_frame(st: State, reg: Reg) -> Frame:
    for f in st.frames:
        if f.frameno == reg.frameno:
            return f
    return st.cur


def _stack_access(env: _Env, st: State, idx: int, regno: int, reg: Reg, off: int, size: int, kind: str,
                  value_regno: int, sign: bool, st_imm: int | None) -> None:
    frame = _stack_frame(st, reg)
    read = kind == "read"
    if reg.var_off[1] == 0:
        start = off + reg.off + s64(reg.var_off[0])
        lo = hi = start
    else:
        lo, hi = reg.smin + off + reg.off, reg.smax + off + reg.off
        start = None
    if lo < -MAX_BPF_STACK or hi + size > 0:
        what = "read from" if read else "write to"
        if start is None:
            raise _err(idx, f"invalid variable-offset {'read from' if read else 'write to'} stack R{regno}")
        raise _err(idx, f"invalid {what} stack R{regno} off={start} size={size}")
    env.max_depth = max(env.max_depth, -lo)
    _subprog_depth(env, frame, -lo)
    if start is None:
        # variable offset: every byte that might be touched
        if read:
            mask = 0
            for b in range(lo, hi + size):
                mask |= 1 << ((-b - 1) // 8)
            env.ls.read(st.frames, idx, frame.frameno, mask)
            allzero = True
            for b in range(lo, hi + size):
                k, j = (-b - 1) // 8, (-b - 1) % 8
                s = frame.stack.get(k)
                if s is None or s.types[j] != STACK_ZERO:
                    allzero = False
            r = _set_loaded(env, st, idx, value_regno, size, sign)
            if allzero:
                mark_known(r, 0)
            else:
                _finish_load(r, size, sign)
        else:
            val = st.regs[value_regno] if value_regno >= 0 else None
            zero = (val is not None and val.is_const() and val.var_off[0] == 0) or (val is None and st_imm == 0)
            for b in range(lo, hi + size):
                k, j = (-b - 1) // 8, (-b - 1) % 8
                s = _slot(frame, k)
                if s.types[7] == STACK_SPILL:
                    s.types = _scrub(s.types)
                    s.spilled = None
                cur = s.types[j]
                s.types = s.types[:j] + (STACK_ZERO if zero and cur == STACK_ZERO else STACK_MISC) + s.types[j + 1:]
        return
    k = (-start - 1) // 8
    if read:
        env.ls.read(st.frames, idx, frame.frameno, 1 << k)
    elif start % 8 == 0 and size == 8:
        env.ls.write(frame.frameno, 1 << k)
    if not read:
        slot = -start - 1
        s = _slot(frame, k)
        val = st.regs[value_regno] if value_regno >= 0 else None
        if s.is_spill and s.spilled is not None and not s.spilled.is_scalar and size != 8 and False:
            raise _err(idx, "attempt to corrupt spilled pointer on stack")
        if (-start - 1) // 8 != (-(start + size - 1) - 1) // 8:
            raise _err(idx, f"misaligned stack access off {start} size {size}")
        if val is not None and start % 8 == 0 and val.type is RegType.SCALAR:
            if size == 8 or val.umax < (1 << (8 * size)):
                _id_before_mov(env, val)
            _save_spill(s, val, size)
            env.hist_extra = (frame.frameno, k)
            if not (size == 8 or val.umax < (1 << (8 * size))):
                s.spilled.id = 0
        elif val is None and start % 8 == 0 and st_imm is not None:
            _save_spill(s, Reg.known(st_imm), size)
            env.hist_extra = (frame.frameno, k)
        elif val is not None and val.is_pointer:
            if size != 8:
                raise _err(idx, "invalid size of register spill")
            _save_spill(s, val, size)
            env.hist_extra = (frame.frameno, k)
        else:
            typ = STACK_MISC
            if (val is not None and val.is_const() and val.var_off[0] == 0) or (val is None and st_imm == 0):
                typ = STACK_ZERO
                if val is not None:
                    _precise_regs(env, st, value_regno)
            if s.types[7] == STACK_SPILL:
                s.spilled = None
                s.types = _scrub(s.types)
            ts = list(s.types)
            for i in range(size):
                ts[(slot - i) % 8] = typ
            s.types = "".join(ts)
            s.spilled = None
        return
    # read
    slot = -start - 1
    s = frame.stack.get(k)
    types = s.types if s is not None else STACK_INVALID * 8
    if s is not None and s.types[7] == STACK_SPILL and s.spilled is not None:
        spill_size = 1
        i = 7
        while i > 0 and types[i - 1] == STACK_SPILL:
            spill_size += 1
            i -= 1
        sp = s.spilled
        if size != 8 or spill_size != 8:
            if sp.type is not RegType.SCALAR:
                raise _err(idx, "invalid size of register fill")
            if value_regno < 0:
                return
            dreg = st.regs[value_regno]
            if size <= spill_size and _narrow_ok(start, size, spill_size):
                sd = idx + 1 if not (size == 8 or sign) else 0
                env.hist_extra = (frame.frameno, k)
                dreg.assign(sp)
                dreg.subreg_def = sd
                if sp.umax >= (1 << (8 * size)) and size < 8:
                    dreg.id = dreg.off = 0
            else:
                spill_cnt = zero_cnt = 0
                for i in range(size):
                    ty = types[(slot - i) % 8]
                    if ty == STACK_SPILL:
                        spill_cnt += 1
                    elif ty == STACK_ZERO:
                        zero_cnt += 1
                sd = idx + 1 if not (size == 8 or sign) else 0
                if spill_cnt == size and sp.is_const() and sp.var_off[0] == 0:
                    env.hist_extra = (frame.frameno, k)
                if spill_cnt == size and sp.is_const() and sp.var_off[0] == 0 or zero_cnt == size:
                    mark_unknown(dreg)
                    mark_known(dreg, 0)
                else:
                    mark_unknown(dreg)
                dreg.subreg_def = sd
            _finish_load(dreg, size, sign)
            return
        if value_regno >= 0:
            dreg = st.regs[value_regno]
            if value_regno == 10:
                raise _err(idx, "frame pointer is read only")
            env.hist_extra = (frame.frameno, k)
            dreg.assign(sp)
            dreg.subreg_def = 0 if sp.subreg_def == 0 else sp.subreg_def
        return
    for i in range(size):
        ty = types[(slot - i) % 8]
        if ty == STACK_ITER or ty == STACK_DYNPTR:  # check_stack_read_fixed_off: not readable as data
            raise _err(idx, f"invalid read from stack off {start}+{i} size {size}")
    allzero = all(types[(slot - i) % 8] == STACK_ZERO for i in range(size))
    if value_regno >= 0:
        r = _set_loaded(env, st, idx, value_regno, size, sign)
        if allzero:
            mark_known(r, 0)
        else:
            _finish_load(r, size, sign)


def _scrub(types: str) -> str:
    """``scrub_spilled_slot`` on every byte: a write into a spilled slot leaves initialized bytes MISC."""
    return "".join(ch if ch == STACK_INVALID else STACK_MISC for ch in types)


def _narrow_ok(off: int, size: int, spill_size: int) -> bool:
    # little endian: the low bytes sit at the slot's lowest address
    return off % 8 == 0


def _save_spill(s: Slot, val: Reg, size: int) -> None:
    s.spilled = val.copy()
    ts = list(s.types)
    for i in range(8, 8 - size, -1):
        ts[i - 1] = STACK_SPILL
    for i in range(8 - size):
        if ts[i] not in (STACK_ZERO, STACK_INVALID):
            ts[i] = STACK_MISC
    s.types = "".join(ts)


def _check_atomic(env: _Env, st: State, idx: int, size: int) -> None:
    imm = env.imm[idx]
    d, s = env.dst[idx], env.src[idx]
    if size not in (4, 8):
        raise _err(idx, "invalid atomic operand size")
    if imm not in (0x00, 0x40, 0x50, 0xA0, 0x01, 0x41, 0x51, 0xA1, ATOMIC_XCHG, ATOMIC_CMPXCHG):
        if imm not in (0x100, 0x110):  # load-acquire / store-release
            raise _err(idx, f"BPF_ATOMIC uses invalid atomic opcode {imm:02x}")
    _check_read(env, st, idx, s, size == 8)
    _check_read(env, st, idx, d, True)
    if imm == ATOMIC_CMPXCHG:
        _check_read(env, st, idx, 0, size == 8)
    dreg = st.regs[d]
    if dreg.type in (RegType.PTR_TO_CTX, RegType.PTR_TO_PACKET, RegType.PTR_TO_PACKET_META, RegType.PTR_TO_FLOW_KEYS):
        raise _err(idx, f"BPF_ATOMIC stores into R{d} {dreg.type.value} is not allowed")
    fetch = imm & ATOMIC_FETCH
    load_reg = 0 if imm == ATOMIC_CMPXCHG else (s if fetch else -1)
    _check_mem_access(env, st, idx, d, env.off[idx], size, "read", -1)
    if load_reg >= 0:
        _check_mem_access(env, st, idx, d, env.off[idx], size, "read", load_reg)
        _record_ptr_type(env, idx, dreg.type)
    _check_mem_access(env, st, idx, d, env.off[idx], size, "write", -1)


def _check_ld_imm64(env: _Env, st: State, idx: int) -> None:
    d, s = env.dst[idx], env.src[idx]
    lo, hi = env.imm[idx] & U32, env.imm[idx + 1] & U32
    r = _def(st, idx, d, True)
    mark_unknown(r)
    reloc = env.slot_maps.get(idx)
    if reloc is not None:  # an ELF relocation names the map; the instruction itself is still blank
        m, value_off = reloc
        _aux(env, idx).map = m
        mark_known(r, 0)
        r.map = m
        if value_off is None:
            r.type = RegType.CONST_PTR_TO_MAP
        else:
            r.type = RegType.PTR_TO_MAP_VALUE
            r.off = value_off  # the linker's offset: the symbol's value plus the immediate (clang's section-relative addend)
        return
    if s == 0:
        mark_known(r, lo | (hi << 32))
        return
    if s == PSEUDO_FUNC:
        mark_known(r, 0)
        r.type = RegType.PTR_TO_FUNC
        r.off = 0
        r.mem_size = idx + 1 + env.imm[idx]  # the callee's first instruction (the kernel's subprogno)
        return
    if s == PSEUDO_BTF_ID:
        mark_known(r, 0)
        r.type = RegType.PTR_TO_BTF_ID
        return
    if s in (PSEUDO_MAP_FD, PSEUDO_MAP_IDX, PSEUDO_MAP_VALUE, PSEUDO_MAP_IDX_VALUE):
        m = env.maps.get(env.imm[idx])
        if m is None:
            m = MapRef(env.imm[idx])
        _aux(env, idx).map = m
        mark_known(r, 0)
        if s in (PSEUDO_MAP_VALUE, PSEUDO_MAP_IDX_VALUE):
            r.type = RegType.PTR_TO_MAP_VALUE
            r.off = hi
        else:
            r.type = RegType.CONST_PTR_TO_MAP
        r.map = m
        return
    raise _err(idx, "unrecognized bpf_ld_imm64 insn")


def _check_ld_abs(env: _Env, st: State, idx: int) -> None:
    if env.prog_type not in (ProgType.SOCKET_FILTER, ProgType.SCHED_CLS, ProgType.SCHED_ACT):
        raise _err(idx, "BPF_LD_[ABS|IND] instructions not allowed for this program type")
    c = env.code[idx]
    _check_read(env, st, idx, 6, True)
    if st.regs[6].type is not RegType.PTR_TO_CTX:
        raise _err(idx, "at the time of BPF_LD_ABS|IND R6 != pointer to skb")
    if c & 0xE0 == MODE_IND:
        _check_read(env, st, idx, env.src[idx], False)
    for r in range(1, 6):
        mark_not_init(st.regs[r])
    r0 = st.regs[0]
    mark_unknown(r0)
    r0.subreg_def = idx + 1


# --- calls and exit ----------------------------------------------------------------------------


#: The kfuncs returning a slice of a dynptr's memory.
DYNPTR_SLICES = frozenset(("bpf_dynptr_slice", "bpf_dynptr_slice_rdwr"))
#: The `btf_name` of read-only memory (``PTR_TO_MEM | MEM_RDONLY``): a store through it is refused.
RDONLY_MEM = "rdonly"
#: Dynptr kinds over packet data: a slice of one is a ``PTR_TO_MEM`` whose `btf_name` is the kind
#: (the kernel's DYNPTR_TYPE_SKB / DYNPTR_TYPE_XDP flag), invalidated with the packet pointers.
PKT_DYNPTRS = frozenset(("skb", "xdp"))


def _is_pkt_reg(r: Reg) -> bool:
    """``reg_is_pkt_pointer_any`` or ``reg_is_dynptr_slice_pkt``."""
    t = r.type
    return t in PKT_TYPES or t is RegType.PTR_TO_PACKET_END or (
        (t is RegType.PTR_TO_MEM or t is RegType.PTR_TO_MEM_OR_NULL) and r.btf_name in PKT_DYNPTRS)


def _clear_pkt_pointers(st: State) -> None:
    """``clear_all_pkt_pointers``: packet pointers and packet dynptr slices in every frame become unknown
    scalars (``mark_reg_invalid``, privileged)."""
    for f in st.frames:
        for r in f.regs:
            if _is_pkt_reg(r):
                mark_unknown(r)
        for s in f.stack.values():
            if s.spilled is not None and _is_pkt_reg(s.spilled):
                mark_unknown(s.spilled)


def _mem_arg(env: _Env, st: State, idx: int, regno: int, size: int, write: bool, zero_ok: bool,
             raw: bool = False) -> None:
    """A helper reads or writes `size` bytes at register `regno` (check_helper_mem_access); `raw`: memory it only
    fills (MEM_UNINIT), whose stack slots it does not read (``check_stack_range_initialized``'s raw mode)."""
    reg = st.regs[regno]
    t = reg.type
    if size == 0 and zero_ok:
        return
    if t is RegType.PTR_TO_STACK:
        frame = _stack_frame(st, reg)
        if reg.var_off[1] == 0:
            lo = hi = reg.off + s64(reg.var_off[0])
        else:
            lo, hi = reg.off + reg.smin, reg.off + reg.smax
        if lo < -MAX_BPF_STACK or hi + size > 0 or size < 0:
            raise _err(idx, f"invalid {'indirect access to' if not write else 'indirect access to'} stack R{regno} "
                            f"off={lo} size={size}")
        env.max_depth = max(env.max_depth, -lo)
        _subprog_depth(env, frame, -lo)
        end = hi + size
        if not raw:
            mask = 0
            b = lo
            while b < end:  # a slot at a time: slot k holds bytes [-8(k+1), -8k)
                k = (-b - 1) // 8
                mask |= 1 << k
                b = -8 * k
            env.ls.read(st.frames, idx, frame.frameno, mask)
        b = lo
        while b < end:
            k = (-b - 1) // 8
            stop = min(end, -8 * k)
            s = _slot(frame, k)
            if write:
                if s.types[7] == STACK_SPILL:
                    s.spilled = None
                    s.types = _scrub(s.types)
                j_lo, j_hi = -stop - 8 * k, -b - 1 - 8 * k  # the slot's bytes b .. stop - 1
                s.types = s.types[:j_lo] + STACK_MISC * (j_hi - j_lo + 1) + s.types[j_hi + 1:]
            b = stop
        return
    if t in PKT_TYPES:
        off = reg.off
        if reg.range < 0 or off < 0 or off + size > reg.range:
            raise _err(idx, f"invalid access to packet, off={off} size={size}, R{regno}(id={reg.id},off={reg.off},"
                            f"r={reg.range})")
        return
    if t is RegType.PTR_TO_MAP_VALUE:
        limit = reg.map.value_size if reg.map and reg.map.value_size else None
        if limit is not None and (reg.smin + reg.off < 0 or reg.umax + reg.off + size > limit):
            raise _err(idx, f"invalid access to map value, value_size={limit} off={reg.off} size={size}")
        return
    if t is RegType.PTR_TO_MAP_KEY or t is RegType.PTR_TO_MEM or t is RegType.PTR_TO_BTF_ID or t is RegType.PTR_TO_CTX \
            or t is RegType.PTR_TO_BUF or t is RegType.PTR_TO_ARENA or t is RegType.PTR_TO_TP_BUFFER:
        return
    if t is RegType.SCALAR and reg.is_const() and reg.var_off[0] == 0 and zero_ok:
        return
    raise _err(idx, f"R{regno} type={t.value} expected=fp, pkt, pkt_meta, map_key, map_value, mem, ringbuf_mem, "
                    f"buf, trusted_ptr_")


def _proto_for(p: "HelperProto | None", prog_type: ProgType) -> "HelperProto | None":
    """The prototype a program type's func_proto gives where it is not the helper's usual one:
    sk_reuseport's, tracing's and LSM's bpf_get_socket_cookie takes a socket, not the context
    (bpf_get_socket_ptr_cookie_proto)."""
    if p is not None and p.name == "get_socket_cookie" and prog_type in (ProgType.SK_REUSEPORT, ProgType.TRACING,
                                                                         ProgType.LSM):
        return replace(p, args=("ARG_PTR_TO_BTF_ID_SOCK_COMMON",) + p.args[1:])
    if p is not None and p.name == "sk_assign" and prog_type is ProgType.SK_LOOKUP:
        # bpf_sk_lookup_assign_proto: the socket may be NULL (it clears the selection)
        return replace(p, args=(p.args[0], "ARG_PTR_TO_SOCKET_OR_NULL") + p.args[2:])
    return p


#: Map types whose value argument is a socket (resolve_map_arg_type: ARG_PTR_TO_BTF_ID_SOCK_COMMON).
SOCK_MAP_TYPES = frozenset({15, 18})  # BPF_MAP_TYPE_SOCKMAP, BPF_MAP_TYPE_SOCKHASH


# (helper, argument) pairs 6.18's prototypes mark MEM_WRITE where 6.12's have a plain ARG_PTR_TO_MEM (the
# running kernel wins: the bytes written are STACK_MISC after the call, not the zeros before it)
MEM_WRITE_618 = frozenset({("sysctl_get_name", 1)})


def nr_cpu_ids() -> int:
    """The kernel's ``nr_cpu_ids``: one more than the highest possible CPU of this machine
    (/sys/devices/system/cpu/possible, else the CPU count)."""
    global _NR_CPU_IDS
    if _NR_CPU_IDS is None:
        try:
            with open("/sys/devices/system/cpu/possible") as f:
                _NR_CPU_IDS = max(int(part.split("-")[-1]) for part in f.read().strip().split(",")) + 1
        except (OSError, ValueError):
            _NR_CPU_IDS = cpu_count() or 1
    return _NR_CPU_IDS


_NR_CPU_IDS: int | None = None


# Helpers whose result do_refine_retval_range bounds by the size argument (the bytes written, or -errno).
SIZED_RESULT_HELPERS = frozenset({"get_stack", "get_task_stack", "probe_read_str", "probe_read_kernel_str",
                                  "probe_read_user_str"})
MAX_ERRNO = 4095


def _check_call(env: _Env, st: State, idx: int, stack: list) -> int | None:
    s = env.src[idx]
    if s == PSEUDO_CALL:
        return _call_subprog(env, st, idx)
    if s == PSEUDO_KFUNC_CALL:
        return _check_kfunc_call(env, st, idx, stack)
    a = _aux(env, idx)  # a helper call's facts (a subprogram call has none beyond the columns')
    hid = env.imm[idx]
    a.call_helper = hid
    p = _proto_for(proto(hid), env.prog_type)
    if p is None:
        raise _err(idx, f"invalid func unknown#{hid}")
    meta_map: MapRef | None = None
    const_size: int | None = None
    msize_max = 0  # meta->msize_max_value: the size argument's umax
    const_key: int | None = None
    regs = st.regs
    release_id = 0
    new_dynptr: tuple[Reg, str] | None = None
    for i, at in enumerate(p.args):
        regno = i + 1
        if at == "ARG_DONTCARE":
            break
        flags = p.arg_flags[i]
        reg = _check_read(env, st, idx, regno, True)
        t = reg.type
        if at == "ARG_ANYTHING":
            continue
        if at == "ARG_CONST_MAP_PTR":
            if t is not RegType.CONST_PTR_TO_MAP:
                raise _err(idx, f"R{regno} type={t.value} expected=map_ptr")
            meta_map = reg.map
            continue
        if at in ("ARG_PTR_TO_MAP_VALUE", "ARG_PTR_TO_MAP_VALUE_OR_NULL") and meta_map is not None \
                and meta_map.map_type in SOCK_MAP_TYPES:
            if at != "ARG_PTR_TO_MAP_VALUE":
                raise _err(idx, "invalid arg_type for sockmap/sockhash")
            at = "ARG_PTR_TO_BTF_ID_SOCK_COMMON"  # resolve_map_arg_type: a sockmap's value is a socket
        if at in ("ARG_PTR_TO_MAP_KEY", "ARG_PTR_TO_MAP_VALUE", "ARG_PTR_TO_MAP_VALUE_OR_NULL"):
            if at == "ARG_PTR_TO_MAP_VALUE_OR_NULL" and t is RegType.SCALAR and reg.is_const() and reg.var_off[0] == 0:
                continue
            if meta_map is None:
                raise _err(idx, "invalid map_ptr to access map->key")
            size = (meta_map.key_size if at == "ARG_PTR_TO_MAP_KEY" else meta_map.value_size) or 0
            # map_pop/peek_elem write the value (MEM_UNINIT | MEM_WRITE): the bytes become STACK_MISC
            _mem_arg(env, st, idx, regno, size, "MEM_WRITE" in flags or "MEM_UNINIT" in flags, True)
            if at == "ARG_PTR_TO_MAP_KEY" and meta_map.map_type in (2, 6):
                const_key = _constant_map_key(env, st, reg, size)
            continue
        if at in ("ARG_PTR_TO_CTX", "ARG_PTR_TO_CTX_OR_NULL"):
            if t is RegType.SCALAR and at.endswith("OR_NULL") and reg.is_const() and reg.var_off[0] == 0:
                continue
            if t is not RegType.PTR_TO_CTX:
                raise _err(idx, f"R{regno} type={t.value} expected=ctx")
            if reg.off:
                raise _err(idx, f"dereference of modified ctx ptr R{regno} off={reg.off} disallowed")
            continue
        if at in ("ARG_PTR_TO_MEM", "ARG_PTR_TO_UNINIT_MEM", "ARG_PTR_TO_MEM_OR_NULL", "ARG_PTR_TO_FIXED_SIZE_MEM"):
            maybe_null = "PTR_MAYBE_NULL" in flags or at == "ARG_PTR_TO_MEM_OR_NULL"
            if maybe_null and t is RegType.SCALAR and reg.is_const() and reg.var_off[0] == 0:
                continue
            if t is RegType.SCALAR or t in NULLABLE:
                raise _err(idx, f"R{regno} type={t.value} expected=fp, pkt, pkt_meta, map_key, map_value, mem, "
                                f"ringbuf_mem, buf, trusted_ptr_")
            fixed = FIXED_ARG_SIZES.get((p.name, i)) if at == "ARG_PTR_TO_FIXED_SIZE_MEM" else None
            if fixed is not None:  # the proto's argN_size: no size argument follows
                _mem_arg(env, st, idx, regno, fixed, "MEM_WRITE" in flags or "MEM_UNINIT" in flags, False,
                         raw="MEM_UNINIT" in flags)
            # size comes in the next argument; checked there
            continue
        if at in ("ARG_CONST_SIZE", "ARG_CONST_SIZE_OR_ZERO", "ARG_CONST_ALLOC_SIZE_OR_ZERO"):
            if t is not RegType.SCALAR:
                raise _err(idx, f"R{regno} type={t.value} expected=scalar")
            zero_ok = at != "ARG_CONST_SIZE"
            if reg.smin < 0:
                raise _err(idx, f"R{regno} min value is negative, either use unsigned or 'var &= const'")
            if reg.umin == 0 and not zero_ok:
                raise _err(idx, "invalid zero-sized read")
            if reg.umax >= (1 << 29):
                raise _err(idx, f"R{regno} unbounded memory access, use 'var &= const' or 'if (var < const)'")
            const_size = reg.umax if reg.is_const() else None
            msize_max = reg.umax
            _precise_regs(env, st, regno)
            if at == "ARG_CONST_ALLOC_SIZE_OR_ZERO":
                continue
            prev = p.args[i - 1] if i else ""
            if prev in ("ARG_PTR_TO_MEM", "ARG_PTR_TO_UNINIT_MEM", "ARG_PTR_TO_MEM_OR_NULL"):
                pflags = p.arg_flags[i - 1]
                raw = prev == "ARG_PTR_TO_UNINIT_MEM" or "MEM_UNINIT" in pflags
                write = (prev == "ARG_PTR_TO_UNINIT_MEM" or "MEM_WRITE" in pflags or "MEM_UNINIT" in pflags
                         or (p.name, i - 1) in MEM_WRITE_618)
                preg = regs[regno - 1]
                if not (preg.type is RegType.SCALAR and preg.is_const() and preg.var_off[0] == 0):
                    _mem_arg(env, st, idx, regno - 1, reg.umax, write, zero_ok, raw)
            continue
        if at in ("ARG_PTR_TO_STACK_OR_NULL",):
            if t is RegType.SCALAR and reg.is_const() and reg.var_off[0] == 0:
                continue
            if t is not RegType.PTR_TO_STACK:
                raise _err(idx, f"R{regno} type={t.value} expected=fp")
            continue
        if at in ("ARG_PTR_TO_SOCKET", "ARG_PTR_TO_SOCK_COMMON", "ARG_PTR_TO_BTF_ID_SOCK_COMMON", "ARG_PTR_TO_BTF_ID",
                  "ARG_PTR_TO_BTF_ID_OR_NULL", "ARG_PTR_TO_SOCKET_OR_NULL"):
            if at.endswith("OR_NULL") and t is RegType.SCALAR and reg.is_const() and reg.var_off[0] == 0:
                continue
            if t not in SOCKISH and t is not RegType.PTR_TO_CTX:
                raise _err(idx, f"R{regno} type={t.value} expected=sock_common, sock, tcp_sock, xdp_sock, ptr_")
            if "OBJ_RELEASE" in flags:
                release_id = reg.ref_obj_id
            continue
        if at == "ARG_PTR_TO_DYNPTR":
            if "MEM_UNINIT" in flags:
                kind = next((f[len("DYNPTR_TYPE_"):].lower() for f in flags if f.startswith("DYNPTR_TYPE_")), "local")
                new_dynptr = (reg.copy(), kind)
            elif "OBJ_RELEASE" in flags:
                d = _dynptr_slot(st, reg)
                if d is not None and d.spilled is not None and d.spilled.ref_obj_id:
                    release_id = d.spilled.ref_obj_id
                else:
                    raise _err(idx, "arg 1 is an unacquired reference")
            continue
        if "OBJ_RELEASE" in flags:
            release_id = reg.ref_obj_id
        if t is RegType.NOT_INIT:
            raise _err(idx, f"R{regno} !read_ok")
    if meta_map is not None and a.map is not None and a.map != meta_map:
        a.extra["map_poisoned"] = True  # record_func_map: the call site sees two maps (the kernel inlines nothing)
    a.map = meta_map if meta_map is not None else a.map
    if p.name == "loop":
        _loop_inline_state(a, regs[2], regs[4])
    if p.name in CALLBACK_HELPERS:
        _push_callback(env, st, idx, stack, p.name, meta_map)
    if release_id:
        _release(st, release_id)
    elif p.releases is not None:
        r = regs[p.releases + 1]
        if r.ref_obj_id:
            _release(st, r.ref_obj_id)
        elif r.type is not RegType.SCALAR:
            raise _err(idx, f"R{p.releases + 1} must be referenced when passed to release function")
    regs_arg1_ref = regs[1].ref_obj_id
    xchg = regs[1]
    xchg_field = _kptr_field(xchg.map, xchg.off + s64(xchg.var_off[0])) if p.name == "kptr_xchg" \
        and xchg.type is RegType.PTR_TO_MAP_VALUE and xchg.map is not None and not xchg.var_off[1] else None
    r0 = _clobber_caller_saved(regs)  # a tail call that fails falls through the same way
    ret = p.ret
    if ret == "RET_VOID":
        mark_not_init(r0)
    elif ret == "RET_INTEGER" and p.name in SIZED_RESULT_HELPERS:
        # do_refine_retval_range: at most the buffer's size, or a negative errno
        r0.smin, r0.s32min = -MAX_ERRNO, -MAX_ERRNO
        r0.smax = r0.s32max = msize_max
        reg_bounds_sync(r0)
    elif ret == "RET_INTEGER" and p.name == "get_smp_processor_id":
        # do_refine_retval_range: a CPU number, below nr_cpu_ids (this machine's possible CPUs)
        r0.smin = r0.umin = r0.s32min = r0.u32min = 0
        r0.smax = r0.umax = r0.s32max = r0.u32max = nr_cpu_ids() - 1
        reg_bounds_sync(r0)
    elif ret in ("RET_PTR_TO_MAP_VALUE_OR_NULL", "RET_PTR_TO_MAP_VALUE"):
        mark_known(r0, 0)
        r0.type = RegType.PTR_TO_MAP_VALUE_OR_NULL if "OR_NULL" in ret else RegType.PTR_TO_MAP_VALUE
        r0.map = meta_map
        if "OR_NULL" in ret and const_key is not None and meta_map is not None and meta_map.max_entries is not None \
                and 0 <= const_key < meta_map.max_entries:
            r0.type = RegType.PTR_TO_MAP_VALUE  # an in-bounds constant key of an array: never NULL (6.14+)
        elif "OR_NULL" in ret:
            r0.id = _new_id(env)
    elif ret in ("RET_PTR_TO_SOCKET_OR_NULL", "RET_PTR_TO_TCP_SOCK_OR_NULL", "RET_PTR_TO_SOCK_COMMON_OR_NULL"):
        mark_known(r0, 0)
        r0.type = {"RET_PTR_TO_SOCKET_OR_NULL": RegType.PTR_TO_SOCKET_OR_NULL,
                   "RET_PTR_TO_TCP_SOCK_OR_NULL": RegType.PTR_TO_TCP_SOCK_OR_NULL,
                   "RET_PTR_TO_SOCK_COMMON_OR_NULL": RegType.PTR_TO_SOCK_COMMON_OR_NULL}[ret]
        r0.id = _new_id(env)
    elif ret in ("RET_PTR_TO_RINGBUF_MEM_OR_NULL", "RET_PTR_TO_DYNPTR_MEM_OR_NULL", "RET_PTR_TO_MEM_OR_BTF_ID",
                 "RET_PTR_TO_ALLOC_MEM_OR_NULL"):
        mark_known(r0, 0)
        r0.type = RegType.PTR_TO_MEM_OR_NULL if ret != "RET_PTR_TO_MEM_OR_BTF_ID" else RegType.PTR_TO_MEM
        r0.mem_size = const_size or 0
        if r0.type is RegType.PTR_TO_MEM_OR_NULL:
            r0.id = _new_id(env)
    elif ret in ("RET_PTR_TO_BTF_ID_OR_NULL", "RET_PTR_TO_BTF_ID", "RET_PTR_TO_BTF_ID_TRUSTED"):
        mark_known(r0, 0)
        r0.type = RegType.PTR_TO_BTF_ID
        if ret == "RET_PTR_TO_BTF_ID_OR_NULL":
            r0.type = RegType.PTR_TO_BTF_ID_OR_NULL
            r0.id = _new_id(env)
    if p.name in PTR_CAST_HELPERS and regs_arg1_ref:
        r0.ref_obj_id = regs_arg1_ref  # a cast of a referenced socket shares its reference
    if p.name == "spin_unlock":
        _invalidate_non_owning_refs(env, st)
    if (p.acquires or (p.name == "map_lookup_elem" and meta_map is not None and meta_map.map_type in (15, 18))) \
            and r0.type is not RegType.SCALAR:
        rid = _new_id(env)
        r0.ref_obj_id = rid
        st.refs.append(rid)
        r0.id = rid  # acquired: id == ref_obj_id, so its NULL check releases the reference
    if p.changes_pkt_data:
        _clear_pkt_pointers(st)
    if new_dynptr is not None:
        ref = 0
        if new_dynptr[1] == "ringbuf":
            ref = _new_id(env)
            st.refs.append(ref)
        _make_dynptr(env, st, idx, new_dynptr[0], new_dynptr[1], ref)
    if p.name in RET_BTF_NAMES and r0.type in (RegType.PTR_TO_BTF_ID, RegType.PTR_TO_BTF_ID_OR_NULL):
        r0.btf_name = RET_BTF_NAMES[p.name]
    if xchg_field is not None and r0.type is RegType.PTR_TO_BTF_ID_OR_NULL:
        r0.btf_name = xchg_field[2]  # the old pointer of the map value's kptr field, its reference now ours
    return idx + 1


# ARG_PTR_TO_FIXED_SIZE_MEM arguments' sizes (the protos' argN_size), by (helper, 0-based argument):
# bpf_check_mtu writes the MTU into a u32, bpf_strtol / strtoul / kallsyms_lookup_name a 64-bit result.
FIXED_ARG_SIZES = {("check_mtu", 2): 4, ("strtol", 3): 8, ("strtoul", 3): 8, ("kallsyms_lookup_name", 3): 8,
                   ("tcp_raw_gen_syncookie_ipv4", 0): 20, ("tcp_raw_gen_syncookie_ipv6", 0): 40,
                   ("tcp_raw_check_syncookie_ipv4", 0): 20, ("tcp_raw_check_syncookie_ipv4", 1): 20,
                   ("tcp_raw_check_syncookie_ipv6", 0): 40, ("tcp_raw_check_syncookie_ipv6", 1): 20}


# The struct a helper returning RET_PTR_TO_BTF_ID* points to (its proto's ret_btf_id).
RET_BTF_NAMES = {
    "skc_to_tcp_sock": "tcp_sock", "skc_to_tcp6_sock": "tcp6_sock", "skc_to_udp6_sock": "udp6_sock",
    "skc_to_tcp_timewait_sock": "tcp_timewait_sock", "skc_to_tcp_request_sock": "tcp_request_sock",
    "skc_to_unix_sock": "unix_sock", "skc_to_mptcp_sock": "mptcp_sock", "get_current_task_btf": "task_struct",
    "task_pt_regs": "pt_regs", "sock_from_file": "socket",
}

# Helpers that call a subprogram: the callback's argument position (0-based), its return range, and
# whether it runs later on its own (async: a timer callback sees none of the caller's frames).
CALLBACK_HELPERS = {
    "loop": (1, (0, 1), False), "for_each_map_elem": (1, (0, 1), False), "find_vma": (2, (0, 1), False),
    "user_ringbuf_drain": (1, (0, 1), False), "timer_set_callback": (1, (0, 0), True),
}
CALLBACK_RANGES = {name: rng for name, (_, rng, _) in CALLBACK_HELPERS.items()}
SYNC_CALLBACK_HELPERS = frozenset(name for name, (_, _, is_async) in CALLBACK_HELPERS.items() if not is_async)
STACK_DYNPTR, STACK_ITER = "d", "i"

def _const_stack_slot(st: State, ptr: Reg) -> tuple[Frame, int] | None:
    """The frame and slot (``spi``) a stack pointer at a constant offset points into, None for any other
    register (a dynptr's or an iterator's argument must be one)."""
    if ptr.type is not RegType.PTR_TO_STACK or ptr.var_off[1]:
        return None
    return _stack_frame(st, ptr), (-(ptr.off + s64(ptr.var_off[0])) - 1) // 8


def _iter_slot(st: State, ptr: Reg) -> tuple[Frame, int] | None:
    """The frame and first slot of the iterator `ptr` points at (``iter_get_spi``), None when it points
    at no initialized iterator."""
    at = _const_stack_slot(st, ptr)
    s = at[0].stack.get(at[1]) if at is not None else None
    if s is None or s.types[0] != STACK_ITER or s.spilled is None or not s.spilled.ref_obj_id:
        return None
    return at


def _loop_inline_state(a: InsnAux, fn: Reg, flags: Reg) -> None:
    """update_loop_inline_state: a bpf_loop call is inlined when every path passes flags 0 and one callback."""
    fit = flags.type is RegType.SCALAR and flags.is_const() and flags.var_off[0] == 0 and fn.type is RegType.PTR_TO_FUNC
    cb = fn.mem_size if fit else -1
    a.loop_callback = cb if a.loop_callback in (None, cb) else -1


def _push_callback(env: _Env, st: State, idx: int, stack: list, name: str, meta_map: MapRef | None) -> None:
    """``push_callback_call``: the callback subprogram is verified as called from here with its arguments
    (``set_*_callback_state``); the caller goes on after the helper (the callback not run again).  A sync
    callback's path returns to the call (`_check_exit`), which runs it again until that converges; an
    async one's path ends at its exit."""
    argno, _, is_async = CALLBACK_HELPERS[name]
    env.ls.callback_sites.add(idx)
    regs = st.regs
    fn = regs[argno + 1]
    if fn.type is not RegType.PTR_TO_FUNC:
        raise _err(idx, f"R{argno + 1} type={fn.type.value} expected=func")
    target = fn.mem_size
    if is_async:
        cb = State([Frame(0, idx, target)])
    else:
        if name == "loop":
            _precise_regs(env, st, 1)  # the iteration bound
            if st.cur.callback_depth >= regs[1].umax:
                st.cur.callback_depth = 0  # bpf_loop's iterations are all verified
                return
        # the caller keeps its registers: back at the call after the callback, it is checked again
        cb = st.copy()
        cb.cur.callback_depth += 1
        st.cur.callback_depth = 0
        cb.frames.append(Frame(len(cb.frames), idx, target))
    callee = cb.frames[-1]
    callee.regs[10] = Reg.pointer(RegType.PTR_TO_STACK, frameno=callee.frameno)
    cr = callee.regs
    if name == "loop":
        cr[1] = Reg.unknown()
        cr[2] = regs[3].copy()
    elif name in ("for_each_map_elem", "timer_set_callback"):
        m = meta_map if name == "for_each_map_elem" else regs[1].map
        cr[1] = Reg.pointer(RegType.CONST_PTR_TO_MAP, map=m)
        cr[2] = Reg.pointer(RegType.PTR_TO_MAP_KEY, map=m)
        cr[3] = Reg.pointer(RegType.PTR_TO_MAP_VALUE, map=m)
        if name == "for_each_map_elem":
            cr[4] = regs[3].copy()
    elif name == "find_vma":
        cr[1] = regs[1].copy()
        cr[2] = Reg.pointer(RegType.PTR_TO_BTF_ID, btf_name="vm_area_struct")
        cr[3] = regs[4].copy()
    elif name == "user_ringbuf_drain":
        cr[1] = Reg.unknown()  # a const dynptr: not modelled
        cr[2] = regs[3].copy()
    stack.append((cb, target, idx))


def _callback_exit(env: _Env, st: State, idx: int) -> None:
    """A callback returns (``prepare_func_exit`` in_callback_fn): R0 a scalar in the helper's range."""
    callee = st.frames[-1]
    r0 = st.regs[0]
    if r0.type is not RegType.SCALAR:
        raise _err(idx, "R0 not a scalar value")
    name = ""
    p = proto(env.imm[callee.callsite]) if env.src[callee.callsite] == 0 else None
    if p is not None:
        name = p.name
    lo, hi = CALLBACK_RANGES.get(name, (0, 1))
    if r0.smin < lo or r0.smax > hi:
        what = "At async callback return" if len(st.frames) == 1 else "At callback return"
        raise _err(idx, f"{what} the register R0 has {format_reg(r0)} should have been in [{lo}, {hi}]")
    if len(st.frames) == 1 and st.refs:
        raise _err(idx, f"Unreleased reference id={st.refs[0]} alloc_insn=?")


def _dynptr_slot(st: State, reg: Reg) -> Slot | None:
    """The stack slot holding the dynptr `reg` points to (None if it holds none)."""
    at = _const_stack_slot(st, reg)
    s = at[0].stack.get(at[1]) if at is not None else None
    return s if s is not None and s.types[0] == STACK_DYNPTR else None


def _make_dynptr(env: _Env, st: State, idx: int, ptr: Reg, kind: str, ref: int) -> None:
    """``mark_stack_slots_dynptr``: the 16 bytes at `ptr` hold a dynptr of `kind` (ref: its reference)."""
    if ptr.type is not RegType.PTR_TO_STACK or ptr.var_off[1]:
        raise _err(idx, "dynptr has to be at a constant offset")
    off = ptr.off + s64(ptr.var_off[0])
    if off % 8 or off < -MAX_BPF_STACK or off + 16 > 0:
        raise _err(idx, f"cannot pass in dynptr at an offset={off}")
    frame = _stack_frame(st, ptr)
    env.max_depth = max(env.max_depth, -off)
    _subprog_depth(env, frame, -off)  # process_dynptr_func writes the slots through check_mem_access
    info = Reg(RegType.SCALAR)
    info.id = _new_id(env)
    info.ref_obj_id = ref
    info.btf_name = kind
    k = (-off - 1) // 8
    frame.stack[k] = Slot(STACK_DYNPTR * 8, info)
    frame.stack[k - 1] = Slot(STACK_DYNPTR * 8, None)
    env.ls.write(frame.frameno, 3 << (k - 1))


def _stack_object(env: _Env, st: State, idx: int, ptr: Reg, nslots: int, kind: str, ref: int) -> None:
    """Mark `nslots` stack slots at `ptr` as an iterator (``mark_stack_slots_iter``)."""
    if ptr.type is not RegType.PTR_TO_STACK or ptr.var_off[1]:
        raise _err(idx, "expected an initialized iter as arg")
    off = ptr.off + s64(ptr.var_off[0])
    frame = _stack_frame(st, ptr)
    env.max_depth = max(env.max_depth, -off)
    _subprog_depth(env, frame, -off)  # process_iter_arg writes the slots through check_mem_access
    info = iter_reg(kind, ref, ITER_ACTIVE, 0)
    k = (-off - 1) // 8
    for j in range(nslots):
        frame.stack[k - j] = Slot(STACK_ITER * 8, info if j == 0 else None)
        env.ls.write(frame.frameno, 1 << (k - j))


# check_kfunc_call: kfuncs whose result the kernel types by the call, not by the BTF prototype.
KERN_CTX = {ProgType.XDP: "xdp_buff", ProgType.SCHED_CLS: "sk_buff", ProgType.SCHED_ACT: "sk_buff",
            ProgType.SOCKET_FILTER: "sk_buff", ProgType.CGROUP_SKB: "sk_buff", ProgType.LWT_IN: "sk_buff",
            ProgType.LWT_OUT: "sk_buff", ProgType.LWT_XMIT: "sk_buff", ProgType.SK_SKB: "sk_buff"}


# kfuncs that move an owned node (their second argument) into a list or rbtree.
GRAPH_INSERT = frozenset({"bpf_rbtree_add_impl", "bpf_list_push_front_impl", "bpf_list_push_back_impl"})


#: kfuncs returning a node of the list head / rbtree root in R1 (mark_reg_graph_node; 6.18 adds the
#: list's front / back and the rbtree's root / left / right).
GRAPH_TAKE = frozenset({"bpf_list_pop_front", "bpf_list_pop_back", "bpf_list_front", "bpf_list_back",
                        "bpf_rbtree_first", "bpf_rbtree_remove", "bpf_rbtree_root", "bpf_rbtree_left",
                        "bpf_rbtree_right"})


def _graph_root(head: Reg) -> tuple[int, str, int] | None:
    """The list head / rbtree root a map-value pointer points at (`MapRef.graph_roots`), or None."""
    if head.type is not RegType.PTR_TO_MAP_VALUE or head.map is None or head.var_off[1]:
        return None
    at = head.off + s64(head.var_off[0])
    return next((g for g in head.map.graph_roots if g[0] == at), None)


def _invalidate_non_owning_refs(env: _Env, st: State) -> None:
    """``invalidate_non_owning_refs`` at bpf_spin_unlock: pointers to program-allocated objects the
    program does not own (a node handed to a collection; not a kernel struct, no reference held) become
    unknown scalars (mark_reg_invalid with pointer leaks allowed)."""
    kt = _kernel_types(env)
    local: dict[str, bool] = {}
    for f in st.frames:
        for r in f.regs + [s.spilled for s in f.stack.values() if s.spilled is not None]:
            if r.type not in (RegType.PTR_TO_BTF_ID, RegType.PTR_TO_BTF_ID_OR_NULL) or r.ref_obj_id:
                continue
            if r.btf_name not in local:  # unnamed: bpf_obj_new's type is the program's, which we are not given
                local[r.btf_name] = not r.btf_name or (kt is not None and kt.member(r.btf_name, 0, 0) is None)
            if local[r.btf_name]:
                mark_unknown(r)


def _push_rbtree_less(env: _Env, st: State, idx: int, stack: list) -> None:
    """``push_callback_call`` with ``set_rbtree_add_callback_state``: the ``less`` callback (R3) is verified
    as called from here, before the node changes hands, with R1 and R2 non-owning pointers to the node
    being added (the kernel's rcu_ptr_<node struct>(non_own_ref)); it returns 0 or 1."""
    fn = st.regs[3]
    if fn.type is not RegType.PTR_TO_FUNC:
        raise _err(idx, f"R3 type={fn.type.value} expected=func")
    env.callback_sites.add(idx)
    env.force_checkpoint[idx] = True
    cb = st.copy()
    callee = Frame(len(cb.frames), idx, fn.mem_size)
    cb.frames.append(callee)
    for r in (1, 2):
        node = st.regs[2].copy()
        node.ref_obj_id = node.id = 0
        callee.regs[r] = node
    callee.regs[10] = Reg.pointer(RegType.PTR_TO_STACK, frameno=callee.frameno)
    stack.append((cb, fn.mem_size, idx))


def _check_kfunc_call(env: _Env, st: State, idx: int, stack: list) -> int | None:
    """A kfunc call, as far as its BTF prototype and KF_* flags tell (``check_kfunc_call``)."""
    regs = st.regs
    kt = _kernel_types(env) if env.off[idx] == 0 else None  # off != 0: a module's BTF, not read
    kp = kt.kfunc(env.imm[idx]) if kt is not None else None
    if kp is None:
        _clobber_caller_saved(regs)
        return idx + 1
    _aux(env, idx).extra["kfunc"] = kp.name
    if kp.name == "bpf_throw":
        return None  # an exception: the program ends here (its exception callback is not modelled)
    release_id = 0
    # is_kfunc_ret_null: refcount_acquire of an owning reference cannot fail
    ret_null = kp.ret_null and not (kp.name == "bpf_refcount_acquire_impl" and regs[1].ref_obj_id)
    new_dynptr: tuple[Reg, str, int] | None = None
    iter_op: tuple[str, Reg, str] | None = None
    iter_arg = 0
    slice_kind = ""
    mem_size = 0
    args = kp.args[:5]
    for i, arg in enumerate(args):
        regno = i + 1
        reg = regs[regno]
        if reg.type is RegType.NOT_INIT:
            raise _err(idx, f"R{regno} !read_ok")
        _check_read(env, st, idx, regno, True)
        kind = arg.kind
        if kind == "dynptr":
            if arg.name.endswith("__uninit"):
                src = _dynptr_slot(st, regs[1]) if kp.name == "bpf_dynptr_clone" else None
                dkind = (src.spilled.btf_name if src is not None and src.spilled is not None else
                         "skb" if "skb" in kp.name else "xdp" if "xdp" in kp.name else "local")
                ref = src.spilled.ref_obj_id if src is not None and src.spilled is not None else 0
                new_dynptr = (reg.copy(), dkind, ref)
            elif kp.name in DYNPTR_SLICES:
                d = _dynptr_slot(st, reg)
                slice_kind = d.spilled.btf_name if d is not None and d.spilled is not None else ""
        elif kind.startswith("iter:"):
            iter_arg = i
            if "KF_ITER_NEW" in kp.flags:
                iter_op = ("new", reg.copy(), kind[5:])
            elif "KF_ITER_DESTROY" in kp.flags:
                iter_op = ("destroy", reg.copy(), kind[5:])
            elif "KF_ITER_NEXT" in kp.flags:
                iter_op = ("next", reg.copy(), kind[5:])
        elif arg.name.endswith(("__sz", "__szk")) and reg.is_const():
            mem_size = reg.const_value()
        if kp.releases and not release_id and reg.ref_obj_id:
            release_id = reg.ref_obj_id
    if kp.name == "bpf_rbtree_add_impl":
        _push_rbtree_less(env, st, idx, stack)
    iter_ref = 0  # process_iter_arg's meta->ref_obj_id: the iterator's reference (next's result holds it)
    iter_at: tuple[Frame, int] | None = None
    if iter_op is not None and iter_op[0] in ("destroy", "next"):
        iter_at = _iter_slot(st, iter_op[1])
        if iter_at is None or iter_at[0].stack[iter_at[1]].spilled.btf_name != iter_op[2]:
            raise _err(idx, f"expected an initialized iter_{iter_op[2]} as arg #{iter_arg}")
        iter_ref = iter_at[0].stack[iter_at[1]].spilled.ref_obj_id
        if iter_op[0] == "destroy":
            release_id = iter_ref
            iter_at[0].stack[iter_at[1]] = Slot()  # unmark_stack_slots_iter: the slot is invalid again
    if kp.name in GRAPH_INSERT:
        _aux(env, idx).insert_off = regs[2].off
    elif kp.name.endswith("obj_new_impl") and regs[1].is_const():
        _aux(env, idx).local_type_id = regs[1].const_value()
    if release_id:
        _release(st, release_id)
    if kp.name in GRAPH_INSERT and regs[2].ref_obj_id:
        # ref_convert_owning_non_owning: the collection owns the node now; the program keeps a
        # non-owning pointer to it (usable, nothing to release)
        owned = regs[2].ref_obj_id
        if owned in st.refs:
            st.refs.remove(owned)
        for f in st.frames:
            for r in f.regs + [s.spilled for s in f.stack.values() if s.spilled is not None]:
                if r.ref_obj_id == owned:
                    r.ref_obj_id = 0
    node = regs[2].copy() if kp.name == "bpf_rbtree_remove" else None
    cast_to = _cast_struct(env, regs[2]) if kp.name == "bpf_rdonly_cast" else ""
    root = _graph_root(regs[1]) if kp.name in GRAPH_TAKE else None
    r0 = _clobber_caller_saved(regs)
    ret = kp.ret
    name = kp.name
    if name == "bpf_rdonly_cast" or name == "bpf_cast_to_kern_ctx":
        mark_known(r0, 0)
        r0.type = RegType.PTR_TO_BTF_ID
        r0.btf_name = KERN_CTX.get(env.prog_type, "") if name == "bpf_cast_to_kern_ctx" else cast_to
    elif ret == "void":
        mark_not_init(r0)
    elif ret.startswith("ptr:") or ret.startswith("mem") or name in ("bpf_obj_new_impl", "bpf_percpu_obj_new_impl"):
        mark_known(r0, 0)
        if ret.startswith("ptr:") or name.endswith("obj_new_impl") or name.startswith("bpf_refcount_acquire"):
            r0.type = RegType.PTR_TO_BTF_ID_OR_NULL if ret_null else RegType.PTR_TO_BTF_ID
            r0.btf_name = kp.ret_struct
        else:
            r0.type = RegType.PTR_TO_MEM_OR_NULL if ret_null else RegType.PTR_TO_MEM
            size = ret[4:]
            r0.mem_size = mem_size or (int(size) if size.isdigit() else 0)
            if slice_kind in PKT_DYNPTRS:
                r0.btf_name = slice_kind  # PTR_TO_MEM | DYNPTR_TYPE_SKB/XDP: packet memory (not printed)
            elif not mem_size and size.isdigit() and name not in DYNPTR_SLICES:
                # a pointer to a sized non-struct type (bpf_iter_num_next's int *): the pointee's size from
                # BTF, read-only (check_kfunc_call's r0_rdonly: PTR_TO_MEM | MEM_RDONLY)
                r0.btf_name = RDONLY_MEM
            if iter_ref:
                r0.ref_obj_id = iter_ref  # gone with the iterator (destroy releases it)
        if ret_null:
            r0.id = _new_id(env)
    if node is not None and node.type is RegType.PTR_TO_BTF_ID:
        # mark_reg_graph_node: the removed node comes back as its containing object, at the node's offset
        r0.btf_name, r0.off = node.btf_name, node.off
    if root is not None and r0.type in (RegType.PTR_TO_BTF_ID, RegType.PTR_TO_BTF_ID_OR_NULL):
        r0.off = root[2]  # mark_reg_graph_node: at the node's offset in the struct the head / root contains
    if kp.acquires and r0.type is not RegType.SCALAR and r0.type is not RegType.NOT_INIT:
        rid = _new_id(env)
        r0.ref_obj_id = rid
        st.refs.append(rid)
        r0.id = rid  # acquired: id == ref_obj_id, so its NULL check releases the reference
    if new_dynptr is not None:
        _make_dynptr(env, st, idx, new_dynptr[0], new_dynptr[1], new_dynptr[2])
    if iter_op is not None and iter_op[0] == "new":
        at = _const_stack_slot(st, iter_op[1])
        s = at[0].stack.get(at[1]) if at is not None else None
        if s is not None and STACK_ITER in s.types:  # is_iter_reg_valid_uninit
            raise _err(idx, f"expected uninitialized iter_{iter_op[2]} as arg #{iter_arg}")
        ref = _new_id(env)
        st.refs.append(ref)
        _stack_object(env, st, idx, iter_op[1], 1, iter_op[2], ref)
    if iter_op is not None and iter_op[0] == "next" and iter_at is not None:
        env.iter_next_sites.add(idx)
        _iter_next(env, st, idx, stack, iter_at)
    return idx + 1


def _iter_next(env: _Env, st: State, idx: int, stack: list, at: tuple[Frame, int]) -> None:
    """``process_iter_next_call``: an active iterator forks.  The state where it gave an element (R0 not
    NULL, the iterator one iteration deeper, its imprecise scalars widened against this path's state at
    the previous visit of this call: ``find_prev_entry``, ``widen_imprecise_scalars``) is queued; this
    path goes on with the iterator drained and R0 = 0.  A drained iterator stays drained and gives NULL."""
    frame, k = at
    info = frame.stack[k].spilled
    if iter_state(info) == ITER_ACTIVE:
        active = st.copy()
        fa = active.frames[frame.frameno]
        fa.stack[k] = Slot(STACK_ITER * 8, iter_reg(info.btf_name, info.ref_obj_id, ITER_ACTIVE,
                                                      iter_depth(info) + 1))
        prev = _prev_entry(env, st, idx)
        if prev is not None:
            _widen_imprecise_scalars(prev, active)
        a0 = active.regs[0]
        if a0.type in NULLABLE:
            a0.type = NULLABLE[a0.type]  # mark_ptr_not_null_reg: the element keeps its id
        if a0.type is RegType.PTR_TO_BTF_ID and "KF_RCU_PROTECTED" not in kfunc_flags(f"bpf_iter_{info.btf_name}_new"):
            mark_btf_trusted(a0)  # check_kfunc_call: an element of an iterator not under RCU is PTR_TRUSTED
        stack.append((active, idx + 1, idx))
    frame.stack[k] = Slot(STACK_ITER * 8, iter_reg(info.btf_name, info.ref_obj_id, ITER_DRAINED, iter_depth(info)))
    r0 = st.regs[0]
    mark_unknown(r0)
    mark_known(r0, 0)


def _cast_struct(env: _Env, type_reg: Reg) -> str:
    """The kernel struct ``bpf_rdonly_cast(obj, btf_id)`` casts to: the name of BTF type `type_reg` holds ("": not a
    constant naming a struct, or kernel types without names)."""
    kt = _kernel_types(env)
    if kt is None or not type_reg.is_const() or not hasattr(kt, "struct_name"):
        return ""
    return kt.struct_name(type_reg.const_value()) or ""


def _constant_map_key(env: _Env, st: State, key: Reg, key_size: int) -> int | None:
    """``get_constant_map_key``: the value of a map key on the stack when it is a known constant."""
    if key.type is not RegType.PTR_TO_STACK or key.var_off[1] or key_size == 0:
        return None
    stack_off = key.off + s64(key.var_off[0])
    slot = -stack_off - 1
    k, off = slot // 8, slot % 8
    s = _stack_frame(st, key).stack.get(k)
    if s is None:
        return None
    zero = 0
    i = off
    while i >= 0 and s.types[i] == STACK_ZERO:
        zero += 1
        i -= 1
    if zero >= key_size:
        return 0
    if s.types[7] != STACK_SPILL or s.spilled is None or s.spilled.type is not RegType.SCALAR:
        return None
    spill = 0
    i = off
    while i >= 0 and s.types[i] == STACK_SPILL:
        spill += 1
        i -= 1
    if spill != key_size or s.spilled.var_off[1]:
        return None
    _mark_precise(env, st, {("s", key.frameno, k)})
    return s.spilled.var_off[0]


# is_ptr_cast_function: helpers returning the socket they were given, seen as another type.
PTR_CAST_HELPERS = frozenset({"tcp_sock", "sk_fullsock", "skc_to_tcp_sock", "skc_to_tcp6_sock", "skc_to_udp6_sock",
                              "skc_to_mptcp_sock", "skc_to_tcp_timewait_sock", "skc_to_tcp_request_sock",
                              "skc_to_unix_sock"})


def _release(st: State, ref_id: int) -> None:
    if ref_id in st.refs:
        st.refs.remove(ref_id)
    for f in st.frames:
        for r in f.regs:
            if r.ref_obj_id == ref_id:
                mark_unknown(r)
        for s in f.stack.values():
            if s.spilled is not None and s.spilled.ref_obj_id == ref_id:
                mark_unknown(s.spilled)


def _call_subprog(env: _Env, st: State, idx: int) -> int:
    target = idx + 1 + env.imm[idx]
    if target < 0 or target >= env.n:
        raise _err(idx, f"function calls to {target} out of range")
    g = env.funcs.get(target)
    if g is not None and g.is_global:
        return _call_global(env, st, idx, g)
    if len(st.frames) >= MAX_CALL_FRAMES:
        raise _err(idx, f"the call stack of {len(st.frames)} frames is too deep !")
    caller = st.cur
    callee = Frame(len(st.frames), idx, target)
    for r in range(1, 6):
        if caller.regs[r].type is not RegType.NOT_INIT:
            callee.regs[r] = caller.regs[r].copy()
    callee.regs[10] = Reg.pointer(RegType.PTR_TO_STACK, frameno=callee.frameno)
    for r in range(0, 6):
        mark_not_init(caller.regs[r])
    st.frames.append(callee)
    return target


def _func_number(env: _Env, start: int) -> int:
    """The subprogram's number (func#N in the kernel's messages)."""
    starts = env.subprog_starts
    i = bisect_left(starts, start)
    return i if i < len(starts) and starts[i] == start else 0


def _call_global(env: _Env, st: State, idx: int, g: SubprogFunc) -> int:
    """``check_func_call`` of a global subprogram: the caller's registers must match the BTF arguments
    (``btf_check_func_arg_match``); the subprogram is verified later on its own, and the caller goes on
    with r1-r5 cleared and R0 an unknown 64-bit scalar."""
    if g.error:
        raise _err(idx, g.error)
    what = f"Caller passes invalid args into func#{_func_number(env, g.start)} ('{g.name}')"
    regs = st.regs
    for i, arg in enumerate(g.args[:5]):
        regno = i + 1
        reg = regs[regno]
        t = reg.type
        if arg.kind is ArgKind.SCALAR:
            ok = t is RegType.SCALAR
        elif arg.kind is ArgKind.CTX:
            ok = t is RegType.PTR_TO_CTX and reg.off == 0 and reg.var_off == (0, 0)
        elif arg.kind is ArgKind.ARENA:
            ok = t is RegType.SCALAR or t is RegType.PTR_TO_ARENA
        elif t is RegType.SCALAR and reg.is_const() and reg.var_off[0] == 0:
            ok = True  # register_is_null: NULL may be passed for any pointer argument
        elif arg.kind is ArgKind.MEM:
            ok = t not in NULLABLE or arg.nullable
            if ok and t is not RegType.NOT_INIT:
                probe = st.copy()
                r = probe.regs[regno]
                r.type = NULLABLE.get(r.type, r.type)
                _mem_arg(env, probe, idx, regno, arg.size, False, True)
                if r.type is RegType.PTR_TO_STACK:
                    _clobber_stack_spills(st, reg, arg.size)
            else:
                ok = False
        elif arg.kind is ArgKind.BTF_ID:
            ok = t is RegType.PTR_TO_BTF_ID or (arg.nullable and t is RegType.PTR_TO_BTF_ID_OR_NULL)
        else:
            ok = t is RegType.PTR_TO_STACK
        if not ok:
            raise _err(idx, what)
    if g.start not in env.globals_called:
        env.globals_called.append(g.start)
    _clobber_caller_saved(regs)
    return idx + 1


def _clobber_stack_spills(st: State, reg: Reg, size: int) -> None:
    """``check_stack_range_initialized`` for a write (clobber): spilled registers in the range become
    unknown bytes (scrub_spilled_slot keeps STACK_ZERO, everything else becomes STACK_MISC)."""
    frame = _stack_frame(st, reg)
    lo = reg.off + (s64(reg.var_off[0]) if reg.var_off[1] == 0 else reg.smin)
    hi = reg.off + (s64(reg.var_off[0]) if reg.var_off[1] == 0 else reg.smax) + size
    for k in {(-b - 1) // 8 for b in range(lo, hi)}:
        s = frame.stack.get(k)
        if s is not None and s.types[7] == STACK_SPILL:
            s.spilled = None
            s.types = "".join(c if c == STACK_ZERO else STACK_MISC for c in s.types)


def _global_entry(env: _Env, g: SubprogFunc) -> State:
    """``do_check_common`` of a global subprogram: frame 0 starts at it, r1-r5 from its BTF arguments."""
    f = Frame(0, -1, g.start)
    for i, arg in enumerate(g.args[:5]):
        if arg.kind is ArgKind.CTX:
            r = Reg.pointer(RegType.PTR_TO_CTX)
        elif arg.kind is ArgKind.MEM:
            r = Reg.pointer(RegType.PTR_TO_MEM_OR_NULL if arg.nullable else RegType.PTR_TO_MEM, mem_size=arg.size,
                            id=_new_id(env))
        elif arg.kind is ArgKind.BTF_ID:
            r = Reg.pointer(RegType.PTR_TO_BTF_ID_OR_NULL if arg.nullable else RegType.PTR_TO_BTF_ID,
                            btf_name=arg.btf_name, id=_new_id(env))
        else:
            r = Reg.unknown()
        f.regs[i + 1] = r
    f.regs[10] = Reg.pointer(RegType.PTR_TO_STACK, frameno=0)
    return State([f])


def _check_globals(env: _Env) -> None:
    """``do_check_subprogs``: after the main program, every global subprogram a verified path called is
    verified on its own (explored states freed in between), in subprogram order, until none is new."""
    verified: set[int] = set()
    while True:
        new = 0
        for start in sorted(env.funcs):
            g = env.funcs[start]
            if not g.is_global or start not in env.globals_called or start in verified:
                continue
            if env.log is not None:
                env.log.append(f"Validating {g.name}() func#{_func_number(env, start)}...")
            if g.error:
                raise _err(start, g.error)
            env.explored = {}
            _do_check(env, (_global_entry(env, g), start))
            verified.add(start)
            new += 1
        if not new:
            return


def _global_exit(env: _Env, st: State, idx: int) -> None:
    """A global subprogram's exit (``check_return_code``, is_subprog): R0 any scalar."""
    r0 = st.regs[0]
    if r0.type is not RegType.SCALAR:
        raise _err(idx, f"At subprogram exit the register R0 is not a scalar value ({type_name(r0.type)})")
    return None


def _check_exit(env: _Env, st: State, idx: int) -> int | None:
    r0 = st.regs[0]
    cs = st.frames[-1].callsite
    if cs >= 0 and (env.code[cs] != 0x85 or env.src[cs] != PSEUDO_CALL):
        if r0.type is RegType.NOT_INIT:
            raise _err(idx, "R0 !read_ok")
        _check_read(env, st, idx, 0, True)
        _callback_exit(env, st, idx)
        if len(st.frames) == 1:
            return None  # an async callback: verified on its own
        # prepare_func_exit in_callback_fn: back to the call, which may run the callback again; imprecise
        # scalars that changed since the previous visit of the call are widened (find_prev_entry)
        _precise_regs(env, st, 0)
        env.ls.update(st.frames)  # a subprogram exit: the callback's instance first
        callee = st.frames.pop()
        prev = _prev_entry(env, st, callee.callsite)
        if prev is not None:
            _widen_imprecise_scalars(prev, st)
        return callee.callsite
    if len(st.frames) > 1:
        # prepare_func_exit: the caller gets whatever r0 holds, written or not (reading it is the
        # caller's business); any stack pointer is refused, the caller's own too
        if r0.type is RegType.PTR_TO_STACK:
            raise _err(idx, "cannot return stack pointer to the caller")
        env.ls.update(st.frames)  # the callee's instance first (bpf_update_live_stack at a subprogram exit)
        callee = st.frames.pop()
        st.cur.regs[0] = r0.copy()
        return callee.callsite + 1
    if r0.type is RegType.NOT_INIT and env.ctx.void_return and not st.frames[0].subprog \
            and env.prog_type in (ProgType.STRUCT_OPS, ProgType.LSM):
        if st.refs:  # check_resource_leak, then check_return_code: a void struct_ops / LSM target reads no R0
            raise _err(idx, f"Unreleased reference id={st.refs[0]} alloc_insn=?")
        return None
    if r0.type is RegType.NOT_INIT:
        raise _err(idx, "R0 !read_ok")
    _check_read(env, st, idx, 0, True)
    if st.refs:
        raise _err(idx, f"Unreleased reference id={st.refs[0]} alloc_insn=?")
    if st.frames[0].subprog:
        return _global_exit(env, st, idx)
    rng = return_range(env.prog_type, env.attach_type)
    if rng is not None:
        if r0.type is not RegType.SCALAR:
            raise _err(idx, f"At program exit the register R0 is not a known value ({type_name(r0.type)})")
        _precise_regs(env, st, 0)
        lo, hi = rng
        if r0.smin < lo or r0.smax > hi:
            got = format_reg(r0)
            raise _err(idx, f"At program exit the register R0 has {got} should have been in [{lo}, {hi}]")
    return None


# check_return_code: program types whose return value the kernel range-checks, for an unknown attach
# type (the widest range the type allows; `return_range` narrows it by attach type).
RETURN_RANGES = {
    ProgType.CGROUP_SKB: (0, 3), ProgType.CGROUP_SOCK: (0, 1), ProgType.CGROUP_SOCK_ADDR: (0, 3),
    ProgType.SOCK_OPS: (0, 1), ProgType.CGROUP_DEVICE: (0, 1), ProgType.CGROUP_SYSCTL: (0, 1),
    ProgType.CGROUP_SOCKOPT: (0, 1), ProgType.SK_LOOKUP: (0, 1), ProgType.NETFILTER: (0, 1),
}


# enum bpf_attach_type values check_return_code looks at.
ATTACH_CGROUP_INET_EGRESS = 1
ATTACH_SOCK_ADDR_BIND = frozenset({8, 9})  # BPF_CGROUP_INET4_BIND, INET6_BIND: 0..3
# UDP4/UDP6/UNIX_RECVMSG, INET4/INET6/UNIX_GETPEERNAME, INET4/INET6/UNIX_GETSOCKNAME: exactly 1
ATTACH_SOCK_ADDR_ONE = frozenset({19, 20, 29, 30, 31, 32, 51, 52, 53})


def return_range(prog_type: ProgType, attach_type: int | None) -> tuple[int, int] | None:
    """The values a program of `prog_type` attached as `attach_type` may return at exit (None: any)."""
    rng = RETURN_RANGES.get(prog_type)
    if rng is None or attach_type is None:
        return rng
    if prog_type is ProgType.CGROUP_SKB:
        return (0, 3) if attach_type == ATTACH_CGROUP_INET_EGRESS else (0, 1)
    if prog_type is ProgType.CGROUP_SOCK_ADDR:
        if attach_type in ATTACH_SOCK_ADDR_BIND:
            return (0, 3)
        return (1, 1) if attach_type in ATTACH_SOCK_ADDR_ONE else (0, 1)
    return rng


# --- conditional jumps --------------------------------------------------------------------------


_FLIP = {J_JEQ: J_JEQ, J_JNE: J_JNE, J_JSET: J_JSET, J_JGE: J_JLE, J_JGT: J_JLT, J_JLE: J_JGE, J_JLT: J_JGT,
         J_JSGE: J_JSLE, J_JSGT: J_JSLT, J_JSLE: J_JSGE, J_JSLT: J_JSGT}
_REV = {J_JEQ: J_JNE, J_JNE: J_JEQ, J_JSET: J_JSET | 0x08, J_JSET | 0x08: J_JSET, J_JGE: J_JLT, J_JGT: J_JLE,
        J_JLE: J_JGT, J_JLT: J_JGE, J_JSGE: J_JSLT, J_JSGT: J_JSLE, J_JSLE: J_JSGT, J_JSLT: J_JSGE}


def _scalar_branch_taken(r1: Reg, r2: Reg, op: int, is32: bool) -> int:
    if is32:
        t1, t2 = tnum_subreg(r1.var_off), tnum_subreg(r2.var_off)
        umin1, umax1, smin1, smax1 = r1.u32min, r1.u32max, r1.s32min, r1.s32max
        umin2, umax2, smin2, smax2 = r2.u32min, r2.u32max, r2.s32min, r2.s32max
    else:
        t1, t2 = r1.var_off, r2.var_off
        umin1, umax1, smin1, smax1 = r1.umin, r1.umax, r1.smin, r1.smax
        umin2, umax2, smin2, smax2 = r2.umin, r2.umax, r2.smin, r2.smax
    if op in (J_JEQ, J_JNE):
        eq_res, ne_res = (1, 0) if op == J_JEQ else (0, 1)
        if t1[1] == 0 and t2[1] == 0:
            return eq_res if t1[0] == t2[0] else ne_res
        if not tnum_overlap(t1, t2):
            return ne_res
        if umin1 > umax2 or umax1 < umin2 or smin1 > smax2 or smax1 < smin2:
            return ne_res
        if not is32:
            if r1.u32min > r2.u32max or r1.u32max < r2.u32min or r1.s32min > r2.s32max or r1.s32max < r2.s32min:
                return ne_res
        return -1
    if op == J_JSET:
        if not r2.is_const(is32):
            r1, r2 = r2, r1
            t1, t2 = t2, t1
        if not r2.is_const(is32):
            return -1
        if (~t1[1] & t1[0]) & t2[0]:
            return 1
        if not ((t1[1] | t1[0]) & t2[0]):
            return 0
        return -1
    if op == J_JGT:
        return 1 if umin1 > umax2 else 0 if umax1 <= umin2 else -1
    if op == J_JSGT:
        return 1 if smin1 > smax2 else 0 if smax1 <= smin2 else -1
    if op == J_JLT:
        return 1 if umax1 < umin2 else 0 if umin1 >= umax2 else -1
    if op == J_JSLT:
        return 1 if smax1 < smin2 else 0 if smin1 >= smax2 else -1
    if op == J_JGE:
        return 1 if umin1 >= umax2 else 0 if umax1 < umin2 else -1
    if op == J_JSGE:
        return 1 if smin1 >= smax2 else 0 if smax1 < smin2 else -1
    if op == J_JLE:
        return 1 if umax1 <= umin2 else 0 if umin1 > umax2 else -1
    if op == J_JSLE:
        return 1 if smax1 <= smin2 else 0 if smin1 > smax2 else -1
    return -1


# reg_not_null: the pointer kinds a comparison with 0 decides (stack, context and packet pointers are not
# among them: the running kernel explores both branches of `if r == 0` for those too)
NOT_NULL_TYPES = frozenset({RegType.PTR_TO_SOCKET, RegType.PTR_TO_TCP_SOCK, RegType.PTR_TO_XDP_SOCK, RegType.PTR_TO_BUF,
                            RegType.PTR_TO_MAP_VALUE, RegType.PTR_TO_MAP_KEY, RegType.PTR_TO_SOCK_COMMON,
                            RegType.PTR_TO_MEM, RegType.CONST_PTR_TO_MAP})
BPF_MAX_VAR_OFF = 1 << 29


def _not_null(r: Reg) -> bool:
    # a BTF pointer is not NULL when trusted (is_trusted_reg): a referenced one always is (an object
    # from bpf_obj_new, an acquired kernel object); an unbounded variable offset can wrap the non-NULL
    # base to zero; untrusted memory of unknown size (a pointer member of a kernel struct,
    # rdonly_untrusted_mem(sz=0)) may be NULL: 6.18 keeps the branch
    if r.type is RegType.PTR_TO_MEM and r.mem_size == 0:
        return False
    return (r.type in NOT_NULL_TYPES or (r.type is RegType.PTR_TO_BTF_ID and (r.ref_obj_id != 0 or btf_trusted(r)))) \
        and -BPF_MAX_VAR_OFF < r.smin and r.smax < BPF_MAX_VAR_OFF


def _branch_taken(r1: Reg, r2: Reg, op: int, is32: bool) -> int:
    pk1 = r1.type in PKT_TYPES or r1.type is RegType.PTR_TO_PACKET_END
    pk2 = r2.type in PKT_TYPES or r2.type is RegType.PTR_TO_PACKET_END
    if pk1 and pk2 and not is32:
        if r2.type is RegType.PTR_TO_PACKET_END:
            pkt = r1
        elif r1.type is RegType.PTR_TO_PACKET_END:
            pkt = r2
            op = _FLIP[op]
        else:
            return -1
        if pkt.range >= 0:
            return -1
        if op in (J_JLE, J_JGT):
            if pkt.range == BEYOND_PKT_END:
                return 1 if op == J_JGT else 0
        elif op in (J_JLT, J_JGE):
            if pkt.range in (BEYOND_PKT_END, AT_PKT_END):
                return 1 if op == J_JGE else 0
        return -1
    if r1.is_pointer or r2.is_pointer:
        if is32:
            return -1
        if not r2.is_const():
            op = _FLIP[op]
            r1, r2 = r2, r1
        if not r2.is_const():
            return -1
        if not _not_null(r1) or r2.var_off[0] != 0:
            return -1
        return 0 if op == J_JEQ else 1 if op == J_JNE else -1
    return _scalar_branch_taken(r1, r2, op, is32)


def _refine(r1: Reg, r2: Reg, op: int, is32: bool) -> None:
    """``regs_refine_cond_op``: what `r1 op r2` being true says about both."""
    if op in (J_JGE, J_JGT, J_JSGE, J_JSGT):
        op = _FLIP[op]
        r1, r2 = r2, r1
    if op == J_JEQ:
        if is32:
            r1.u32min = max(r1.u32min, r2.u32min)
            r1.u32max = min(r1.u32max, r2.u32max)
            r1.s32min = max(r1.s32min, r2.s32min)
            r1.s32max = min(r1.s32max, r2.s32max)
            r2.u32min, r2.u32max, r2.s32min, r2.s32max = r1.u32min, r1.u32max, r1.s32min, r1.s32max
            t = tnum_intersect(tnum_subreg(r1.var_off), tnum_subreg(r2.var_off))
            r1.var_off = tnum_with_subreg(r1.var_off, t)
            r2.var_off = tnum_with_subreg(r2.var_off, t)
        else:
            r1.umin = max(r1.umin, r2.umin)
            r1.umax = min(r1.umax, r2.umax)
            r1.smin = max(r1.smin, r2.smin)
            r1.smax = min(r1.smax, r2.smax)
            r2.umin, r2.umax, r2.smin, r2.smax = r1.umin, r1.umax, r1.smin, r1.smax
            r1.var_off = tnum_intersect(r1.var_off, r2.var_off)
            r2.var_off = r1.var_off
    elif op == J_JNE:
        if not r2.is_const(is32):
            r1, r2 = r2, r1
        if not r2.is_const(is32):
            return
        val = r2.const_value(is32)
        if is32:
            if r1.u32min == val & U32:
                r1.u32min += 1
            if r1.u32max == val & U32:
                r1.u32max -= 1
            if r1.s32min == s32(val):
                r1.s32min += 1
            if r1.s32max == s32(val):
                r1.s32max -= 1
        else:
            if r1.umin == val:
                r1.umin += 1
            if r1.umax == val:
                r1.umax -= 1
            if r1.smin == s64(val):
                r1.smin += 1
            if r1.smax == s64(val):
                r1.smax -= 1
    elif op == J_JSET:
        if not r2.is_const(is32):
            r1, r2 = r2, r1
        if not r2.is_const(is32):
            return
        val = r2.const_value(is32)
        if val == 0 or val & (val - 1):
            return
        if is32:
            t = tnum_or(tnum_subreg(r1.var_off), (val, 0))
            r1.var_off = tnum_with_subreg(r1.var_off, t)
        else:
            r1.var_off = tnum_or(r1.var_off, (val, 0))
    elif op == J_JSET | 0x08:
        if not r2.is_const(is32):
            r1, r2 = r2, r1
        if not r2.is_const(is32):
            return
        val = r2.const_value(is32)
        mark_unbounded(r1)
        if is32:
            t = tnum_and(tnum_subreg(r1.var_off), (~val & U64, 0))
            r1.var_off = tnum_with_subreg(r1.var_off, t)
        else:
            r1.var_off = tnum_and(r1.var_off, (~val & U64, 0))
    elif op == J_JLE:
        if is32:
            r1.u32max = min(r1.u32max, r2.u32max)
            r2.u32min = max(r1.u32min, r2.u32min)
        else:
            r1.umax = min(r1.umax, r2.umax)
            r2.umin = max(r1.umin, r2.umin)
    elif op == J_JLT:
        if is32:
            r1.u32max = min(r1.u32max, (r2.u32max - 1) & U32)
            r2.u32min = max((r1.u32min + 1) & U32, r2.u32min)
        else:
            r1.umax = min(r1.umax, (r2.umax - 1) & U64)
            r2.umin = max((r1.umin + 1) & U64, r2.umin)
    elif op == J_JSLE:
        if is32:
            r1.s32max = min(r1.s32max, r2.s32max)
            r2.s32min = max(r1.s32min, r2.s32min)
        else:
            r1.smax = min(r1.smax, r2.smax)
            r2.smin = max(r1.smin, r2.smin)
    elif op == J_JSLT:
        if is32:
            r1.s32max = min(r1.s32max, s32(r2.s32max - 1))
            r2.s32min = max(s32(r1.s32min + 1), r2.s32min)
        else:
            r1.smax = min(r1.smax, s64(r2.smax - 1))
            r2.smin = max(s64(r1.smin + 1), r2.smin)


def _set_min_max(t1: Reg, t2: Reg, f1: Reg, f2: Reg, op: int, is32: bool) -> tuple[bool, bool]:
    """``reg_set_min_max``: refine the true (jump) and false (fall-through) sides; says which stay possible."""
    if f1.type is not RegType.SCALAR or f2.type is not RegType.SCALAR:
        return True, True
    _refine(f1, f2, _REV[op], is32)
    reg_bounds_sync(f1)
    reg_bounds_sync(f2)
    _refine(t1, t2, op, is32)
    reg_bounds_sync(t1)
    reg_bounds_sync(t2)
    return bounds_sane(t1) and bounds_sane(t2), bounds_sane(f1) and bounds_sane(f2)


def _collect_linked(st: State, rid: int, out: list) -> None:
    """``collect_linked_regs``: append the places (``("r"|"s", frame, n)``) of set `rid`'s scalars, registers
    then spilled slots, from the current frame down.  (6.12 kept six and unlinked the rest; the running
    6.18 syncs them all: verifier_scalar_ids' linked_regs_too_many_regs, its r6 narrowed with id 1.)"""
    base = rid & ~ADD_CONST
    for fi in range(len(st.frames) - 1, -1, -1):
        f = st.frames[fi]
        for j in range(10):
            r = f.regs[j]
            if r.type is SCALAR_T and r.id & ~ADD_CONST == base:
                out.append(("r", fi, j))
        for k in sorted(f.stack):
            sl = f.stack[k]
            r = sl.spilled
            if sl.types[7] == STACK_SPILL and r is not None and r.type is SCALAR_T and r.id & ~ADD_CONST == base:
                out.append(("s", fi, k))


def _sync_linked(st: State, known: Reg, linked: list) -> None:
    """``sync_linked_regs`` (6.18): every collected scalar of `known`'s set takes its range, plus the
    difference of their deltas; a 32-bit delta zero-extends; a 32-bit and a 64-bit delta are not synced."""
    kid = known.id
    base = kid & ~ADD_CONST
    for place in linked:
        r = _lookup(st, place) if place[0] == "s" else st.frames[place[1]].regs[place[2]]
        if r is None or r.type is not SCALAR_T or r is known or r.id & ~ADD_CONST != base:
            continue
        if (r.id ^ kid) & ADD_CONST == ADD_CONST:
            continue  # mixed 32/64-bit links
        sd = r.subreg_def
        if (not r.id & ADD_CONST and not kid & ADD_CONST) or r.off == known.off:
            r.assign(known)
            r.subreg_def = sd
            continue
        rid, roff = r.id, r.off
        delta = Reg.known(roff - known.off)
        r.assign(known)
        r.off, r.id, r.subreg_def = roff, rid, sd
        _add_bounds(r, delta)
        if (rid | kid) & ADD_CONST32:
            zext_32_to_64(r)
        reg_bounds_sync(r)


def _mark_ptr_or_null(st: State, regno: int, is_null: bool) -> None:
    reg = st.regs[regno]
    rid = reg.id
    ref = reg.ref_obj_id
    if not rid:
        return
    if is_null and ref and ref == rid:
        # only the acquired pointer itself: a NULL cast of a referenced socket (sk_fullsock, tcp_sock,
        # skc_to_*) still holds the socket's reference
        if ref in st.refs:
            st.refs.remove(ref)
    for f in st.frames:
        regs = list(f.regs) + [s.spilled for s in f.stack.values() if s.spilled is not None]
        for r in regs:
            if r.type in NULLABLE and r.id == rid:
                if is_null:
                    r.type = RegType.SCALAR
                    r.id = r.ref_obj_id = 0
                    r.map = None
                    r.mem_size = 0
                    r.btf_name = ""
                else:
                    r.type = NULLABLE[r.type]
                    mt = r.map.map_type if r.type is RegType.PTR_TO_MAP_VALUE and r.map is not None else None
                    if mt in (12, 13):  # array/hash of maps: the inner map
                        r.type = RegType.CONST_PTR_TO_MAP
                        r.map = r.map.inner or MapRef(-1, "")
                    elif mt == 17:  # xskmap
                        r.type = RegType.PTR_TO_XDP_SOCK
                    elif mt in (15, 18):  # sockmap, sockhash
                        r.type = RegType.PTR_TO_SOCKET
                    r.id = 0


def _find_good_pkt_pointers(st: State, dst: Reg, right_open: bool) -> None:
    if dst.off < 0 or (dst.off == 0 and right_open):
        return
    if dst.umax > MAX_PACKET_OFF or dst.umax + dst.off > MAX_PACKET_OFF:
        return
    new_range = dst.off + (1 if right_open else 0)
    t = dst.type
    for f in st.frames:
        regs = list(f.regs) + [s.spilled for s in f.stack.values() if s.spilled is not None]
        for r in regs:
            if r.type is t and r.id == dst.id:
                r.range = max(r.range, new_range)


def _mark_pkt_end(st: State, regno: int, range_open: bool) -> None:
    r = st.regs[regno]
    if r.type is RegType.PTR_TO_PACKET:
        r.range = BEYOND_PKT_END if range_open else AT_PKT_END


def _is_init_pkt(r: Reg, t: RegType) -> bool:
    return r.type is t and r.id == 0 and r.off == 0 and r.var_off == (0, 0)


def _match_pkt_pointers(env: _Env, idx: int, d: int, s: int, this: State, other: State) -> bool:
    c = env.code[idx]
    if not c & 0x08 or c & 7 == JMP32:
        return False
    dr, sr = this.regs[d], this.regs[s]
    op = c & 0xF0
    fwd = (dr.type is RegType.PTR_TO_PACKET and sr.type is RegType.PTR_TO_PACKET_END) or \
          (dr.type is RegType.PTR_TO_PACKET_META and _is_init_pkt(sr, RegType.PTR_TO_PACKET))
    rev = (dr.type is RegType.PTR_TO_PACKET_END and sr.type is RegType.PTR_TO_PACKET) or \
          (_is_init_pkt(dr, RegType.PTR_TO_PACKET) and sr.type is RegType.PTR_TO_PACKET_META)
    if op == J_JGT:
        if fwd:
            _find_good_pkt_pointers(this, dr, False)
            _mark_pkt_end(other, d, True)
        elif rev:
            _find_good_pkt_pointers(other, other.regs[s], True)
            _mark_pkt_end(this, s, False)
        else:
            return False
    elif op == J_JLT:
        if fwd:
            _find_good_pkt_pointers(other, other.regs[d], True)
            _mark_pkt_end(this, d, False)
        elif rev:
            _find_good_pkt_pointers(this, sr, False)
            _mark_pkt_end(other, s, True)
        else:
            return False
    elif op == J_JGE:
        if fwd:
            _find_good_pkt_pointers(this, dr, True)
            _mark_pkt_end(other, d, False)
        elif rev:
            _find_good_pkt_pointers(other, other.regs[s], False)
            _mark_pkt_end(this, s, True)
        else:
            return False
    elif op == J_JLE:
        if fwd:
            _find_good_pkt_pointers(other, other.regs[d], False)
            _mark_pkt_end(this, d, True)
        elif rev:
            _find_good_pkt_pointers(this, sr, True)
            _mark_pkt_end(other, s, False)
        else:
            return False
    else:
        return False
    return True


def _check_cond_jmp(env: _Env, st: State, idx: int, stack: list) -> int | None:
    c = env.code[idx]
    is32 = (c & 7) == JMP32
    op = c & 0xF0
    d, s, off = env.dst[idx], env.src[idx], env.off[idx]
    if op not in _FLIP:
        raise _err(idx, f"invalid BPF_JMP/JMP32 opcode {op >> 4:x}")
    x = c & 0x08
    if x:
        sreg = _check_read(env, st, idx, s, not is32)
    dreg = _check_read(env, st, idx, d, not is32)
    if x:
        src = sreg
    else:
        src = Reg.known(env.imm[idx])
    target = idx + 1 + off
    pred = _branch_taken(dreg, src, op, is32)
    if pred >= 0:
        want = [r for r, reg in ((d, dreg), (s, src if x else None)) if reg is not None and reg.type is RegType.SCALAR]
        if want:
            _precise_regs(env, st, *want)
        return target if pred == 1 else idx + 1
    linked: list = []
    if x and sreg.type is SCALAR_T and sreg.id:
        _collect_linked(st, sreg.id, linked)
    if dreg.type is SCALAR_T and dreg.id:
        _collect_linked(st, dreg.id, linked)
    if len(linked) > 1:  # the jump history entry (its registers of this frame, for precision)
        cur = len(st.frames) - 1
        env.hist_extra = sum(1 << p[2] for p in set(linked) if p[0] == "r" and p[1] == cur)
    other = st.copy()
    oregs = other.regs
    if x:
        t_ok, f_ok = _set_min_max(oregs[d], oregs[s], dreg, sreg, op, is32)
    else:
        fake_t, fake_f = src.copy(), src.copy()
        t_ok, f_ok = _set_min_max(oregs[d], fake_t, dreg, fake_f, op, is32)
    if x and sreg.type is SCALAR_T and sreg.id:
        _sync_linked(st, sreg, linked)
        _sync_linked(other, oregs[s], linked)
    if dreg.type is SCALAR_T and dreg.id:
        _sync_linked(st, dreg, linked)
        _sync_linked(other, oregs[d], linked)
    if not is32 and x and dreg.is_pointer and sreg.is_pointer and (dreg.type in NULLABLE) != (sreg.type in NULLABLE) \
            and op in (J_JEQ, J_JNE):
        eq = other if op == J_JEQ else st
        for rn in (d, s):
            r = eq.regs[rn]
            if r.type in NULLABLE:
                _mark_ptr_or_null(eq, rn, False)
    if not is32 and not x and env.imm[idx] == 0 and op in (J_JEQ, J_JNE) and dreg.type in NULLABLE:
        _mark_ptr_or_null(st, d, op == J_JNE)
        _mark_ptr_or_null(other, d, op == J_JEQ)
    elif x:
        _match_pkt_pointers(env, idx, d, s, st, other)
    if t_ok:
        if len(stack) >= BPF_COMPLEXITY_LIMIT_JMP_SEQ:
            raise _err(idx, f"The sequence of {len(stack) + 1} jumps is too complex.")
        stack.append((other, target, idx))
    if not f_ok:
        return None
    return idx + 1




# --- the transfer functions as a public API (used by the domain tests) ---------------------------

ALU_OPS = {"add": OP_ADD, "sub": OP_SUB, "mul": OP_MUL, "div": OP_DIV, "or": OP_OR, "and": OP_AND, "lsh": OP_LSH,
           "rsh": OP_RSH, "mod": OP_MOD, "xor": OP_XOR, "arsh": OP_ARSH}
JMP_OPS = {"jeq": J_JEQ, "jne": J_JNE, "jgt": J_JGT, "jge": J_JGE, "jlt": J_JLT, "jle": J_JLE, "jset": J_JSET,
           "jsgt": J_JSGT, "jsge": J_JSGE, "jslt": J_JSLT, "jsle": J_JSLE}


def scalar_alu(op: str, dst: Reg, src: Reg, is64: bool = True) -> Reg:
    """The abstract result of ``dst op= src`` on two scalars (``adjust_scalar_min_max_vals``); inputs untouched."""
    env = _Env([], [], [], [], [], 0, ProgType.SOCKET_FILTER, uapi_layout(ProgType.SOCKET_FILTER), {}, {}, [], [], [],
               False, 0)
    out = dst.copy()
    _scalar_alu(env, State([Frame()]), 0, out, src.copy(), ALU_OPS[op], is64)
    return out


def branch_refine(op: str, dst: Reg, src: Reg, is32: bool = False) -> tuple[int, tuple[Reg, Reg] | None, tuple[Reg, Reg] | None]:
    """``is_branch_taken`` and ``reg_set_min_max`` for ``if dst op src``.

    Returns (decided: 1 taken / 0 not taken / -1 unknown, the (dst, src) states
    where the jump is taken, where it is not); a side that cannot happen is None.
    """
    code = JMP_OPS[op]
    pred = _branch_taken(dst, src, code, is32)
    t1, t2, f1, f2 = dst.copy(), src.copy(), dst.copy(), src.copy()
    t_ok, f_ok = _set_min_max(t1, t2, f1, f2, code, is32)
    return pred, ((t1, t2) if t_ok else None), ((f1, f2) if f_ok else None)


__all__ = ["Analysis", "AnalysisError", "AnalysisRejected", "BudgetExceeded", "analyze", "attach", "scalar_alu",
           "branch_refine", "const_alu", "CONST_FOLDS"]

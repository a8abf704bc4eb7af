"""kernel: the verifier's rewrites after ``do_check``, in the kernel's order, driven by its facts.

``run_passes(program, ["kernel"], PassContext(prog_type="sched_cls"))`` (or
``bpfpatch patch IN -o OUT --pass kernel --prog-type sched_cls``) analyzes
the program once (`bpfpatch.analysis.verifier`), hangs every instruction's
`InsnAux` on its node by reference, and then, on the same patch list, does
what ``bpf_check`` does after verification (kernel/bpf/verifier.c, 6.12;
checked against the running 6.18's xlated output):

1. dead code -- ``opt_hard_wire_dead_code_branches``, ``opt_remove_dead_code``,
   ``opt_remove_nops`` from ``seen`` (`bpfpatch.passes.dce.remove_dead_code`),
   and ``optimize_bpf_loop`` (``bpf_loop`` calls inlined where the facts'
   ``loop_callback`` names their one callback);
2. ``convert_ctx_accesses`` -- the unclone prologue of tc / sk_skb programs
   that write packet data, every context access (``ptr_type ==
   PTR_TO_CTX``) of ``__sk_buff`` and ``xdp_md`` lowered to the kernel's
   structures (`bpfpatch.passes.kernel_ctx`), narrow loads widened and
   masked, sign-extending loads re-extended, BTF pointer loads made
   ``PROBE_MEM``;
3. ``do_misc_fixups`` -- signed division by -1, division/modulo guards
   (`bpfpatch.passes.div_guard.guard`), LD_ABS / LD_IND (``bpf_gen_ld_abs``),
   inlined ``bpf_jiffies64`` and ``bpf_get_smp_processor_id``,
   ``bpf_map_lookup_elem`` on a map whose type the facts know
   (``map_gen_lookup``, inner maps of map-in-maps included), the kfunc call
   fixups (``fixup_kfunc_call``) and the default exception callback;
4. ``opt_subreg_zext_lo32_rnd_hi32`` -- with ``options["kernel"]["zext"]``
   (a JIT that needs it; x86-64 does not) a zero extension after every
   ``zext_dst`` definition;
5. constant blinding (``bpf_jit_blind_constants``) with
   ``options["kernel"]["blind"]``.

The output uses the kernel-internal register AX (r11) and kernel helper
addresses (helper calls keep the helper id; the inlined helpers' kernel
addresses come from ``options["kernel"]["symbols"]``, else 0): it is the
kernel's view of the program, not a loadable one.  Program types whose
context conversion is not implemented are refused with a `PatchError`.
"""

from __future__ import annotations

from array import array
from typing import Any, Callable, ClassVar

import numpy as np

from bpfpatch.analysis.facts import InsnAux, RegType
from bpfpatch.errors import BpfPatchError, PatchError
from bpfpatch.isa import KIND_OF, Insn, Kind, insn_starts
from bpfpatch.isa.refs import word_keys
from bpfpatch.isa.build import (
    alu32_imm, alu32_reg, alu64_imm, exit_insn, ja, jmp_imm, ld_imm64, ldx_mem, mov32_imm, mov64_imm, mov64_reg, st_mem,
    stx_mem,
)
from bpfpatch.isa.opcodes import (
    AX_REG, CLASS_MASK, MODE_MASK, SIZE_MASK, AluOp, AtomicOp, InsnClass, JmpOp, Mode, Size, Source,
)
from bpfpatch.passes.base import PassContext
from bpfpatch.passes.dce import remove_dead_code
from bpfpatch.passes.div_guard import guard
from bpfpatch.passes.facts import analysis_of, attach_facts, facts_of, has_facts
from bpfpatch.passes.kernel_maps import gen_lookup
from bpfpatch.passes.kernel_ctx import (
    BYTES_OF_SIZE, PROLOGUE_TYPES, READ, SKB, SKB_VARIANT, SUPPORTED, UNCONVERTED, WRITE, CtxAccessError, convert,
    prologue, uses_tstamp_type,
)
from bpfpatch.passes.kernel_ctx_sock import bpf_sock_field_size, convert_bpf_sock, convert_tcp_sock, convert_xdp_sock
from bpfpatch.patch import Node, PatchInsn, PatchList
from bpfpatch.patch.store import view
from bpfpatch.progtype import ProgType, prog_type_of

BPF_FUNC_map_lookup_elem, BPF_FUNC_get_smp_processor_id, BPF_FUNC_jiffies64 = 1, 8, 118
BPF_FUNC_timer_set_callback, BPF_FUNC_kptr_xchg = 170, 194
#: sk_storage_get, inode_storage_get, task_storage_get, cgrp_storage_get: do_misc_fixups passes the gfp flags in r5.
STORAGE_GET = frozenset({107, 145, 156, 210})
GFP_ATOMIC, GFP_KERNEL = 0x820, 0xCC0
#: BPF_F_SLEEPABLE (prog_flags): storage_get may allocate with GFP_KERNEL.
BPF_F_SLEEPABLE = 1 << 4
BPF_PROBE_MEM, BPF_PROBE_MEMSX = 0x20, 0x40
LD_IMM64_CODE = 0x18
BPF_ADDR_PERCPU = -1
#: Program types whose ops have gen_ld_abs.
LD_ABS_TYPES = frozenset({ProgType.SOCKET_FILTER, ProgType.SCHED_CLS, ProgType.SCHED_ACT})
_PKT = (RegType.PTR_TO_PACKET, RegType.PTR_TO_PACKET_META)
#: Pointer types other than the context whose accesses convert_ctx_accesses lowers, and how.
SOCK_CONVERTERS = {RegType.PTR_TO_SOCKET: convert_bpf_sock, RegType.PTR_TO_SOCK_COMMON: convert_bpf_sock,
                   RegType.PTR_TO_TCP_SOCK: convert_tcp_sock, RegType.PTR_TO_XDP_SOCK: convert_xdp_sock}


class KernelPipeline:
    """The kernel's post-verification rewrites, on one patch list, from the verifier's facts."""

    name: ClassVar[str] = "kernel"

    def __init__(self) -> None:
        self._prepared: tuple[Any, Any] | None = None  # (program, its facts or the error) from `prepare`

    def prepare(self, program: Any, ctx: PassContext) -> None:
        """Run the analysis on `program` before its patch list is made (`run_passes` calls this when
        the pass runs first): the analysis's peak and the list's columns are then never held at once.
        An error is raised by `run`, where it was raised before (after the list is made)."""
        try:
            facts: Any = analysis_of(program, self._prog_type(ctx), **self._analysis_options(ctx))
        except BpfPatchError as exc:
            facts = exc.with_traceback(None)  # not the analysis's frames: raised again from `run`
        self._prepared = (program, facts)

    @staticmethod
    def _prog_type(ctx: PassContext) -> ProgType:
        if ctx.prog_type is None:
            raise PatchError("kernel: needs the program type (--prog-type T, PassContext(prog_type=T))")
        ptype = prog_type_of(ctx.prog_type)
        if ptype not in SUPPORTED | UNCONVERTED:
            raise PatchError(f"kernel: program type {ptype.name.lower()} is not supported (supported: "
                             f"{', '.join(sorted(t.name.lower() for t in SUPPORTED | UNCONVERTED))})")
        return ptype

    @staticmethod
    def _analysis_options(ctx: PassContext) -> dict[str, Any]:
        # the pipeline reads the facts, not the per-instruction states (a copy per step: memory at 1M)
        return {"keep_states": False, **ctx.options.get("kernel", {}).get("analysis", {})}

    def run(self, pl: PatchList, ctx: PassContext) -> None:
        prepared, self._prepared = self._prepared, None
        ptype = self._prog_type(ctx)
        opts: dict[str, Any] = ctx.options.get("kernel", {})
        if prepared is not None and prepared[0] is pl.program and not has_facts(pl):
            if isinstance(prepared[1], BpfPatchError):
                raise prepared[1]
            attach_facts(pl, ptype, facts=prepared[1])
        elif not has_facts(pl):
            attach_facts(pl, ptype, **self._analysis_options(ctx))
        del prepared  # the facts live on in the list (its aux), not in a second list
        # live node ids and a byte each for seen (no handle or bool list per instruction)
        ids = pl.live_ids()
        starts = subprog_starts(pl)
        depth = {s: d for s in starts  # a subprogram missing from it has depth 0
                 if (f := facts_of(pl.node_at(s))) is not None and (d := f.stack_depth)}
        aux = pl.store.aux
        naux = len(aux)
        seen = np.fromiter((f.seen if nid < naux and isinstance(f := aux[nid], InsnAux) else True
                            for nid in ids.tolist()), dtype=np.bool_, count=len(ids))
        _keep_unwalked_callbacks(pl, ids, seen, starts)
        remove_dead_code(pl, ids, seen)
        inline_bpf_loops(pl, starts, depth)
        convert_ctx_accesses(pl, ptype)
        misc_fixups(pl, ptype, opts.get("symbols", {}), opts.get("prog_flags", 0), opts.get("local_type_sizes", {}))
        may_goto(pl, starts, depth)
        zero_extend(pl, all_defs=bool(opts.get("zext")))
        if opts.get("blind"):
            from bpfpatch.passes.blind import PASS as Blind

            Blind().run(pl, PassContext(seed=ctx.seed, aux_reg=AX_REG, options=ctx.options))


def _live_with_facts(pl: PatchList, want: "Callable[[Node, InsnAux], bool] | None" = None,
                     codes: "np.ndarray | None" = None) -> list[tuple[Node, InsnAux]]:
    """(node, facts) of the live nodes with facts, in order; only those `want` keeps (a short list, not one a node).

    `codes` (a bool per opcode, `_OPCODES`) picks the candidates from the list's opcode column first, so
    the nodes no rule can want cost no handle, no decoded instruction and no facts read (on 8,000
    ld_imm64 the walks of every node took half the pass's time, each decoding an uncached ld_imm64).
    """
    ids = pl.live_ids() if codes is None else _candidates(pl, codes)
    aux = pl.store.aux
    naux = len(aux)
    out = []
    for nid in ids.tolist():
        f = aux[nid] if nid < naux else None
        if isinstance(f, InsnAux):
            n = pl.node(nid)
            if want is None or want(n, f):
                out.append((n, f))
    return out


def _candidates(pl: PatchList, codes: np.ndarray) -> np.ndarray:
    """The live node ids, in order, whose opcode and source register are one of `codes` (`_opcodes`): keys
    read in place from the store's word column (`word_keys`: a few bytes a node, no copy of the words)."""
    ids = pl.live_ids()
    return ids[codes[word_keys(view(pl.store.w0, np.uint64))][ids]]


def _opcodes(rule: "Callable[[int, int], bool]") -> np.ndarray:
    """A bool per opcode and source register (``code | src << 8``): does ``rule(code, src)`` hold (a table
    to index the word column with, `_candidates`)."""
    return np.array([rule(k & 0xFF, k >> 8) for k in range(1 << 12)], dtype=np.bool_)


def _access_kind(insn: Insn) -> str | None:
    cls, mode = insn.code & CLASS_MASK, insn.code & MODE_MASK
    if cls == InsnClass.LDX and mode in (Mode.MEM, Mode.MEMSX):
        return READ
    if cls in (InsnClass.STX, InsnClass.ST) and mode == Mode.MEM:
        return WRITE
    return None


#: A writable slice of a packet's dynptr: check_kfunc_call asks may_access_direct_pkt_data for a write, which
#: sets seen_direct_write (the unclone prologue) as a direct packet store does.
DYNPTR_SLICE_RDWR = "bpf_dynptr_slice_rdwr"


def _is_kfunc_call(insn: Insn) -> bool:
    """A call of a kernel function (a kfunc)."""
    return KIND_OF[insn.code] == Kind.CALL and insn.src == BPF_PSEUDO_KFUNC_CALL


#: The instructions the verifier records a pointer type (``ptr_type``) on, or names a kfunc (``extra["kfunc"]``)
#: on: loads, stores, atomics (`_check_mem_access`, `_check_atomic`) and kfunc calls (`_check_kfunc_call`); not
#: pseudo calls, whose decoded instructions (an immediate each) would fill the process's instruction cache.
_MEMORY_OR_CALL = _opcodes(lambda c, s: c & CLASS_MASK in (InsnClass.LDX, InsnClass.ST, InsnClass.STX)
                           or (KIND_OF[c] == Kind.CALL and s == 2))  # BPF_PSEUDO_KFUNC_CALL
#: Helper calls and kfunc calls (not pseudo calls).
_CALL = _opcodes(lambda c, s: KIND_OF[c] == Kind.CALL and s in (0, 2))


def convert_ctx_accesses(pl: PatchList, ptype: ProgType) -> None:
    """convert_ctx_accesses: the prologue (a program that writes packet data directly, or through a
    writable dynptr slice), then every context access, narrow loads included."""
    # the memory accesses every case below converts, and the kfunc calls (a writable dynptr slice): one walk
    items = _live_with_facts(pl, lambda n, f: f.ptr_type is not None or _is_kfunc_call(n.insn), _MEMORY_OR_CALL)
    accesses = [(kind, n.insn) for n, f in items if f.ptr_type == RegType.PTR_TO_CTX and (kind := _access_kind(n.insn))]
    tstamp_type_access = uses_tstamp_type(accesses, ptype)
    direct_write = any((f.ptr_type in _PKT and (_access_kind(n.insn) == WRITE or KIND_OF[n.insn.code] == Kind.ATOMIC))
                       or (f.seen and f.extra_get("kfunc") == DYNPTR_SLICE_RDWR) for n, f in items)
    todo = []
    for node, f in items:
        kind = _access_kind(node.insn)
        if kind is None:
            continue
        if f.ptr_type == RegType.PTR_TO_CTX or f.ptr_type in SOCK_CONVERTERS:
            todo.append((node, kind, f))
        elif f.ptr_type == RegType.PTR_TO_BTF_ID and kind == READ:
            insn = node.insn
            probe = BPF_PROBE_MEM if insn.code & MODE_MASK == Mode.MEM else BPF_PROBE_MEMSX
            pl.replace(node, [insn._replace(code=InsnClass.LDX | probe | (insn.code & SIZE_MASK))])
    for node, kind, f in todo:
        pl.replace(node, lower_ctx_access(ptype, kind, node.insn, f.ctx_field_size or 0, tstamp_type_access, f.ptr_type))
    if direct_write and ptype in PROLOGUE_TYPES:
        first = next(iter(pl))
        # Jumps back to the first instruction still go to it, not to the prologue (adjust_jmp_off).
        pl.replace(first, prologue(ptype, first.insn), retarget=False)


def lower_ctx_access(ptype: ProgType, kind: str, insn: Insn, field_size: int = 0, tstamp_type_access: bool = False,
                     ptr_type: RegType = RegType.PTR_TO_CTX) -> list[Insn]:
    """One context (or socket) access, READ or WRITE, as convert_ctx_accesses lowers it.

    `field_size` is the verifier's ``ctx_field_size`` (0: as wide as the access);
    a narrower load is widened to the field, converted, shifted and masked.  The
    prover (`bpfpatch.prove.lowered`) reads the kernel pass's output through this
    same function.
    """
    size = BYTES_OF_SIZE[Size(insn.code & SIZE_MASK)]
    field = field_size
    if kind == WRITE or (ptr_type == RegType.PTR_TO_CTX and ptype in SKB_VARIANT
                         and SKB["cb"] <= insn.off < SKB["cb"] + 20):
        field = 0  # the kernel records no field size for a write, nor for __sk_buff.cb (any size, as written)
    if not field and ptr_type in (RegType.PTR_TO_SOCKET, RegType.PTR_TO_SOCK_COMMON) or (
            not field and ptype == ProgType.CGROUP_SOCK and ptr_type == RegType.PTR_TO_CTX):
        field = bpf_sock_field_size(insn.off, size)
    narrow = size < field
    si = insn
    if narrow:
        if kind == WRITE:
            raise PatchError(f"kernel: narrow context write {insn} (the verifier refuses it)")
        size_default = field  # bpf_ctx_off_adjust_machine: fields are at most 8 bytes
        si = Insn(InsnClass.LDX | Mode.MEM | {2: Size.H, 4: Size.W, 8: Size.DW}[field], insn.dst, insn.src,
                  insn.off & ~(size_default - 1), insn.imm)
    if ptr_type in SOCK_CONVERTERS:
        got = SOCK_CONVERTERS[ptr_type](kind, si)
        if got is None:
            raise CtxAccessError(f"kernel: {ptr_type.value} {kind} at offset {si.off} is not converted here")
        out, target_size = got
    else:
        out, target_size = convert(ptype, kind, si, tstamp_type_access)
    if narrow and size < target_size:
        shift = (insn.off & (field - 1)) * 8
        if shift:
            out.append(alu32_imm(AluOp.RSH, si.dst, shift) if field <= 4 else alu64_imm(AluOp.RSH, si.dst, shift))
        out.append(alu32_imm(AluOp.AND, si.dst, _s32((1 << size * 8) - 1)))
    if kind == READ and insn.code & MODE_MASK == Mode.MEMSX:
        out.append(Insn(InsnClass.ALU64 | AluOp.MOV | Source.X, si.dst, si.dst, size * 8, 0))
    return out


def gen_ld_abs(insn: Insn) -> list[Insn]:
    """bpf_gen_ld_abs: load through the skb helpers; a negative result ends the program with 0."""
    out = []
    if insn.code & MODE_MASK == Mode.ABS:
        out.append(mov64_imm(2, insn.imm))
    else:
        out.append(mov64_reg(2, insn.src))
        if insn.imm:
            out.append(alu64_imm(AluOp.ADD, 2, insn.imm))
    out.append(mov64_reg(1, 6))
    # bpf_skb_load_helper_{8,16,32}_no_cache: kernel functions, called by address (imm 0 here).
    out.append(Insn(InsnClass.JMP | JmpOp.CALL, 0, 0, 0, 0))
    out += [jmp_imm(JmpOp.JSGE, 0, 0, 2), alu32_reg(AluOp.XOR, 0, 0), exit_insn()]
    return out


def inline_helper(helper: int, symbols: dict[str, int]) -> list[Insn] | None:
    """The inlined body of ``bpf_jiffies64`` / ``bpf_get_smp_processor_id`` (kernel addresses from `symbols`), else None."""
    if helper == BPF_FUNC_jiffies64:
        return [ld_imm64(0, symbols.get("jiffies", 0)), ldx_mem(Size.DW, 0, 0, 0)]
    if helper == BPF_FUNC_get_smp_processor_id:
        addr = symbols.get("cpu_number", 0)
        return [mov64_imm(0, _s32(addr)), Insn(InsnClass.ALU64 | AluOp.MOV | Source.X, 0, 0, BPF_ADDR_PERCPU, 0),
                ldx_mem(Size.W, 0, 0, 0)]
    return None


def misc_fixups(pl: PatchList, ptype: ProgType, symbols: dict[str, int], prog_flags: int = 0,
                local_type_sizes: "dict[int, int] | None" = None) -> None:
    """do_misc_fixups, as far as a program outside the kernel can observe it.

    `symbols` gives the kernel addresses the inlined code loads (``jiffies``,
    ``cpu_number``, ``prog_aux``; 0 when absent); `prog_flags` the load's flags
    (BPF_F_SLEEPABLE picks storage_get's GFP_KERNEL); `local_type_sizes` the
    sizes of the program's own BTF types by id (what ``bpf_obj_new`` allocates).
    """
    sleepable = bool(prog_flags & BPF_F_SLEEPABLE) or ptype == ProgType.SYSCALL  # "Syscall programs can only be sleepable"
    add_exception_callback(pl)
    for node, f in _live_with_facts(pl, None, _MISC_SITE):
        insn = node.insn
        kind = KIND_OF[insn.code]
        cls = insn.code & CLASS_MASK
        if cls in (InsnClass.ALU, InsnClass.ALU64) and insn.code & 0xF0 in (AluOp.DIV, AluOp.MOD):
            patch = guard(insn, AX_REG)
            if patch is not None:
                pl.replace(node, list(patch))
        elif _is_kfunc_call(insn) and insn.off == 0 and f.extra_get("kfunc"):
            patch = fixup_kfunc_call(insn, f, {} if local_type_sizes is None else local_type_sizes, symbols)
            if patch is not None:
                pl.replace(node, patch)
        elif kind in (Kind.LD_ABS, Kind.LD_IND):
            if ptype not in LD_ABS_TYPES:
                raise PatchError(f"kernel: LD_ABS/LD_IND in a {ptype.name.lower()} program (the verifier refuses it)")
            pl.replace(node, gen_ld_abs(insn))
        elif kind == Kind.CALL and insn.src == 0:
            inlined = inline_helper(insn.imm, symbols)
            if inlined is not None:
                pl.replace(node, inlined)
            elif insn.imm == BPF_FUNC_map_lookup_elem and f.map is not None and not f.extra_get("map_poisoned"):
                inlined = gen_lookup(f.map)
                if inlined is not None:
                    pl.replace(node, inlined)
            elif insn.imm in STORAGE_GET:
                pl.replace(node, [mov64_imm(5, GFP_KERNEL if sleepable else GFP_ATOMIC), insn])
            elif insn.imm == BPF_FUNC_timer_set_callback:
                pl.replace(node, [ld_imm64(3, symbols.get("prog_aux", 0)), insn])
            elif insn.imm == BPF_FUNC_kptr_xchg:
                pl.replace(node, [mov64_reg(0, 2), Insn(InsnClass.STX | Mode.ATOMIC | Size.DW, 1, 0, 0, AtomicOp.XCHG)])


def _misc_code(code: int) -> bool:
    """An opcode `misc_fixups` may rewrite: a division or modulo, a call, an LD_ABS / LD_IND."""
    cls = code & CLASS_MASK
    if cls in (InsnClass.ALU, InsnClass.ALU64):
        return code & 0xF0 in (AluOp.DIV, AluOp.MOD)
    return KIND_OF[code] in (Kind.CALL, Kind.LD_ABS, Kind.LD_IND)


#: `_misc_code`'s instructions but pseudo calls (source 1), which `misc_fixups` leaves as they are.
_MISC_SITE = _opcodes(lambda c, s: _misc_code(c) and not (KIND_OF[c] == Kind.CALL and s == 1))


BPF_FUNC_loop = 181
#: BPF_MAX_LOOPS (kernel/bpf/bpf_iter.c): bpf_loop's largest iteration count; E2BIG, what it returns above.
BPF_MAX_LOOPS, E2BIG = 8 * 1024 * 1024, 7


def inline_bpf_loops(pl: PatchList, starts: list[int], depth: dict[int, int]) -> None:
    """optimize_bpf_loop: each ``bpf_loop`` call the facts say fits (``loop_callback``) becomes the loop.

    R6-R8 are spilled below the subprogram's stack (24 more bytes, once per
    subprogram, after rounding its depth up to 8), hold the bound, the count
    and the context, and the callback is called directly (a pseudo call) until
    it returns non-zero or the count reaches the bound; R0 is the count.  The
    kernel runs it before dead-code removal; the inlined code is all live, so
    running it after gives the same program.  `depth` is updated in place
    (``may_goto`` reads it).
    """
    sites = [(n, f.loop_callback) for n, f in _live_with_facts(
        pl, lambda n, f: f.loop_callback is not None and f.loop_callback >= 0 and n.insn.code == InsnClass.JMP | JmpOp.CALL
        and n.insn.src == 0 and n.insn.imm == BPF_FUNC_loop, _CALL)]
    grown = set()
    for node, callback in sites:
        sub = max((s for s in starts if s <= node.orig_idx), default=0)
        grown.add(sub)
        base = -(((depth.get(sub, 0) + 7) & ~7) + 24)
        r6, r7, r8 = base, base + 8, base + 16
        pl.replace(node, [
            jmp_imm(JmpOp.JLE, 1, BPF_MAX_LOOPS, 2), mov32_imm(0, -E2BIG), ja(16),
            stx_mem(Size.DW, 10, 6, r6), stx_mem(Size.DW, 10, 7, r7), stx_mem(Size.DW, 10, 8, r8),
            mov64_reg(6, 1), mov32_imm(7, 0), mov64_reg(8, 3),
            Insn(InsnClass.JMP | JmpOp.JGE | Source.X, 7, 6, 5, 0),
            mov64_reg(1, 7), mov64_reg(2, 8),
            PatchInsn(Insn(InsnClass.JMP | JmpOp.CALL, 0, 1, 0, 0), target=pl.node_at(callback)),
            alu64_imm(AluOp.ADD, 7, 1), jmp_imm(JmpOp.JEQ, 0, 0, -6), mov64_reg(0, 7),
            ldx_mem(Size.DW, 6, 10, r6), ldx_mem(Size.DW, 7, 10, r7), ldx_mem(Size.DW, 8, 10, r8)])
    for sub in grown:
        depth[sub] = ((depth.get(sub, 0) + 7) & ~7) + 24


BPF_PSEUDO_KFUNC_CALL = 2


def add_exception_callback(pl: PatchList) -> None:
    """do_misc_fixups' first step: a program that may call ``bpf_throw`` gets the default exception
    callback, ``r0 = r1; exit`` (the cookie is the return value), as a hidden last subprogram.

    The kernel does not add it where the program names its own callback (a BTF
    ``exception_callback:`` declaration tag), which the facts do not say.
    """
    if any(f.seen and f.extra_get("kfunc") == "bpf_throw" for _, f in _live_with_facts(pl, codes=_CALL)):
        last = None
        for last in pl:
            pass
        if last is not None:
            pl.append(last, [mov64_reg(0, 1), exit_insn()])
#: kfuncs whose call fixup_kfunc_call precedes with the address of the type's btf_struct_meta in R2.
KFUNC_STRUCT_META_R2 = frozenset({"bpf_obj_drop_impl", "bpf_percpu_obj_drop_impl", "bpf_refcount_acquire_impl"})
#: kfuncs inserting a node: (the register of the struct meta, the register of the node's offset).
KFUNC_INSERT_REGS = {"bpf_list_push_back_impl": (3, 4), "bpf_list_push_front_impl": (3, 4), "bpf_rbtree_add_impl": (4, 5)}


def fixup_kfunc_call(insn: Insn, f: InsnAux, local_type_sizes: dict[int, int], symbols: dict[str, int]) -> list[Insn] | None:
    """fixup_kfunc_call: the arguments the kernel adds to some kfunc calls, or the call's replacement.

    The kernel's own pointers (the type's ``btf_struct_meta``, ``prog->aux``)
    are emitted as ld_imm64 of 0 (``prog_aux`` from `symbols` when given): only
    the loaded kernel knows them.  None: the call stays as it is.
    """
    name = f.extra_get("kfunc")
    if name in ("bpf_cast_to_kern_ctx", "bpf_rdonly_cast"):
        return [mov64_reg(0, 1)]
    if name in ("bpf_obj_new_impl", "bpf_percpu_obj_new_impl"):
        size = local_type_sizes.get(f.local_type_id) if f.local_type_id is not None else None
        if size is None:
            raise PatchError(f"kernel: {name} of program BTF type {f.local_type_id}: its size is not known "
                             "(options['kernel']['local_type_sizes'])")
        return [mov64_imm(1, size), ld_imm64(2, 0), insn]
    if name in KFUNC_STRUCT_META_R2:
        return [ld_imm64(2, 0), insn]
    if name in KFUNC_INSERT_REGS and f.insert_off is not None:
        meta, node = KFUNC_INSERT_REGS[name]
        return [ld_imm64(meta, 0), mov64_imm(node, f.insert_off), insn]
    if name == "bpf_wq_set_callback_impl":
        return [ld_imm64(4, symbols.get("prog_aux", 0)), insn]
    return None


def subprog_starts(pl: PatchList) -> "array[int]":
    """The original slots where subprograms start, sorted: 0, pseudo-call and callback (ld_imm64 func)
    targets (an int column: 4 bytes a subprogram, not a set and a list of ints)."""
    rows = pl.program.slots
    n = len(rows)
    code, src = rows["code"], rows["regs"] >> 4
    at = np.flatnonzero(insn_starts(rows) & (((code == InsnClass.JMP | JmpOp.CALL) & (src == 1)) | ((code == LD_IMM64_CODE) & (src == 4))))
    dest = at + rows["imm"][at].astype(np.int64) + 1
    starts = np.unique(np.concatenate(([0], dest[(dest >= 0) & (dest < n)]))) if n else np.zeros(0, dtype=np.int64)
    return array("i", starts.astype(np.int32).tobytes())


def _keep_unwalked_callbacks(pl: PatchList, ids: np.ndarray, seen: np.ndarray, starts: list[int]) -> None:
    """Keep whole the callbacks (bpf_loop, for_each_map_elem, timers) the analysis did not walk.

    The kernel verifies a callback whose address a reached ld_imm64 takes; the
    analysis does not model callbacks yet, so their code would look unseen.
    Such a subprogram is kept as written (its own dead code, if any, stays).
    `seen` (per node of `ids`, the live nodes in order) is updated in place.
    """
    rows = pl.program.slots
    nslots = len(rows)
    loads = np.flatnonzero((rows["code"] == LD_IMM64_CODE) & ((rows["regs"] >> 4) == 4))
    if not len(loads):
        return
    slot_of = pl.orig_indices(ids)
    orig = slot_of >= 0
    seen_slot = np.full(nslots, -1, dtype=np.int8)  # -1: no live node of its own
    seen_slot[slot_of[orig]] = seen[orig]
    ends = dict(zip(starts, [*starts[1:], nslots]))
    imm = rows["imm"]
    keep = []
    for i in loads.tolist():
        if seen_slot[i] == 1:
            target = i + int(imm[i]) + 1
            if target in ends and seen_slot[target] == 0:
                keep.append((target, ends[target]))
    for lo, hi in keep:
        seen[(slot_of >= lo) & (slot_of < hi)] = True


def _subprog_heads(pl: PatchList, starts: list[int]) -> dict[int, Node]:
    """The node each subprogram now begins with: the one after the last original node of the one before."""
    heads: dict[int, Node] = {}
    k, cand = 0, None
    for node in pl:
        if cand is None:
            cand = node
        o = node.orig_idx
        if o < 0:
            continue
        while k + 1 < len(starts) and o >= starts[k + 1]:
            k += 1
        if starts[k] not in heads:
            heads[starts[k]] = cand
        cand = node.next
    return heads


#: BPF_MAX_TIMED_LOOPS: the count a timed may_goto starts from.
BPF_MAX_TIMED_LOOPS = 0xFFFF
MAY_GOTO_CODE = InsnClass.JMP | 0xE0  # BPF_JCOND, src BPF_MAY_GOTO
_MAY_GOTO = _opcodes(lambda c, s: c == MAY_GOTO_CODE and s == 0)


def may_goto(pl: PatchList, starts: list[int], depth: dict[int, int]) -> None:
    """do_misc_fixups on may_goto, as x86-64 (timed may_goto) does it on 6.18.

    Each may_goto counts down a slot 16 bytes below its subprogram's stack,
    calling ``arch_bpf_timed_may_goto`` when it reaches zero (which refills it
    or ends the loop); the subprogram's entry initialises the count and the
    timestamp slot.  6.12's source has the untimed form (one slot, no call).
    """
    sites = [(n, n.orig_idx) for n in map(pl.node, _candidates(pl, _MAY_GOTO).tolist())]  # a handle for the may_gotos only
    if not sites:
        return
    used = set()
    for node, orig in sites:
        sub = max((s for s in starts if s <= orig), default=0)
        used.add(sub)
        cnt = -depth.get(sub, 0) - 16
        target = node.target
        pl.replace(node, [ldx_mem(Size.DW, AX_REG, 10, cnt), PatchInsn(jmp_imm(JmpOp.JEQ, AX_REG, 0, 0), target=target),
                          alu64_imm(AluOp.SUB, AX_REG, 1), jmp_imm(JmpOp.JNE, AX_REG, 0, 2), mov64_imm(AX_REG, cnt),
                          Insn(InsnClass.JMP | JmpOp.CALL, 0, 0, 0, 0), stx_mem(Size.DW, 10, AX_REG, cnt)])
    heads = _subprog_heads(pl, starts)
    entries = {}
    for sub in sorted(used):
        head = heads.get(sub)
        if head is not None:
            d = depth.get(sub, 0) + 16
            # Jumps to the subprogram's first instruction still go to it (6.18: adjust_jmp_off), calls
            # and callback addresses go to the initialisation, the subprogram's new start.
            entries[head.id] = pl.prepend(head, [st_mem(Size.DW, 10, -d, BPF_MAX_TIMED_LOOPS)], retarget=False)
            pl.prepend(head, [st_mem(Size.DW, 10, -d + 8, 0)], retarget=False)
    if entries:
        for node in list(pl):
            insn = node.insn
            calls = (insn.code == InsnClass.JMP | JmpOp.CALL and insn.src == 1) or (insn.code == LD_IMM64_CODE
                                                                                    and insn.src == 4)
            target = node.target if calls else None
            if target is not None and target.id in entries:
                pl.replace(node, [PatchInsn(insn, target=entries[target.id])])


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


#: The opcodes of atomics (`_cmpxchg32`'s candidates).
_ATOMIC = _opcodes(lambda c, s: KIND_OF[c] == Kind.ATOMIC)


def _cmpxchg32(insn: Insn) -> bool:
    """A 32-bit atomic compare-and-exchange (it loads the old value into w0)."""
    return KIND_OF[insn.code] == Kind.ATOMIC and insn.code & SIZE_MASK == Size.W and insn.imm == AtomicOp.CMPXCHG


def zero_extend(pl: PatchList, all_defs: bool = False) -> None:
    """opt_subreg_zext_lo32_rnd_hi32: BPF_ZEXT_REG after ``zext_dst`` definitions.

    x86-64 needs none (`all_defs` asks for what a JIT that does would get), except after a 32-bit
    cmpxchg: the running kernel (6.18.44) zero-extends its r0 after every one, whether the upper half
    is read or not (``w0 = cmpxchg(...); if w0 != 3 goto ...`` gets ``w0 = w0``); 6.12's source, and
    the 6.18 of the sessions before, only after those with ``zext_dst``.
    """
    from bpfpatch.passes.zext import uses_defs

    for node, f in _live_with_facts(pl, lambda n, f: (f.zext_dst and all_defs) or _cmpxchg32(n.insn),
                                    None if all_defs else _ATOMIC):
        insn = node.insn
        reg = uses_defs(insn)[2]
        if reg is not None:
            pl.append(node, [Insn(InsnClass.ALU | AluOp.MOV | Source.X, reg, reg, 0, 1)])


PASS = KernelPipeline

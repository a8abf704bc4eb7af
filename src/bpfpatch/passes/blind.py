"""blind: constant blinding, as the kernel's bpf_jit_blind_insn does it.

Every immediate an attacker could plant is split into ``imm ^ rnd`` and
``rnd`` (a fresh random value per site, from the seeded ``ctx.rng``) and
recombined in the auxiliary register at run time::

    r1 += 0x1234            AX = rnd ^ 0x1234; AX ^= rnd; r1 += AX
    if r2 > 7 goto L        AX = rnd ^ 7; AX ^= rnd; if r2 > AX goto L
    *(u32 *)(r10 -4) = 5    AX = rnd ^ 5; AX ^= rnd; *(u32 *)(r10 -4) = AX
    r3 = 0x1122334455 ll    AX = rnd1 ^ 0x11; AX ^= rnd1; AX <<= 32; r3 = AX;
                            w_AX = rnd2 ^ 0x22334455; w_AX ^= rnd2; r3 |= AX
    w4 = 0                  r4 ^= r4      (with the kernel's AX; a loadable program keeps w4 = 0)

Classes: ALU/ALU64 immediates (add, sub, and, or, xor, mul, mov, div, mod),
JMP/JMP32 immediate conditions (the blinded jump keeps its target by
reference, so it still reaches the original instruction), ST stores and
plain ld_imm64 (pseudo loads, and loads an ELF relocation or map reference
points at, are left alone: the loader fills them in by position).  ``ctx.aux_reg``: 11 (the kernel's AX: such a program loads
only inside the kernel), a program register, or "auto" -- one no instruction
touches, so the output loads as a normal program.
"""

from __future__ import annotations

import random
from typing import ClassVar

import numpy as np

from bpfpatch.isa import KIND, KIND_OF, Insn, Kind, distinct_bytes
from bpfpatch.isa.opcodes import AX_REG, CLASS_MASK, OP_MASK, SIZE_MASK, AluOp, InsnClass, JmpOp, Mode, PseudoSrc, Size, Source
from bpfpatch.program import relocated_slots
from bpfpatch.passes.base import PassContext
from bpfpatch.passes.facts import analysis_of, verified_stack_depth
from bpfpatch.analysis.liveness import list_liveness
from bpfpatch.passes.liveness import MAX_STACK, initialized_in, stack_depths, subprogram_starts
from bpfpatch.passes.regs import AUTO_ORDER, resolve_aux_reg
from bpfpatch.errors import BpfPatchError, PatchError
from bpfpatch.patch import PatchInsn, PatchList
from bpfpatch.patch.bulk import Row, S

_BLINDED_ALU = frozenset({AluOp.ADD, AluOp.SUB, AluOp.AND, AluOp.OR, AluOp.XOR, AluOp.MUL, AluOp.MOV, AluOp.DIV, AluOp.MOD})
_BLINDED_JMP = frozenset({JmpOp.JEQ, JmpOp.JNE, JmpOp.JGT, JmpOp.JLT, JmpOp.JGE, JmpOp.JLE, JmpOp.JSGT, JmpOp.JSLT,
                          JmpOp.JSGE, JmpOp.JSLE, JmpOp.JSET})


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


def blind_insn(insn: Insn, ax: int, rng: random.Random) -> list[Insn | PatchInsn] | None:
    """The blinded replacement of one instruction (jumps: the last item needs its target), or None."""
    code, dst, src, off, imm = insn
    if ax in (dst, src) and KIND_OF[code] != Kind.LD_IMM64:
        return None
    kind = KIND_OF[code]
    cls = code & CLASS_MASK
    op = code & OP_MASK
    if kind == Kind.ALU_K and imm == 0 and op == AluOp.MOV:
        # The kernel clears with `dst ^= dst` after verification; a program that is
        # still to be verified must not read dst first, so outside the kernel's AX
        # mode the harmless `dst = 0` stays.
        return [Insn(InsnClass.ALU64 | AluOp.XOR | Source.X, dst, dst)] if ax == AX_REG else None
    rnd = _s32(rng.getrandbits(32))
    if kind == Kind.ALU_K and op in _BLINDED_ALU:
        return [Insn(cls | AluOp.MOV | Source.K, ax, 0, 0, rnd ^ imm), Insn(cls | AluOp.XOR | Source.K, ax, 0, 0, rnd),
                Insn(cls | op | Source.X, dst, ax, off, 0)]
    if kind == Kind.JCOND_K and op in _BLINDED_JMP and (imm != 0 or ax == AX_REG):
        # Outside the kernel, `if rX == 0` must stay: the verifier learns a map value is
        # not NULL only from a comparison with the constant 0 (and 0 plants nothing).
        alu = InsnClass.ALU64 if cls == InsnClass.JMP else InsnClass.ALU
        return [Insn(alu | AluOp.MOV | Source.K, ax, 0, 0, rnd ^ imm), Insn(alu | AluOp.XOR | Source.K, ax, 0, 0, rnd),
                Insn(cls | op | Source.X, dst, ax, 0, 0)]  # the caller gives it the jump's target
    if kind == Kind.ST:
        return [Insn(InsnClass.ALU64 | AluOp.MOV | Source.K, ax, 0, 0, rnd ^ imm), Insn(InsnClass.ALU64 | AluOp.XOR | Source.K, ax, 0, 0, rnd),
                Insn(InsnClass.STX | Mode.MEM | (code & SIZE_MASK), dst, ax, off, 0)]
    if kind == Kind.LD_IMM64 and src == PseudoSrc.NONE and ax != dst:
        lo, hi = _s32(imm), _s32(imm >> 32)
        rnd2 = _s32(rng.getrandbits(32))
        return [
            Insn(InsnClass.ALU64 | AluOp.MOV | Source.K, ax, 0, 0, rnd ^ hi),
            Insn(InsnClass.ALU64 | AluOp.XOR | Source.K, ax, 0, 0, rnd),
            Insn(InsnClass.ALU64 | AluOp.LSH | Source.K, ax, 0, 0, 32),
            Insn(InsnClass.ALU64 | AluOp.MOV | Source.X, dst, ax),
            Insn(InsnClass.ALU | AluOp.MOV | Source.K, ax, 0, 0, rnd2 ^ lo),
            Insn(InsnClass.ALU | AluOp.XOR | Source.K, ax, 0, 0, rnd2),
            Insn(InsnClass.ALU64 | AluOp.OR | Source.X, dst, ax),
        ]
    return None


def self_blind(insn: Insn, rng: random.Random) -> list[Insn] | None:
    """A blinded form that needs no scratch register (the destination is its own), or None.

    Only where the instruction writes its destination without reading it, so
    the register may hold the halves on the way::

        w4 = 0x1234             w4 = rnd ^ 0x1234; w4 ^= rnd         (both zero-extend)
        r4 = -2                 r4 = rnd ^ -2; r4 ^= rnd             (both sign-extend: sext(a) ^ sext(b) = sext(a ^ b))
        r4 = 0x1122334455 ll    r4 = rnd1 ^ H; r4 ^= rnd1; r4 <<= 32; r4 ^= rnd2 ^ lo; r4 ^= rnd2

    In the ld_imm64 form the low half goes in with 64-bit xors, which flip
    the upper half when ``lo`` has bit 31 set; ``H`` is the upper half
    flipped in advance then (``hi ^ 0xffffffff``), so the result is exactly
    ``hi << 32 | lo``.  The verifier folds every step to the same constant.
    """
    code, dst, src, off, imm = insn
    kind = KIND_OF[code]
    if kind == Kind.ALU_K and code & OP_MASK == AluOp.MOV and imm != 0:
        rnd = _s32(rng.getrandbits(32))
        cls = code & CLASS_MASK
        return [Insn(cls | AluOp.MOV | Source.K, dst, 0, 0, rnd ^ imm), Insn(cls | AluOp.XOR | Source.K, dst, 0, 0, rnd)]
    if kind == Kind.LD_IMM64 and src == PseudoSrc.NONE:
        lo, hi = imm & 0xFFFFFFFF, (imm >> 32) & 0xFFFFFFFF
        if lo >> 31:
            hi ^= 0xFFFFFFFF
        rnd, rnd2 = _s32(rng.getrandbits(32)), _s32(rng.getrandbits(32))
        alu = InsnClass.ALU64
        return [Insn(alu | AluOp.MOV | Source.K, dst, 0, 0, rnd ^ _s32(hi)), Insn(alu | AluOp.XOR | Source.K, dst, 0, 0, rnd),
                Insn(alu | AluOp.LSH | Source.K, dst, 0, 0, 32),
                Insn(alu | AluOp.XOR | Source.K, dst, 0, 0, rnd2 ^ _s32(lo)), Insn(alu | AluOp.XOR | Source.K, dst, 0, 0, rnd2)]
    return None


def _given(values: np.ndarray):
    """A template field with one value per site (a function, so the row's shape checks stay static)."""
    return lambda rows: values


def _draws(rng: random.Random, count: int) -> np.ndarray:
    """`count` values of ``rng.getrandbits(32)`` in one call, as int32 (the same stream)."""
    if not count:
        return np.empty(0, dtype=np.int32)
    return np.frombuffer(rng.getrandbits(32 * count).to_bytes(4 * count, "little"), dtype="<u4").view(np.int32)


def verified_depth(pl: PatchList, entry, ctx: PassContext, cache: dict) -> tuple[int | None, str]:
    """The verifier's stack depth of the subprogram whose first node is `entry`, or (None, why not).

    Where `stack_depths` cannot follow the frame (a stack pointer moved by a
    register), the verifier can: it bounds the register and counts the
    access's lowest byte (`verified_stack_depth`).  In order: the facts on
    the node (`bpfpatch.passes.facts.attach_facts` ran), the caller's
    ``ctx.options["blind"]["stack_depth"]`` (a function of the list's
    program and the subprogram's first slot, giving a depth or None: the
    ELF layer's, which verifies the sections that call into ``.text``), or
    the analysis of the list's program as ``ctx.prog_type`` (run once, kept
    in `cache`).
    """
    depth = verified_stack_depth(entry)
    if depth is not None:
        return depth, ""
    slot = entry.orig_idx
    if slot < 0:
        return None, "the subprogram starts with an inserted instruction"
    given = ctx.options.get("blind", {}).get("stack_depth")
    if given is not None:
        depth = given(pl.program, slot)
        return (depth, "") if depth is not None else (None, "the verifier did not reach it")
    if ctx.prog_type is None:
        return None, "no program type to verify it as"
    if "facts" not in cache:
        try:
            cache["facts"] = analysis_of(pl.program, ctx.prog_type)
        except BpfPatchError as exc:
            cache["facts"] = f"the verifier's analysis refused it: {exc}"
    facts = cache["facts"]
    if isinstance(facts, str):
        return None, facts
    aux = facts[slot] if slot < len(facts) else None
    return (aux.stack_depth, "") if aux is not None and aux.seen else (None, "the verifier did not reach it")


def spill_sites(pl: PatchList, site_ids: np.ndarray, ctx: PassContext) -> None:
    """Blind sites where every register is live: without a scratch register, or with one saved on the stack.

    A constant load into a register (``mov`` and plain ld_imm64) is blinded in
    its own destination (`self_blind`).  Elsewhere a register is borrowed: one
    written on every path to the site (the verifier refuses to store an unset
    one), kept in a stack slot below everything the subprogram uses (one slot
    per subprogram, shared by its sites: each spill ends before the next)::

        r1 += 0x1234      *(u64 *)(r10 - S) = rX; rX = rnd ^ 0x1234; rX ^= rnd; r1 += rX;
                          rX = *(u64 *)(r10 - S)
        if r2 > 7 goto L  *(u64 *)(r10 - S) = rX; rX = rnd ^ 7; rX ^= rnd; if r2 > rX goto +2;
                          rX = *(u64 *)(r10 - S); goto +2; rX = *(u64 *)(r10 - S); goto L

    The depth is `stack_depths`' where it follows the frame, else the
    verifier's (`verified_depth`, the kernel's rounding to 8 bytes).
    `PatchError` names the site when no register or no stack slot can be had.
    """
    nodes = list(pl)
    position = {node.id: i for i, node in enumerate(nodes)}
    init = initialized_in(pl, nodes)
    starts = subprogram_starts(pl, nodes)
    depths = stack_depths(pl, nodes, starts)
    slots: dict[int, int] = {}
    verified: dict = {}
    for nid in site_ids.tolist():
        node = pl.node(int(nid))
        i = position[node.id]
        insn = node.insn
        own = self_blind(insn, ctx.rng)
        if own is not None:
            pl.replace(node, own)
            continue
        sub = max(k for k, st in enumerate(starts) if st <= i)
        depth = depths[sub]
        where = f"blind: instruction {node.orig_idx if node.orig_idx >= 0 else '(inserted)'}"
        if depth is None and sub not in slots:
            depth, why = verified_depth(pl, nodes[starts[sub]], ctx, verified)
            if depth is None:
                raise PatchError(f"{where}: every register is live and the subprogram's stack use is not understood "
                                 f"(a stack pointer moved by a register; {why}); no slot to spill a scratch register to")
        slot = -((depth + 7) // 8 * 8 + 8) if sub not in slots else slots[sub]
        if -slot > MAX_STACK:
            raise PatchError(f"{where}: every register is live and the stack is full ({depth} of {MAX_STACK} bytes)")
        candidates = [r for r in AUTO_ORDER + (0,) if r not in (insn.dst, insn.src) and (init[i] >> r) & 1]
        if not candidates:
            raise PatchError(f"{where}: every register is live and none other than its operands is set on every path")
        rx = candidates[0]
        seq = blind_insn(insn, rx, ctx.rng)
        if not seq:
            continue
        spill = Insn(InsnClass.STX | Mode.MEM | Size.DW, 10, rx, slot, 0)
        fill = Insn(InsnClass.LDX | Mode.MEM | Size.DW, rx, 10, slot, 0)
        if KIND_OF[insn.code] == Kind.JCOND_K:
            *head, jump = seq
            pl.replace(node, [spill, *head, jump._replace(off=2), fill, Insn(InsnClass.JMP | JmpOp.JA, 0, 0, 2, 0), fill,
                              PatchInsn(Insn(InsnClass.JMP | JmpOp.JA, 0, 0, 0, 0), target=node.target)])
        else:
            pl.replace(node, [spill, *seq])
            pl.append(node, [fill])
        slots[sub] = slot  # later sites of this subprogram use the same slot


class Blind:
    """Constant blinding of every immediate the kernel blinds.

    Vectorized: sites are selected with NumPy over the list's slot words and
    patched class by class with `PatchList.replace_rows`; `blind_insn` is the
    same rewrite for one instruction (the reference the tests compare with).
    One random value per blinded site (two for an ld_imm64) is drawn from
    ``ctx.rng``, in list order (so one list or pass-by-pass give the same).
    """

    name: ClassVar[str] = "blind"

    def run(self, pl: PatchList, ctx: PassContext) -> None:
        auto = ctx.aux_reg == "auto"
        ids = pl.live_ids()
        w0 = pl.words(ids)[0]
        if auto:
            # A register dead after the site, chosen per site (no AX, no register reserved program-wide).
            live = list_liveness(pl, ids=ids, w0=w0)[1].live_out()
        keep = relocated_slots(pl.program)  # map loads, relocations, CO-RE fields: patched by position
        if keep:
            fresh = ~np.isin(pl.orig_indices(ids), np.fromiter(keep, dtype=np.int64))
            ids, w0 = ids[fresh], w0[fresh]
            if auto:
                live = live[fresh]
        code = (w0 & np.uint64(0xFF)).astype(np.uint8)
        dst = ((w0 >> np.uint64(8)) & np.uint64(0x0F)).astype(np.uint8)
        src = ((w0 >> np.uint64(12)) & np.uint64(0x0F)).astype(np.uint8)
        imm = (w0 >> np.uint64(32)).astype(np.uint32).view(np.int32)
        kind = np.take(KIND, code)
        op = code & OP_MASK
        if auto:
            busy = live.astype(np.int64) | (1 << dst.astype(np.int64)) | (1 << src.astype(np.int64))
            scratch = np.full(len(ids), -1, dtype=np.int64)
            for r in reversed(AUTO_ORDER + (0,)):  # the first of AUTO_ORDER that is free wins
                scratch = np.where((busy >> r) & 1 == 0, r, scratch)
            touches_ax = scratch < 0
            ax_of = scratch.astype(np.uint8)
            ax = -1  # never the kernel's AX
        else:
            ax = resolve_aux_reg(pl, ctx)
            touches_ax = (dst == ax) | (src == ax)
            ax_of = np.full(len(ids), ax, dtype=np.uint8)
        alu = (kind == Kind.ALU_K) & np.isin(op, list(_BLINDED_ALU))
        zero_mov = alu & (op == AluOp.MOV) & (imm == 0)
        alu &= ~zero_mov
        jmp = (kind == Kind.JCOND_K) & np.isin(op, list(_BLINDED_JMP))
        if ax != AX_REG:
            jmp &= imm != 0  # `if rX == 0` stays outside the kernel (NULL checks)
        st = kind == Kind.ST
        ld = (kind == Kind.LD_IMM64) & (src == PseudoSrc.NONE)
        if auto:
            spill = (alu | jmp | st | ld) & touches_ax
            if spill.any():
                spill_sites(pl, ids[spill], ctx)
        alu &= ~touches_ax
        jmp &= ~touches_ax
        st &= ~touches_ax
        ld &= ~touches_ax if auto else (dst != ax)
        sites = alu | jmp | st | ld
        # Random halves in node order: one per site, two per ld_imm64.
        per_site = np.where(ld[sites], 2, 1)
        first_draw = np.cumsum(per_site) - per_site
        rnd_all = _draws(ctx.rng, int(per_site.sum()))
        rnd = np.zeros(len(ids), dtype=np.int32)
        rnd[sites] = rnd_all[first_draw]
        del per_site
        groups: list[tuple[np.ndarray, list]] = []
        for c in distinct_bytes(code[alu]):
            at = np.flatnonzero(alu & (code == c))
            cls, o = c & CLASS_MASK, c & OP_MASK
            groups.append((at, [Row(cls | AluOp.MOV | Source.K, dst=ax_of[at], imm=rnd[at] ^ imm[at]),
                                Row(cls | AluOp.XOR | Source.K, dst=ax_of[at], imm=rnd[at]),
                                Row(cls | o | Source.X, dst=S.dst, src=_given(ax_of[at]), off=S.off)]))
        if ax == AX_REG and zero_mov.any():  # the kernel's post-verification `dst ^= dst`
            groups.append((np.flatnonzero(zero_mov), [Row(InsnClass.ALU64 | AluOp.XOR | Source.X, dst=S.dst, src=S.dst)]))
        for c in distinct_bytes(code[jmp]):
            at = np.flatnonzero(jmp & (code == c))
            cls, o = c & CLASS_MASK, c & OP_MASK
            a = InsnClass.ALU64 if cls == InsnClass.JMP else InsnClass.ALU
            groups.append((at, [Row(a | AluOp.MOV | Source.K, dst=ax_of[at], imm=rnd[at] ^ imm[at]),
                                Row(a | AluOp.XOR | Source.K, dst=ax_of[at], imm=rnd[at]),
                                Row(cls | o | Source.X, dst=S.dst, src=_given(ax_of[at]), to_site_target=True)]))
        for c in distinct_bytes(code[st]):
            at = np.flatnonzero(st & (code == c))
            groups.append((at, [Row(InsnClass.ALU64 | AluOp.MOV | Source.K, dst=ax_of[at], imm=rnd[at] ^ imm[at]),
                                Row(InsnClass.ALU64 | AluOp.XOR | Source.K, dst=ax_of[at], imm=rnd[at]),
                                Row(InsnClass.STX | Mode.MEM | (c & SIZE_MASK), dst=S.dst, src=_given(ax_of[at]), off=S.off)]))
        if ld.any():
            at = np.flatnonzero(ld)
            hi = (pl.words(ids[at])[1] >> np.uint64(32)).astype(np.uint32).view(np.int32)
            rnd2 = rnd_all[first_draw[np.flatnonzero(ld[sites])] + 1]  # an ld_imm64's second draw
            groups.append((at, [
                Row(InsnClass.ALU64 | AluOp.MOV | Source.K, dst=ax_of[at], imm=rnd[at] ^ hi),
                Row(InsnClass.ALU64 | AluOp.XOR | Source.K, dst=ax_of[at], imm=rnd[at]),
                Row(InsnClass.ALU64 | AluOp.LSH | Source.K, dst=ax_of[at], imm=32),
                Row(InsnClass.ALU64 | AluOp.MOV | Source.X, dst=S.dst, src=_given(ax_of[at])),
                Row(InsnClass.ALU | AluOp.MOV | Source.K, dst=ax_of[at], imm=rnd2 ^ imm[at]),
                Row(InsnClass.ALU | AluOp.XOR | Source.K, dst=ax_of[at], imm=rnd2),
                Row(InsnClass.ALU64 | AluOp.OR | Source.X, dst=S.dst, src=_given(ax_of[at])),
            ]))
        for at, template in groups:
            pl.replace_rows(ids[at], template)


PASS = Blind

"""Random valid programs and patch operations, shared by the property tests.

Programs have several subprograms (pseudo calls, pseudo-func ld_imm64),
plain ld_imm64, forward and backward JMP/JMP32 jumps, func_info (one per
subprogram), line_info and aux data -- everything `linearize` must carry.
"""

from __future__ import annotations

from hypothesis import strategies as st

from bpfpatch import FuncInfo, Insn, LineInfo, PatchInsn, Program
from bpfpatch.isa import insns_to_slots, slot_rows

JMP_CONDS = [0x15, 0x1D, 0x25, 0x55, 0x5D, 0xA5, 0x16, 0x56, 0x2E]  # jeq/jgt/jne/jlt k/x, jmp32


@st.composite
def programs(draw, max_subprogs: int = 3, max_body: int = 12, metadata: bool = True) -> Program:
    nsub = draw(st.integers(1, max_subprogs))
    # Symbolic instructions: (insn, kind, target) with target = ("sub", k) or ("insn", sub, idx).
    subs: list[list[tuple[Insn, str | None, object]]] = []
    for k in range(nsub):
        body: list[tuple[Insn, str | None, object]] = []
        length = draw(st.integers(1, max_body))
        for i in range(length):
            choice = draw(st.integers(0, 9))
            if choice <= 2:
                body.append((Insn(0xB7, draw(st.integers(0, 9)), 0, 0, draw(st.integers(-5, 5))), None, None))
            elif choice == 3:
                body.append((Insn(0x18, draw(st.integers(0, 9)), 0, 0, draw(st.integers(-(1 << 40), 1 << 40))), None, None))
            elif choice in (4, 5, 6):
                code = draw(st.sampled_from(JMP_CONDS + [0x05]))
                tgt = draw(st.integers(0, length))  # may target the exit (index `length`)
                insn = Insn(code, 1 if code != 0x05 else 0, 2 if code & 0x08 else 0, 0, 3 if not code & 0x08 and code != 0x05 else 0)
                body.append((insn, "jump", ("insn", k, tgt)))
            elif choice == 7 and nsub > 1:
                body.append((Insn(0x85, 0, 1, 0, 0), "call", ("sub", draw(st.integers(0, nsub - 1)))))
            elif choice == 8 and nsub > 1:
                body.append((Insn(0x18, 2, 4, 0, 0), "func", ("sub", draw(st.integers(1, nsub - 1)))))
            else:
                body.append((Insn(0x07, draw(st.integers(0, 9)), 0, 0, 1), None, None))
        body.append((Insn(0x95), None, None))
        subs.append(body)
    # Lay out: slot of every (sub, idx).
    slot_of: dict[tuple[int, int], int] = {}
    s = 0
    for k, body in enumerate(subs):
        for i, (insn, _, _) in enumerate(body):
            slot_of[(k, i)] = s
            s += insn.nslots
    insns = []
    for k, body in enumerate(subs):
        for i, (insn, kind, tgt) in enumerate(body):
            if kind is not None:
                dest = slot_of[(tgt[1], tgt[2])] if tgt[0] == "insn" else slot_of[(tgt[1], 0)]
                rel = dest - slot_of[(k, i)] - 1
                insn = insn._replace(off=rel) if kind == "jump" and insn.code != 0x06 else insn._replace(imm=rel)
            insns.append(insn)
    starts = [slot_of[(k, 0)] for k in range(nsub)]
    meta = {}
    if metadata:
        nslots = s
        insn_slots = sorted(slot_of.values())
        lines = sorted(set(draw(st.lists(st.sampled_from(insn_slots), max_size=len(insn_slots)))) | {0})
        meta = dict(
            func_info=[FuncInfo(st_, 100 + k) for k, st_ in enumerate(starts)],
            line_info=[LineInfo(o, 1, 10 + o, (o + 1) << 10 | 2) for o in lines],
            aux=[f"aux{i}" for i in range(nslots)],
            subprogs=starts,
        )
    return Program.from_insns(insns, **meta)


def patch_buffers(draw, live_nodes) -> list:
    """A random patch buffer: plain insns, local jumps (incl. to one past the end), explicit targets."""
    n = draw(st.integers(1, 4))
    items = []
    for i in range(n):
        c = draw(st.integers(0, 6))
        if c <= 2:
            items.append(Insn(0xB7, draw(st.integers(0, 9)), 0, 0, draw(st.integers(0, 99))))
        elif c == 3:
            items.append(Insn(0x18, 3, 0, 0, draw(st.integers(0, 1 << 35))))
        elif c == 4 and i < n:
            items.append(("localjump", draw(st.integers(i + 1, n))))  # forward within buffer or one past it
        elif c == 5 and live_nodes:
            tgt = draw(st.sampled_from(live_nodes))
            items.append(PatchInsn(Insn(0x55, 4, 0, 0, 1), target=tgt, aux=f"new{draw(st.integers(0, 9))}"))
        else:
            items.append(PatchInsn(Insn(0x07, 5, 0, 0, 2), aux="supplied"))
    # Resolve local jumps to slot offsets (kernel convention: relative within the buffer).
    sizes = [2 if (isinstance(it, Insn) and it.code == 0x18) else 1 for it in items]
    starts = [sum(sizes[:i]) for i in range(len(items))] + [sum(sizes)]
    out = []
    for i, it in enumerate(items):
        if isinstance(it, tuple) and it and it[0] == "localjump":
            out.append(Insn(0x05, 0, 0, starts[it[1]] - starts[i] - 1, 0))
        else:
            out.append(it)
    return out


def slots_rows(program: Program) -> list[tuple[int, ...]]:
    """(code, dst, src, off, imm) per slot."""
    return slot_rows(program.slots)


def kernel_retvals(prog: Program, inputs: tuple[int, ...] = (0, 7)) -> list[int]:
    """BPF_PROG_TEST_RUN results of `prog` on 64-byte packets filled with each input byte."""
    from bpfpatch.kernel import load_program

    with load_program(prog) as p:
        return [p.test_run(bytes([i]) * 64).retval for i in inputs]


def accepted_retvals(prog: Program, inputs: tuple[int, ...] = (0, 7)) -> list[int]:
    """`kernel_retvals` of a generated program; one the verifier refuses is discarded (hypothesis)."""
    from hypothesis import assume

    from bpfpatch.errors import VerifierError

    try:
        return kernel_retvals(prog, inputs)
    except VerifierError:
        assume(False)  # the rare generated program the verifier refuses (hypothesis limits how many)
        raise


def reference_successors(nodes: list) -> list[list[int]]:
    """Per live node (in list order): the positions control may go to next, read off the nodes themselves
    (``node.target``, which lands past deleted nodes) -- the textbook CFG the liveness references sweep."""
    from bpfpatch.isa import KIND_OF, Kind

    index = {n: i for i, n in enumerate(nodes)}
    succ = []
    for i, node in enumerate(nodes):
        kind = KIND_OF[node.insn.code]
        t = index.get(node.target, -1) if node.target is not None else -1
        s = [] if kind == Kind.EXIT else [t] if kind in (Kind.JA, Kind.GOTOL) else \
            [t, i + 1] if kind in (Kind.JCOND_K, Kind.JCOND_X, Kind.MAY_GOTO) else [i + 1]
        succ.append([x for x in s if 0 <= x < len(nodes)])
    return succ


__all__ = ["programs", "patch_buffers", "slots_rows", "insns_to_slots", "kernel_retvals", "accepted_retvals",
           "reference_successors"]


ALU_OPS = [0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x90, 0xA0, 0xB0]  # add sub mul div or and mod xor mov


@st.composite
def kernel_programs(draw, max_len: int = 24) -> Program:
    """Random programs the verifier accepts: every register set first, forward jumps only,
    divisions by registers that may be zero, constant branches (dead code for dce)."""
    insns = [Insn(0xB7, r, 0, 0, draw(st.integers(-8, 8))) for r in range(10)]
    n = draw(st.integers(1, max_len))
    body: list[tuple[Insn, int | None]] = []
    for i in range(n):
        c = draw(st.integers(0, 9))
        dst, src = draw(st.integers(0, 9)), draw(st.integers(0, 9))
        if c <= 4:
            cls = draw(st.sampled_from([0x07, 0x04]))
            op = draw(st.sampled_from(ALU_OPS))
            signed = draw(st.integers(0, 3)) == 0 and op in (0x30, 0x90)
            if draw(st.booleans()):
                body.append((Insn(cls | op | 0x08, dst, src, int(signed), 0), None))
            else:
                imm = draw(st.integers(-3, 7))
                if op in (0x30, 0x90) and imm == 0:
                    imm = -1 if signed else 3
                body.append((Insn(cls | op, dst, 0, int(signed), imm), None))
        elif c <= 7:
            code = draw(st.sampled_from([0x15, 0x55, 0x25, 0xA5, 0x1D, 0x16, 0x56, 0x05]))
            body.append((Insn(code, dst if code != 0x05 else 0, src if code & 0x08 else 0, 0,
                              draw(st.integers(-4, 4)) if not code & 0x08 and code != 0x05 else 0),
                         draw(st.integers(i + 1, n))))
        else:
            body.append((Insn(0x18, dst, 0, 0, draw(st.integers(-(1 << 40), 1 << 40))), None))
    body.append((Insn(0x95), None))
    # Resolve forward targets (item index -> relative slot offset).
    slot = []
    s = len(insns)
    for insn, _ in body:
        slot.append(s)
        s += insn.nslots
    for k, (insn, tgt) in enumerate(body):
        if tgt is not None:
            insn = insn._replace(off=slot[tgt] - slot[k] - 1)
        insns.append(insn)
    return Program.from_insns(insns)


def slot_insns(p: Program) -> dict[int, object]:
    """`p`'s instructions by their first slot."""
    out, s = {}, 0
    for insn in p.insns:
        out[s] = insn
        s += insn.nslots
    return out


def mutant(p: Program, changes: dict[int, object]) -> Program:
    """`p` with the instructions at these slots replaced (same slot count: jumps and map references stay)."""
    at = slot_insns(p)
    at.update(changes)
    return Program.from_insns([at[s] for s in sorted(at)], meta=p.meta)


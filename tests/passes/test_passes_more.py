"""blind and zext: table cases, the kernel's blinding structure, behaviour kept."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bpfpatch import Insn, PatchError, Program
from bpfpatch.errors import VerifierError
from bpfpatch.isa import decode_slots
from bpfpatch.kernel import load_program
from bpfpatch.passes import PassContext, run_passes
from bpfpatch.passes.blind import blind_insn
from bpfpatch.passes.regs import resolve_aux_reg
from bpfpatch.passes.zext import needs_zext
from bpfpatch.patch import PatchList
from progtools import kernel_programs, programs


def _unblind(insns: list[Insn], ax: int | None) -> list[Insn]:
    """Fold `AX = a; AX ^= b; op dst, AX` back into `op dst, a ^ b` (to compare blinded programs; None: any AX)."""
    out, i = [], 0
    while i < len(insns):
        x = insns[i]
        if (ax is None or x.dst == ax) and x.code in (0xB7, 0xB4) and i + 2 < len(insns) and insns[i + 1].dst == x.dst \
                and insns[i + 1].code in (0xA7, 0xA4):
            value = x.imm ^ insns[i + 1].imm
            nxt = insns[i + 2]
            if nxt.code == 0x67:  # ld_imm64: high word, shift, move, low word, or
                lo = insns[i + 4].imm ^ insns[i + 5].imm
                out.append(Insn(0x18, insns[i + 3].dst, 0, 0, ((value & 0xFFFFFFFF) << 32) | (lo & 0xFFFFFFFF)))
                i += 7
                continue
            out.append(("blinded", nxt.code & ~0x08 if nxt.code & 0x07 not in (3,) else nxt.code, nxt.dst, nxt.off, value))
            i += 3
            continue
        out.append(x)
        i += 1
    return out


def test_blind_table():
    rng = random.Random(1)
    add = blind_insn(Insn(0x07, 1, 0, 0, 0x1234), 11, rng)
    assert [i.code for i in add] == [0xB7, 0xA7, 0x0F] and add[0].imm ^ add[1].imm == 0x1234 and add[2].src == 11
    jmp = blind_insn(Insn(0x26, 2, 0, 5, 7), 11, rng)
    assert [i.code for i in jmp] == [0xB4, 0xA4, 0x2E] and jmp[0].imm ^ jmp[1].imm == 7
    st = blind_insn(Insn(0x62, 10, 0, -4, 5), 11, rng)
    assert [i.code for i in st] == [0xB7, 0xA7, 0x63]
    assert blind_insn(Insn(0xB7, 4, 0, 0, 0), 11, rng) == [Insn(0xAF, 4, 4)]  # the kernel's xor form
    assert blind_insn(Insn(0xB7, 4, 0, 0, 0), 9, rng) is None  # loadable form keeps `r4 = 0`
    assert blind_insn(Insn(0x18, 1, 1, 0, 5), 11, rng) is None  # pseudo map loads stay


def test_blinded_jump_keeps_its_target():
    # if r1 > 4 goto +1 (to exit); r0 = 1; exit  -- also a backward jump
    prog = Program.from_insns([Insn(0xB7, 0), Insn(0x25, 1, 0, 1, 4), Insn(0xB7, 0, 0, 0, 1), Insn(0x95),
                               Insn(0x05, 0, 0, -3)])
    out = run_passes(prog, ["blind"], PassContext(seed=7))
    ins = out.insns
    jmp = next(i for i, x in enumerate(ins) if x.code == 0x2D)
    assert ins[jmp + ins[jmp].off + 1] == Insn(0x95)
    back = next(i for i, x in enumerate(ins) if x.code == 0x05)
    assert ins[back + ins[back].off + 1].code == 0xB7 and ins[back + ins[back].off + 1].dst == 11  # first of the blinded jump


def test_aux_reg_choice_is_checked():
    prog = Program.from_insns([Insn(0xB7, r, 0, 0, 1) for r in range(10)] + [Insn(0x95)])
    # auto: a register dead after each site, per site (r9..r1 are all dead once set here)
    out = run_passes(prog, ["blind"], PassContext(aux_reg="auto"))
    assert all(11 not in (i.dst, i.src) for i in out.insns)
    assert sum(i.code == 0xB7 for i in out.insns) == 10  # every `rN = 1` became `rX = rnd ^ 1; rX ^= rnd; rN = rX`
    with pytest.raises(PatchError, match="uses r3"):
        run_passes(prog, ["blind"], PassContext(aux_reg=3))


@pytest.mark.kernel
def test_blind_matches_the_kernels_structure():
    """With bpf_jit_harden=2 the kernel blinds too: the same program once the random halves are folded."""
    path = "/proc/sys/net/core/bpf_jit_harden"
    try:
        old = open(path).read().strip()
        open(path, "w").write("2")
    except OSError as exc:
        pytest.skip(f"cannot set {path}: {exc}")
    try:
        if open("/proc/sys/net/core/bpf_jit_enable").read().strip() == "0":
            pytest.skip("the JIT is off: the kernel only blinds for the JIT")
        prog = Program.from_insns([
            Insn(0x85, 0, 0, 0, 7), Insn(0xBF, 1, 0), Insn(0xB7, 0, 0, 0, 0), Insn(0x07, 0, 0, 0, 3),
            Insn(0x25, 1, 0, 1, 4), Insn(0x07, 0, 0, 0, 100), Insn(0x18, 2, 0, 0, 0x1122334455),
            Insn(0x7A, 10, 0, -8, 77), Insn(0x79, 3, 10, -8, 0), Insn(0x0F, 0, 3), Insn(0x64, 0, 0, 0, 3), Insn(0x95)])
        with load_program(prog) as p:
            kernel = Program(decode_slots(p.xlated())).insns
    finally:
        open(path, "w").write(old)
    ours = run_passes(prog, ["blind"], PassContext(seed=5)).insns
    mask = lambda xs: [x._replace(imm=0) if isinstance(x, Insn) and x.code == 0x85 else x for x in xs]  # helper address
    assert mask(_unblind(ours, 11)) == mask(_unblind(kernel, 11))


@pytest.mark.kernel
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kernel_programs())
def test_blind_and_zext_keep_behaviour(prog):
    try:
        with load_program(prog) as p:
            expected = p.test_run(bytes(64)).retval
    except VerifierError:
        assume(False)
    for passes in (["zext"], ["blind"], ["blind", "zext", "div-guard"]):
        try:
            out = run_passes(prog, passes, PassContext(seed=2, aux_reg="auto"))
        except PatchError:
            continue  # no free register for the scratch value
        with load_program(out) as p:
            assert p.test_run(bytes(64)).retval == expected, passes


ZEXT_CASES = [
    ("read as 64 bits", [Insn(0xB7, 2, 0, 0, 5), Insn(0xBC, 1, 2), Insn(0xBF, 0, 1), Insn(0x95)], [1]),
    ("read as 32 bits only", [Insn(0xB7, 2, 0, 0, 5), Insn(0xBC, 1, 2), Insn(0xBC, 0, 1), Insn(0x95)], [2]),
    ("redefined first", [Insn(0xBC, 1, 1), Insn(0xB7, 1, 0, 0, 0), Insn(0xBF, 0, 1), Insn(0x95)], []),
    ("exit reads r0", [Insn(0xB4, 0, 0, 0, 1), Insn(0x95)], [0]),
    ("one path reads", [Insn(0xB4, 1, 0, 0, 1), Insn(0x15, 2, 0, 1, 0), Insn(0xBF, 0, 1), Insn(0xB7, 0), Insn(0x95)], [0]),
    ("u32 load", [Insn(0x61, 0, 1, 0, 0), Insn(0x95)], [0]),
    ("u64 load", [Insn(0x79, 0, 1, 0, 0), Insn(0x95)], []),
]


@pytest.mark.parametrize("name, insns, want", ZEXT_CASES, ids=[c[0] for c in ZEXT_CASES])
def test_zext_decisions(name, insns, want):
    pl = PatchList(Program.from_insns(insns))
    assert [n.orig_idx for n in needs_zext(pl)] == want


def test_zext_is_idempotent_and_minimal():
    prog = Program.from_insns(ZEXT_CASES[0][1])
    once = run_passes(prog, ["zext"])
    assert len(once.insns) == len(prog.insns) + 1
    assert run_passes(once, ["zext"]).to_bytes() == once.to_bytes()


@settings(max_examples=60, deadline=None)
@given(kernel_programs())
def test_all_passes_on_one_list_equal_pass_by_pass(prog):
    names = ["dce", "div-guard", "zext", "blind"]
    together = run_passes(prog, names, PassContext(seed=9))
    ctx = PassContext(seed=9)  # one RNG across the passes, as in the pipeline
    step = prog
    for name in names:
        step = run_passes(step, [name], ctx)
    assert together.to_bytes() == step.to_bytes()


def _blind_one_at_a_time(prog: Program, ax: int | str, seed: int) -> Program:
    """The blind pass written node by node with `blind_insn` (the reference for the vectorized pass).

    ``ax="auto"``: per site, the first register of AUTO_ORDER (then r0) that is dead after it.
    """
    from bpfpatch.isa import KIND_OF, Kind
    from bpfpatch.passes.liveness import live_out
    from bpfpatch.passes.regs import AUTO_ORDER
    from bpfpatch.patch import PatchInsn
    from bpfpatch.program import relocated_slots

    pl, rng = PatchList(prog, kernel_internal=True), random.Random(seed)  # blinding with AX is a kernel rewrite
    keep = relocated_slots(prog)
    nodes, live = live_out(pl)
    for node, out in zip(nodes, live.tolist()):
        if node.orig_idx in keep:
            continue
        reg = ax
        if ax == "auto":
            busy = out | 1 << node.insn.dst | 1 << node.insn.src
            free = [r for r in AUTO_ORDER + (0,) if not busy >> r & 1]
            assume(free)  # sites without a free register spill (tested on their own)
            reg = free[0]
        patch = blind_insn(node.insn, reg, rng)
        if patch is None:
            continue
        if KIND_OF[node.insn.code] == Kind.JCOND_K:
            patch[-1] = PatchInsn(patch[-1], target=node.target)
        pl.replace(node, patch)
    return pl.linearize()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(), st.sampled_from([11, "auto"]), st.integers(0, 1 << 20))
def test_vectorized_blind_equals_blind_insn_node_by_node(prog, aux, seed):
    """Same sites, same rewrites, same jump targets; only the random halves differ (folded away)."""
    ctx = PassContext(seed=seed, aux_reg=aux)
    try:
        fast = run_passes(prog, ["blind"], ctx)
    except PatchError:
        assume(False)  # no free register for auto
    ax = None if aux == "auto" else resolve_aux_reg(PatchList(prog), PassContext(aux_reg=aux))
    slow = _blind_one_at_a_time(prog, aux, seed)
    assert _unblind(fast.insns, ax) == _unblind(slow.insns, ax)
    assert len(fast.slots) == len(slow.slots)
    assert (fast.subprogs, fast.func_info, fast.line_info, fast.aux) == (slow.subprogs, slow.func_info, slow.line_info, slow.aux)


@st.composite
def blindable_programs(draw) -> Program:
    """Straight-line code with every kind blind looks at, and forward conditional jumps."""
    n = draw(st.integers(1, 24))
    insns: list[Insn] = []
    for i in range(n):
        c = draw(st.integers(0, 7))
        dst = draw(st.integers(0, 9))
        imm = draw(st.sampled_from([0, 1, -1, 7, 0x1234, -(1 << 31)]))
        if c == 0:
            op = draw(st.sampled_from([0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x90, 0xA0, 0xB0, 0x60]))
            cls = draw(st.sampled_from([0x04, 0x07]))
            off = 1 if op in (0x30, 0x90) and draw(st.booleans()) else 0
            insns.append(Insn(cls | op, dst, 0, off, imm))
        elif c == 1:
            insns.append(Insn(0xB7, dst, 0, 0, 0))
        elif c == 2:
            op = draw(st.sampled_from([0x10, 0x20, 0x50, 0x40, 0xC0]))
            insns.append(Insn(draw(st.sampled_from([0x05, 0x06])) | op, dst, 0, draw(st.integers(0, n - i - 1)), imm))
        elif c == 3:
            insns.append(Insn(0x62 | draw(st.sampled_from([0x00, 0x08, 0x10, 0x18])), 10, 0, -8, imm))
        elif c == 4:
            insns.append(Insn(0x18, dst, draw(st.sampled_from([0, 0, 1])), 0, draw(st.integers(-(1 << 40), 1 << 40))))
        elif c == 5:
            insns.append(Insn(0x0F, dst, draw(st.integers(0, 9))))
        else:
            insns.append(Insn(0x07, 11 if draw(st.booleans()) else dst, 0, 0, imm))
    insns.append(Insn(0x95))
    # Jump offsets above count instructions; make them count slots (ld_imm64 takes two).
    starts = [0]
    for insn in insns:
        starts.append(starts[-1] + (2 if insn.code == 0x18 else 1))
    out = []
    for i, insn in enumerate(insns):
        if insn.code & 0x07 in (0x05, 0x06) and insn.code not in (0x95,):
            out.append(insn._replace(off=starts[i + 1 + insn.off] - starts[i] - 1))
        else:
            out.append(insn)
    return Program.from_insns(out, validate=False)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blindable_programs(), st.sampled_from([11, "auto"]), st.integers(0, 1 << 20))
def test_vectorized_blind_covers_every_kind(prog, aux, seed):
    test_vectorized_blind_equals_blind_insn_node_by_node.hypothesis.inner_test(prog, aux, seed)

"""`bpfpatch.prove`: proofs of the built-in passes' rewrites, counterexamples the kernel confirms,
and the model's semantics against BPF_PROG_TEST_RUN."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest
import z3
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conftest import PROGS, compile_bpf
from bpfpatch.asm import assemble
from bpfpatch.errors import BpfPatchError, VerifierError
from bpfpatch.isa import KIND_OF, Insn, Kind
from bpfpatch.isa.opcodes import INVERTED_JMP, JmpOp
from bpfpatch.kernel import load_program
from bpfpatch.passes import PassContext, run_passes
from bpfpatch.program import Program
from bpfpatch.progtype import ProgType
from bpfpatch.prove import ProofVerdict, changed_region, prove_equivalent
from bpfpatch.prove.corpus import elf_programs, prove_passes, summary
from bpfpatch.prove.model import Encoder, Env
from bpfpatch.prove.replay import replay

pytestmark = pytest.mark.kernel

THIRD_PARTY = sorted(Path("/usr/lib/x86_64-linux-gnu/bpf").glob("*.o"))


def prog(text: str, **meta) -> Program:
    return Program.from_insns(assemble(text), **meta)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    obj = compile_bpf(PROGS / "prove" / "corpus.c", tmp_path_factory.mktemp("prove"))
    progs = elf_programs(obj)
    assert len(progs) >= 8
    return progs


def third_party(max_slots: int = 300):
    out = []
    for path in THIRD_PARTY:
        out += [p for p in elf_programs(path, prefix=path.name + ":") if len(p[1].slots) <= max_slots]
    return out


# --- the passes' rewrites ---------------------------------------------------------------


#: Program types whose context the prover has no model of (their rewrites must still never be a counterexample
#: and must say why they are undecided, but they are not held to the share proved).  Tracing programs' BTF-typed
#: arguments are modelled since stop 18 (`bpfpatch.prove.model.KERNEL_MEMORY_TYPES`, tests/kernel/test_prove_tracing.py).
UNMODELLED_CONTEXTS: set[ProgType] = set()


def refused(row) -> bool:
    """The pass made no rewrite (it refused the program): nothing for the prover to prove."""
    return row.result.verdict is ProofVerdict.UNDECIDED and row.result.reason.startswith("the pass refused")


@pytest.mark.slow
def test_every_pass_rewrite_of_the_corpus_is_proved_or_undecided_with_a_reason(corpus):
    programs = corpus + third_party()
    modelled = [p for p in programs if p[2] not in UNMODELLED_CONTEXTS]
    rows = prove_passes(modelled, timeout=30)
    others = prove_passes([p for p in programs if p[2] in UNMODELLED_CONTEXTS], timeout=30)
    # xdpdump_bpf.o's fentry/fexit attach to an XDP program (section "fentry/func", the target given at load
    # time), which the kernel's BTF does not name: the kernel pass's analysis refuses them (their arguments read
    # as scalars).  The share is over the rewrites the passes made; every refusal says why.
    counts = summary([r for r in rows if not refused(r)])
    print(counts, summary(others), [(r.program, r.pass_name) for r in rows if refused(r)])
    assert len(modelled) >= 20
    assert any(p[2] == ProgType.TRACING for p in modelled)
    assert all(r.result.verdict is not ProofVerdict.COUNTEREXAMPLE for r in rows + others), [
        (r.program, r.pass_name, r.result.reason) for r in rows + others
        if r.result.verdict is ProofVerdict.COUNTEREXAMPLE]
    for name in ("div-guard", "dce", "blind", "zext", "ctx", "kernel"):
        c = counts[name]
        assert c["proved"] >= 0.9 * sum(c.values()), (name, c)
    for r in rows + others:
        if r.result.verdict is ProofVerdict.UNDECIDED:
            assert r.result.reason  # always says why


@pytest.mark.slow
def test_every_pass_rewrite_of_the_kernels_selftests_is_proved_or_undecided_with_a_reason(tmp_path_factory):
    """The loadable programs of tools/testing/selftests/bpf/verifier (a deterministic sample)."""
    cases = selftest_programs(tmp_path_factory)
    rows = prove_passes(cases, timeout=20)
    counts = summary(rows)
    print(counts)
    assert not [r for r in rows if r.result.verdict is ProofVerdict.COUNTEREXAMPLE]
    for name, c in counts.items():
        assert c["proved"] >= 0.9 * sum(c.values()), (name, c)


def selftest_programs(tmp_path_factory, sample: int = 120):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "passes"))
    from kernel_selftests import kernel_cases, linux_source

    if linux_source() is None:
        pytest.skip("no kernel source tree with the BPF selftests")
    cases, _ = kernel_cases(str(tmp_path_factory.mktemp("selftests")))
    # the tests with maps are left out: the prover is given no map descriptions for bare instructions
    # (their rewrites are undecided, "map fd0 has no description"), as before the extraction took them
    progs = [(c.test.name, c.test.program(), c.test.prog_type) for c in cases if not c.maps]
    random.Random(0).shuffle(progs)
    return progs[:sample]


def test_zext_rewrite_of_packet_code_is_proved_and_loads(corpus):
    name, p, t = next(x for x in corpus if x[0] == "xdp:xdp_udp")
    q = run_passes(p, ["zext"])
    assert len(q.slots) > len(p.slots)
    assert prove_equivalent(p, q, t).verdict is ProofVerdict.PROVED
    load_program(q, t).close()


def test_ctx_pass_proved_through_the_kernel_layout(corpus):
    for name, p, t in corpus:
        if t in (ProgType.SOCKET_FILTER, ProgType.SCHED_CLS):
            q = run_passes(p, ["ctx"])
            assert prove_equivalent(p, q, t, rewritten_ctx="kernel").verdict is ProofVerdict.PROVED, name
    # Read through the user layout, the rewritten loads are other fields: not equivalent.
    p = prog("r0 = *(u32 *)(r1 + 0)\nexit")
    q = run_passes(p, ["ctx"])
    assert prove_equivalent(p, q, "socket_filter").verdict is not ProofVerdict.PROVED


def test_kernel_pass_output_is_proved_as_the_kernels_view(corpus):
    """Context conversions (multi-instruction ones too), LD_ABS calls, the inlined array lookup and
    the unclone prologue are read as what they lower, through the pass's own lowering functions."""
    from bpfpatch.prove.lowered import find_lowerings
    from bpfpatch.prove.model import map_infos

    progs = {n: (p, t) for n, p, t in corpus}
    whats = set()
    for name in ("socket:sock_ipv4", "socket:sock_ratio", "tc:tc_weights", "tc:tc_rewrite", "tc:tc_parse", "xdp:xdp_udp"):
        p, t = progs[name]
        q = run_passes(p, ["kernel"], PassContext(prog_type=t))
        assert q.insns != p.insns, name
        whats |= {low.what for low in find_lowerings(q, p, t, map_infos(p).values()).values()}
        assert prove_equivalent(p, q, t, rewritten_ctx="xlated").verdict is ProofVerdict.PROVED, name
        # Read as a user program, the kernel offsets are other fields (or none): not proved.
        assert prove_equivalent(p, q, t).verdict is not ProofVerdict.PROVED, name
    assert {"access", "ld_abs", "prologue", "lookup"} <= whats


def test_kernel_pass_inlined_helpers_and_multi_instruction_reads_are_proved():
    p = prog("r6 = r1\ncall 118\nr7 = r0\ncall 7\nr0 += r7\nr2 = *(u32 *)(r6 + 40)\nr0 += r2\n"
             "r3 = *(u32 *)(r6 + 20)\nr0 += r3\nr4 = *(u32 *)(r6 + 164)\nr0 += r4\nexit")
    q = run_passes(p, ["kernel"], PassContext(prog_type="sched_cls"))
    assert len(q.slots) > len(p.slots) + 6  # ifindex through dev, vlan_present, gso_segs through shinfo
    assert prove_equivalent(p, q, "sched_cls", rewritten_ctx="xlated").verdict is ProofVerdict.PROVED
    # A mutated lowering is not read as the field: vlan_present as `w3 = 2`, or a dev pointer read
    # from another kernel offset (then dereferenced: the model cannot say what it points to).
    insns = q.insns
    k = next(i for i, x in enumerate(insns) if x.code == 0xB4 and x.dst == 3)  # w3 = 1
    bad = Program.from_insns(insns[:k] + [insns[k]._replace(imm=2)] + insns[k + 1:])
    assert prove_equivalent(p, bad, "sched_cls", rewritten_ctx="xlated").verdict is ProofVerdict.COUNTEREXAMPLE
    k = next(i for i, x in enumerate(insns) if x.code == 0x79 and x.dst == 2)  # r2 = skb->dev
    bad = Program.from_insns(insns[:k] + [insns[k]._replace(off=insns[k].off + 8)] + insns[k + 1:])
    res = prove_equivalent(p, bad, "sched_cls", rewritten_ctx="xlated")
    assert res.verdict is ProofVerdict.UNDECIDED and "no pointer the model knows" in res.reason


@pytest.mark.slow
def test_kernel_pass_mutants_get_counterexamples_the_kernel_confirms(corpus):
    """A one-instruction mutant P' of the original, lowered by the kernel pass (K'), is a mutant of the
    kernel pass's output: P against K' must get the verdict P against P' gets, and the counterexample
    found through the kernel's view must show on the kernel when P and P' run on it."""
    rng = random.Random(1)
    found = confirmed = 0
    for name, p, t in corpus:
        for k, p2 in mutants(p, rng, 3):
            try:
                k2 = run_passes(p2, ["kernel"], PassContext(prog_type=t))
                load_program(p2, t).close() if not p2.meta.get("map_refs") else None
            except (BpfPatchError, VerifierError):
                continue
            user = prove_equivalent(p, p2, t, timeout=20)
            kview = prove_equivalent(p, k2, t, rewritten_ctx="xlated", timeout=20)
            if ProofVerdict.UNDECIDED in (user.verdict, kview.verdict):
                continue
            assert kview.verdict is user.verdict, (name, k, user, kview)
            if kview.verdict is ProofVerdict.COUNTEREXAMPLE:
                run = replay(p, p2, kview.counterexample, t)
                if run.error:
                    continue
                found += 1
                confirmed += run.confirmed
    print(f"kernel-view counterexamples {found}, confirmed by the kernel {confirmed}")
    assert found >= 8 and confirmed == found


# --- mutants: every difference the prover finds is one the kernel sees -----------------------


def mutants(p: Program, rng: random.Random, n: int):
    insns = p.insns
    cands = [k for k, i in enumerate(insns) if KIND_OF[i.code] in (Kind.ALU_K, Kind.JCOND_K, Kind.JCOND_X)]
    rng.shuffle(cands)
    for k in cands[:n]:
        i = insns[k]
        if KIND_OF[i.code] == Kind.ALU_K:
            new = i._replace(imm=i.imm + 1)
        else:
            op = JmpOp(i.code & 0xF0)
            if op not in INVERTED_JMP:
                continue
            new = i._replace(code=(i.code & 0x0F) | INVERTED_JMP[op])
        yield k, Program.from_insns(insns[:k] + [new] + insns[k + 1:], meta=p.meta, name=p.name)


@pytest.mark.slow
def test_mutant_counterexamples_are_confirmed_by_the_kernel(corpus):
    rng = random.Random(0)
    found = confirmed = 0
    unconfirmed = []
    for name, p, t in corpus:
        for k, q in mutants(p, rng, 3):
            res = prove_equivalent(p, q, t, timeout=20)
            if res.verdict is not ProofVerdict.COUNTEREXAMPLE:
                continue
            try:
                load_program(q, t).close() if not q.meta.get("map_refs") else None
            except VerifierError:
                continue  # the mutant is no program: the kernel refuses it
            run = replay(p, q, res.counterexample, t)
            if run.error:
                continue
            found += 1
            confirmed += run.confirmed
            if not run.confirmed:
                unconfirmed.append((name, k, res.reason))
    print(f"counterexamples {found}, confirmed by the kernel {confirmed}: {unconfirmed}")
    assert found >= 10
    # Helper-call arguments are observables the test run cannot show (flags of an update
    # that has the same effect): the rest must show on the kernel.
    assert all("helper call" in why for _, _, why in unconfirmed), unconfirmed


def test_counterexample_on_a_guard_mutant_runs_differently_on_the_kernel():
    p = prog("r2 = *(u32 *)(r1 + 0)\nr0 = 100\nr0 /= r2\nexit")
    q = run_passes(p, ["div-guard"])
    bad = Program.from_insns([Insn(0xB4, 0, 0, 0, 5) if i.code == 0xAC else i for i in q.insns])  # x/0 = 5
    res = prove_equivalent(p, bad, "socket_filter")
    assert res.verdict is ProofVerdict.COUNTEREXAMPLE
    assert res.counterexample.model_retvals == (0, 5)
    run = replay(p, bad, res.counterexample, "socket_filter")
    assert run.confirmed and (run.original.retval, run.rewritten.retval) == (0, 5)


# --- verdicts and the model ------------------------------------------------------------------


def test_bounded_loops_are_unrolled_and_unbounded_ones_undecided():
    loop = prog("r0 = 0\nr0 += 1\nif r0 < 4 goto -2\nexit")
    assert prove_equivalent(loop, run_passes(loop, ["blind"]), "socket_filter").verdict is ProofVerdict.PROVED
    five = prog("r0 = 0\nr0 += 1\nif r0 < 5 goto -2\nexit")
    res = prove_equivalent(loop, five, "socket_filter")
    assert res.verdict is ProofVerdict.COUNTEREXAMPLE and res.counterexample.model_retvals == (4, 5)
    by_len = prog("r2 = *(u32 *)(r1 + 0)\nr2 &= 7\nr0 = 0\nr0 += 3\nif r0 < r2 goto -2\nexit")
    assert prove_equivalent(by_len, run_passes(by_len, ["blind"]), "socket_filter").verdict is ProofVerdict.PROVED
    unbounded = prog("r2 = *(u32 *)(r1 + 0)\nr0 = 0\nr0 += 1\nif r0 < r2 goto -2\nexit")  # up to 128 times
    res = prove_equivalent(unbounded, run_passes(unbounded, ["blind"]), "socket_filter")
    assert res.verdict is ProofVerdict.UNDECIDED and "unroll bound" in res.reason


def test_unknown_helpers_are_undecided_with_the_reason():
    h = prog("call 999\nexit")
    assert "helper 999" in prove_equivalent(h, prog("r0 = 1\ncall 999\nexit"), "socket_filter").reason


def test_a_prefix_the_model_cannot_follow_does_not_make_the_region_unreachable():
    a, b = (prog(f"r6 = 1\ncall 999\nr0 = {v}\nexit") for v in (1, 2))
    res = prove_equivalent(a, b, "socket_filter")
    assert res.verdict is ProofVerdict.UNDECIDED and "helper 999" in res.reason


def test_paths_the_model_cannot_follow_must_be_unreachable():
    head = "r0 = 0\nr3 = *(u32 *)(r1 + 0)\nr3 &= 1\n"
    dead = prog(head + "if r3 < 2 goto +1\nr0 = *(u64 *)(r2 + 0)\nexit")  # r2 is no pointer: dead code only
    assert prove_equivalent(dead, prog(head + "if r3 < 2 goto +1\nr0 = 1\nexit"), "socket_filter").verdict is ProofVerdict.PROVED
    live = prog(head + "if r3 < 1 goto +1\nr0 = *(u64 *)(r2 + 0)\nexit")
    res = prove_equivalent(live, prog(head + "if r3 < 1 goto +1\nr0 = 1\nexit"), "socket_filter")
    assert res.verdict is ProofVerdict.UNDECIDED and "no pointer the model knows" in res.reason


def test_region_is_found_and_used_for_a_one_site_rewrite():
    body = "\n".join(f"r{1 + i % 5} += {i}" for i in range(200))
    p = prog(f"r2 = *(u32 *)(r1 + 0)\nr0 = 7\n{body}\nr0 /= r2\n{body}\nexit")
    q = run_passes(p, ["div-guard"])
    region = changed_region(p, q)
    assert region is not None and region[0] == 202 and region[1] - region[0] <= 3
    res = prove_equivalent(p, q, "socket_filter")
    assert res.verdict is ProofVerdict.PROVED and res.region == region


def test_region_exits_compare_live_registers_and_memory():
    p = prog("r2 = 1\n*(u64 *)(r10 - 8) = r2\nr3 = 5\nr0 = *(u64 *)(r10 - 8)\nexit")
    q = prog("r2 = 1\n*(u64 *)(r10 - 8) = r2\nr3 = 6\nr0 = *(u64 *)(r10 - 8)\nexit")  # r3 is dead
    assert prove_equivalent(p, q, "socket_filter").verdict is ProofVerdict.PROVED
    q2 = prog("r2 = 1\n*(u64 *)(r10 - 8) = r2\n*(u8 *)(r10 - 8) = 2\nr0 = *(u64 *)(r10 - 8)\nexit")
    assert prove_equivalent(p, q2, "socket_filter").verdict is ProofVerdict.COUNTEREXAMPLE


def test_bpf_division_semantics_are_the_kernels():
    # x/0 = 0, x%0 = x (64 and 32 bit), INT_MIN s/ -1 = INT_MIN, INT_MIN s% -1 = 0.
    cases = [("r0 = 9\nr1 = 0\nr0 /= r1", 0), ("r0 = 9\nr1 = 0\nr0 %= r1", 9), ("w0 = 9\nw1 = 0\nw0 %= w1", 9),
             ("r0 = 1\nr0 <<= 63\nr1 = -1\nr0 s/= r1\nr0 >>= 32", 0x80000000), ("r0 = 1\nr0 <<= 63\nr1 = -1\nr0 s%= r1", 0)]
    for text, want in cases:
        p = prog(text + "\nexit")
        assert model_retval(p) == want, text
        with load_program(p, "socket_filter") as lp:
            assert lp.test_run(bytes(64)).retval == want, text


def model_retval(p: Program, packet: bytes = bytes(64)) -> int:
    env = Env(ProgType.SOCKET_FILTER, 64)
    enc = Encoder(p, env)
    exits = enc.run(((), 0), enc.initial_state())
    assert len(exits) == 1
    r0 = z3.Extract(31, 0, exits[0].state.regs[0][0])
    subst = [(env.plen, z3.BitVecVal(len(packet) - 14, 64))]
    subst += [(env.pkt_byte(i), z3.BitVecVal(b, 8)) for i, b in enumerate(packet[14:])]
    return z3.simplify(z3.substitute(r0, *subst)).as_long()


ALU_OPS = [0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x90, 0xA0, 0xB0, 0xC0]
insn_st = st.one_of(
    st.tuples(st.sampled_from(["alu"]), st.sampled_from(ALU_OPS), st.booleans(), st.booleans(),
              st.integers(0, 3), st.integers(0, 3), st.integers(-(1 << 31), (1 << 31) - 1), st.booleans()),
    st.tuples(st.sampled_from(["neg", "end", "movsx"]), st.sampled_from([16, 32, 64, 8]), st.booleans(), st.booleans(),
              st.integers(0, 3), st.integers(0, 3), st.integers(0, 0), st.booleans()),
)


def build(ops, seeds) -> Program:
    insns = [Insn(0x18, r, 0, 0, seeds[r]) for r in range(4)]  # r0..r3 = 64-bit constants
    for kind, op, is64, reg, dst, src, imm, signed in ops:
        cls = 0x07 if is64 else 0x04
        if kind == "alu":
            off = 1 if signed and op in (0x30, 0x90) else 0
            if op in (0x60, 0x70, 0xC0) and not reg:
                imm &= 31
            insns.append(Insn(cls | op | (0x08 if reg else 0), dst, src if reg else 0, off, 0 if reg else imm))
        elif kind == "neg":
            insns.append(Insn(cls | 0x80, dst))
        elif kind == "end":
            width = op if op != 8 else 16
            insns.append(Insn(0x07 | 0xD0, dst, 0, 0, width) if is64 else Insn(0x04 | 0xD0 | (0x08 if reg else 0), dst, 0, 0, width))
        else:
            insns.append(Insn(cls | 0xB8, dst, src, op if op != 64 else 32))
    insns.append(Insn(0x95))
    return Program.from_insns(insns)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(insn_st, min_size=1, max_size=12), st.lists(st.integers(-(1 << 63), (1 << 63) - 1), min_size=4, max_size=4))
def test_model_equals_the_kernel_on_random_straight_line_alu(ops, seeds):
    try:
        p = build(ops, seeds)
    except BpfPatchError:
        assume(False)  # not an instruction (e.g. a 64-bit to-le)
    try:
        lp = load_program(p, "socket_filter")
    except VerifierError:
        return  # e.g. a division by a zero immediate
    with lp:
        want = lp.test_run(bytes(64)).retval
    assert model_retval(p) == want


def test_encoding_stops_at_its_budget_and_says_so():
    """Building the model is bounded too, not only the solver: a proof whose encoding outlasts
    `ENCODE_BUDGET` times the timeout is undecided, naming the instruction it stopped at (bcc's biostacks
    took 163 s at a 10 s timeout before), and the same pair with time to spare gets its verdict."""
    p = prog("r0 = *(u32 *)(r1 + 0)\nif r0 > 5 goto +1\nr0 = 1\nr0 += 1\nexit")
    q = prog("r0 = *(u32 *)(r1 + 0)\nif r0 > 5 goto +1\nr0 = 1\nr0 += 2\nexit")
    res = prove_equivalent(p, q, "socket_filter", timeout=1e-9)
    assert res.verdict is ProofVerdict.UNDECIDED and "the time ran out while encoding instruction" in res.reason
    assert prove_equivalent(p, q, "socket_filter").verdict is ProofVerdict.COUNTEREXAMPLE
    assert prove_equivalent(p, p, "socket_filter", timeout=1e-9).verdict is ProofVerdict.PROVED  # identical

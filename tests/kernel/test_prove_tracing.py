"""`bpfpatch.prove` on tracing programs (fentry / fexit / tp_btf / LSM): the context is the traced function's
u64 arguments, a load through a BTF pointer is a kernel read (an event: address, width, the k-th read's value
shared by both programs), bpf_probe_read_kernel & co. fill memory with the environment's bytes.

Wrong rewrites (a changed offset of a BTF-pointer load, a dropped context read, swapped arguments, a changed
return value) must each get a counterexample; faithful ones (blind, zext, the kernel pass's PROBE_MEM loads) are
proved, on hand-written programs and on xdp-tools' xdpdump_bpf.o.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from bpfpatch.asm import assemble
from bpfpatch.elf.model import MapSpec
from bpfpatch.isa import Insn
from bpfpatch.passes import PassContext, run_passes
from bpfpatch.program import Program
from bpfpatch.progtype import ProgType
from bpfpatch.prove import ProofVerdict, prove_equivalent
from bpfpatch.prove.corpus import elf_programs, prove_passes, summary
from bpfpatch.prove.model import KERNEL_MEMORY_TYPES

XDPDUMP = Path("/usr/lib/x86_64-linux-gnu/bpf/xdpdump_bpf.o")
SELFTESTS = Path("/tmp/objects-corpus")
THIRD_PARTY = Path("/tmp/corpus/objs")
PROBE_MEM = 0x20  # BPF_PROBE_MEM: the mode the kernel gives a BTF pointer's loads

# fentry on f(struct task_struct *p, u64 n): n + p->field16 + p->ptr24->field4
TRACE = """r6 = *(u64 *)(r1 + 0)
r7 = *(u64 *)(r1 + 8)
r2 = *(u32 *)(r6 + 16)
r0 = *(u64 *)(r6 + 24)
r3 = *(u32 *)(r0 + 4)
r0 = r7
r0 += r2
r0 += r3
exit"""


def prog(text: str, **meta) -> Program:
    return Program.from_insns(assemble(text), **meta)


def verdict(a: Program, b: Program, **kw):
    return prove_equivalent(a, b, ProgType.TRACING, **kw)


def probe_mem(p: Program, *slots: int) -> Program:
    """`p` with the loads at `slots` made BPF_PROBE_MEM (what the kernel pass does to BTF pointer loads)."""
    insns = [x._replace(code=x.code & 0x1F | PROBE_MEM) if k in slots else x for k, x in enumerate(p.insns)]
    return Program.from_insns(insns, validate=False, meta=p.meta)


# --- faithful rewrites are proved -------------------------------------------------------------


def test_faithful_rewrites_of_a_tracing_program_are_proved():
    p = prog(TRACE)
    for name in ("blind", "zext", "dce", "div-guard"):
        q = run_passes(p, [name], PassContext(seed=3, prog_type=ProgType.TRACING))
        res = verdict(p, q)
        assert res.verdict is ProofVerdict.PROVED, (name, res)
    # the kernel's view: the loads through BTF pointers are BPF_PROBE_MEM loads, the context loads are not
    assert verdict(p, probe_mem(p, 2, 3, 4), rewritten_ctx="xlated").verdict is ProofVerdict.PROVED


def test_the_tracing_context_is_shared_and_kernel_reads_are_positional():
    # the same arguments read twice are the same value; the same kernel address read twice need not be
    # (another CPU may write it between the reads): folding two reads into one is not proved
    twice_ctx = prog("r2 = *(u64 *)(r1 + 8)\nr3 = *(u64 *)(r1 + 8)\nr0 = r2\nr0 -= r3\nexit")
    assert verdict(twice_ctx, prog("r0 = 0\nexit")).verdict is ProofVerdict.PROVED
    twice_kmem = prog("r6 = *(u64 *)(r1 + 0)\nr2 = *(u32 *)(r6 + 8)\nr3 = *(u32 *)(r6 + 8)\nr0 = r2\nr0 -= r3\nexit")
    once = prog("r6 = *(u64 *)(r1 + 0)\nr2 = *(u32 *)(r6 + 8)\nr3 = r2\nr0 = r2\nr0 -= r3\nexit")
    assert verdict(twice_kmem, once).verdict is ProofVerdict.COUNTEREXAMPLE
    # reading two fields in the other order is another program (the reads are the events)
    swapped = "\n".join(TRACE.splitlines()[:2] + [TRACE.splitlines()[3], "r2 = *(u32 *)(r6 + 16)"] + TRACE.splitlines()[4:])
    assert verdict(prog(TRACE), prog(swapped)).verdict is ProofVerdict.COUNTEREXAMPLE


# --- wrong rewrites get counterexamples -------------------------------------------------------


MUTANTS = {
    "a changed offset of a BTF-pointer load": TRACE.replace("(r6 + 16)", "(r6 + 20)"),
    "a changed width of a BTF-pointer load": TRACE.replace("r2 = *(u32 *)(r6 + 16)", "r2 = *(u16 *)(r6 + 16)"),
    "a dropped context read": TRACE.replace("r7 = *(u64 *)(r1 + 8)", "r7 = 0"),
    "swapped arguments": TRACE.replace("(r1 + 0)", "(r1 + X)").replace("(r1 + 8)", "(r1 + 0)").replace("(r1 + X)", "(r1 + 8)"),
    "a changed return value": TRACE.replace("r0 += r3\nexit", "r0 += r3\nr0 += 1\nexit"),
    "a dropped pointer chase": TRACE.replace("r3 = *(u32 *)(r0 + 4)", "r3 = *(u32 *)(r6 + 4)"),
}


@pytest.mark.parametrize("what", sorted(MUTANTS))
def test_wrong_rewrites_of_a_tracing_program_get_a_counterexample(what):
    p, bad = prog(TRACE), prog(MUTANTS[what])
    res = verdict(p, bad)
    assert res.verdict is ProofVerdict.COUNTEREXAMPLE, res
    assert res.counterexample.differs
    # through the kernel's view too (the mutant's BTF loads as BPF_PROBE_MEM)
    k = [i for i, x in enumerate(bad.insns) if x.code & 0x07 == 0x01 and x.src in (6, 0)]
    assert verdict(p, probe_mem(bad, *k), rewritten_ctx="xlated").verdict is ProofVerdict.COUNTEREXAMPLE


def test_a_changed_offset_of_a_probe_mem_load_gets_a_counterexample():
    p = prog(TRACE)
    q = probe_mem(p, 2, 3, 4)
    bad = Program.from_insns([x._replace(off=x.off + 8) if k == 3 else x for k, x in enumerate(q.insns)], validate=False)
    res = verdict(p, bad, rewritten_ctx="xlated")
    assert res.verdict is ProofVerdict.COUNTEREXAMPLE and any("kread" in d for d in res.counterexample.differs)


# --- helpers of tracing programs ---------------------------------------------------------------

READ_STR = """*(u64 *)(r10 - 8) = {old}
r3 = *(u64 *)(r1 + 0)
r1 = r10
r1 += -16
r2 = 16
call {helper}
r0 = *(u8 *)(r10 - 8)
exit"""


def test_probe_read_overwrites_its_buffer_and_the_str_variant_may_not():
    st = "r9 = {}\n*(u64 *)(r10 - 8) = r9"
    a, b = (READ_STR.replace("*(u64 *)(r10 - 8) = {old}", st.format(v)) for v in (1, 2))
    # bpf_probe_read_kernel writes all 16 bytes: what the stack held before is gone
    assert verdict(prog(a.format(helper=113)), prog(b.format(helper=113))).verdict is ProofVerdict.PROVED
    # bpf_probe_read_kernel_str writes the string and its NUL: a short one leaves byte 8 as it was
    res = verdict(prog(a.format(helper=115)), prog(b.format(helper=115)))
    assert res.verdict is ProofVerdict.COUNTEREXAMPLE and "return value" in res.counterexample.differs
    # the same call, the same bytes: blinded, still proved
    p = prog(a.format(helper=115))
    assert verdict(p, run_passes(p, ["blind"], PassContext(seed=1))).verdict is ProofVerdict.PROVED


def test_current_task_btf_is_a_btf_pointer():
    p = prog("call 158\nr0 = *(u32 *)(r0 + 1264)\nexit")
    assert verdict(p, run_passes(p, ["blind"], PassContext(seed=2))).verdict is ProofVerdict.PROVED
    assert verdict(p, prog("call 158\nr0 = *(u32 *)(r0 + 1268)\nexit")).verdict is ProofVerdict.COUNTEREXAMPLE


ARRAY = {"fd3": MapSpec("m", 2, 4, 8, 4)}
#: r6 = the first argument; r0 = the array map's element 0 (a lookup of key 0 from the stack).
LOOKUP_KEY0 = """r6 = *(u64 *)(r1 + 0)
*(u32 *)(r10 - 4) = 0
r2 = r10
r2 += -4
ld_pseudo r1, 1, 3
call 1
"""
STORE_AROUND_READ = LOOKUP_KEY0 + """if r0 == 0 goto +4
{first}
r7 = *(u32 *)(r6 + 8)
*(u32 *)(r0 + 0) = 0
r0 = r7
exit"""


def test_a_map_store_before_a_kernel_read_is_seen():
    """Kernel memory may alias a map value: a store the other program does not make before the read is a difference
    even when the map ends the same (the read may have seen it)."""
    a = prog(STORE_AROUND_READ.format(first="*(u32 *)(r0 + 0) = 1"), meta={"map_specs": ARRAY})
    b = prog(STORE_AROUND_READ.format(first="*(u32 *)(r0 + 0) = 2"), meta={"map_specs": ARRAY})
    assert verdict(a, b).verdict is ProofVerdict.COUNTEREXAMPLE
    assert verdict(a, run_passes(a, ["blind"], PassContext(seed=4))).verdict is ProofVerdict.PROVED


def test_kfuncs_are_events_and_pointers_into_program_memory_are_undecided():
    from bpfpatch.btf.vmlinux import kernel_types

    kt = kernel_types()
    if kt is None or kt.func_id("bpf_rcu_read_lock") is None:
        pytest.skip("the running kernel's BTF (or its bpf_rcu_read_lock kfunc) is not readable")
    lock, unlock = kt.func_id("bpf_rcu_read_lock"), kt.func_id("bpf_rcu_read_unlock")
    body = assemble(TRACE)
    # the arguments read, then the BTF loads inside an RCU section; r0-r5 are the unlock's, r7 is returned
    p = Program.from_insns(body[:2] + [Insn(0x85, 0, 2, 0, lock)] + body[2:-1] + [Insn(0x85, 0, 2, 0, unlock),
                                                                                 Insn(0xBF, 0, 7), body[-1]])
    assert verdict(p, run_passes(p, ["blind"], PassContext(seed=5))).verdict is ProofVerdict.PROVED
    dropped = Program.from_insns([x for k, x in enumerate(p.insns) if k != 2])
    assert verdict(p, dropped).verdict is ProofVerdict.COUNTEREXAMPLE
    throw = kt.func_id("bpf_throw")
    if throw is not None:  # it does not return: what follows it is not the program's result
        thrown = Program.from_insns([Insn(0xB7, 1, 0, 0, 1), Insn(0x85, 0, 2, 0, throw), Insn(0xB4, 0, 0, 0, 0), Insn(0x95)])
        res = verdict(thrown, Program.from_insns(thrown.insns[:2] + [Insn(0xBF, 0, 1), Insn(0x95)]), use_region=False)
        assert res.verdict is ProofVerdict.UNDECIDED and "bpf_throw" in res.reason
    task_id = kt.func_id("bpf_task_from_pid")
    if task_id is not None:
        stack = Program.from_insns([Insn(0xBF, 1, 10), Insn(0x85, 0, 2, 0, task_id), Insn(0xB7, 0, 0, 0, 77), Insn(0x95)])
        res = verdict(stack, run_passes(stack, ["blind"], PassContext(seed=6)), use_region=False)
        assert res.verdict is ProofVerdict.UNDECIDED and "pointer into stack0" in res.reason


# --- a real object: xdp-tools' xdpdump fentry / fexit -------------------------------------------


def xdpdump():
    if not XDPDUMP.exists():
        pytest.skip(f"{XDPDUMP} is not installed (xdp-tools)")
    return {n: (p, t) for n, p, t in elf_programs(XDPDUMP)}


def test_xdpdump_rewrites_are_proved():
    progs = xdpdump()
    assert {t for _, t in progs.values()} == {ProgType.TRACING}
    rows = prove_passes([(n, p, t) for n, (p, t) in progs.items()], ["blind", "zext", "dce", "div-guard"])
    assert all(r.result.verdict is ProofVerdict.PROVED for r in rows), [(r.program, r.pass_name, str(r.result)) for r in rows]


def test_wrong_rewrites_of_xdpdump_get_counterexamples():
    p, t = xdpdump()["fentry/func:trace_on_entry"]
    insns = p.insns

    def mutant(k: int, new: Insn) -> Program:
        return Program.from_insns(insns[:k] + [new] + insns[k + 1:], meta=p.meta)

    rxq = next(k for k, x in enumerate(insns) if x.code == 0x79 and x.off == 40)  # r4 = xdp->rxq
    ret = max(k for k, x in enumerate(insns) if x.code == 0xB7 and x.dst == 0)  # r0 = 0 before exit
    cases = {
        "BTF load offset": mutant(rxq, insns[rxq]._replace(off=48)),
        "dropped context read": mutant(0, Insn(0xBF, 1, 1)),  # r1 stays the context, not its argument
        "return value": mutant(ret, insns[ret]._replace(imm=2)),
    }
    for what, bad in cases.items():
        res = prove_equivalent(p, bad, t)
        assert res.verdict is ProofVerdict.COUNTEREXAMPLE, (what, res)
    assert prove_equivalent(p, cases["return value"], t).counterexample.model_retvals == (0, 2)


# --- the corpora: every pass's rewrites of tracing programs --------------------------------------


def tracing_sample(root: Path, n: int, seed: int = 0, max_slots: int = 300):
    """A deterministic sample of `n` tracing / LSM programs of the objects under `root`."""
    paths = sorted(root.glob("*.o")) + sorted(root.glob("*/*.o"))
    rng = random.Random(seed)
    rng.shuffle(paths)
    out = []
    for path in paths:
        try:
            progs = elf_programs(path, prefix=f"{path.parent.name}/{path.name}:")
        except Exception:  # an object our reader refuses is the elf layer's business, not the prover's
            continue
        out += [x for x in progs if x[2] in KERNEL_MEMORY_TYPES and len(x[1].slots) <= max_slots][:2]
        if len(out) >= n:
            break
    return out[:n]


@pytest.mark.slow
@pytest.mark.parametrize("root", [SELFTESTS, THIRD_PARTY], ids=["selftests", "third-party"])
def test_every_pass_rewrite_of_tracing_programs_is_proved_or_undecided_with_a_reason(root):
    if not root.exists():
        pytest.skip(f"{root}: no object corpus (tests/objcorpus.py builds the selftests')")
    programs = tracing_sample(root, 24)
    assert len(programs) >= 12
    rows = prove_passes(programs, timeout=20)
    counts = summary(rows)
    print(json.dumps(counts))
    assert not [r for r in rows if r.result.verdict is ProofVerdict.COUNTEREXAMPLE], [
        (r.program, r.pass_name, r.result.reason) for r in rows if r.result.verdict is ProofVerdict.COUNTEREXAMPLE]
    for r in rows:
        if r.result.verdict is ProofVerdict.UNDECIDED:
            assert r.result.reason
    for name in ("div-guard", "dce", "zext", "blind"):
        c = counts[name]
        assert c["proved"] >= 0.75 * sum(c.values()), (name, c)


def test_kptr_xchg_is_what_the_kernel_inlines():
    """bpf_kptr_xchg and the kernel's inlined `r0 = r2; r0 = xchg(r1 + 0, r0)` are the same (no call event); the
    pointer it hands out is a BTF pointer either way."""
    head = assemble("*(u32 *)(r10 - 4) = 0\nr2 = r10\nr2 += -4\nld_pseudo r1, 1, 3\ncall 1")
    tail = assemble("r0 = *(u32 *)(r0 + 8)\nexit")
    setup = assemble("r1 = r0\nr2 = 0")
    xchg = [Insn(0xBF, 0, 2), Insn(0xDB, 1, 0, 0, 0xE1)]  # r0 = r2; r0 = atomic64_xchg(r1 + 0, r0)
    meta = {"map_specs": {"fd3": MapSpec("kptrs", 2, 4, 16, 4)}}  # two kptr fields
    call = Program.from_insns(head + [Insn(0x15, 0, 0, 4, 0)] + setup + [Insn(0x85, 0, 0, 0, 194)] + tail, meta=meta)
    inlined = Program.from_insns(head + [Insn(0x15, 0, 0, 5, 0)] + setup + xchg + tail, meta=meta)
    assert verdict(call, inlined, use_region=False).verdict is ProofVerdict.PROVED
    wrong = Program.from_insns(head + [Insn(0x15, 0, 0, 5, 0)] + setup + [xchg[0], Insn(0xDB, 1, 0, 8, 0xE1)] + tail,
                               meta=meta)  # another field exchanged
    assert verdict(call, wrong, use_region=False).verdict is ProofVerdict.COUNTEREXAMPLE


RINGBUF = {"fd4": MapSpec("rb", 27, 0, 0, 4096)}
RECORD = """r6 = *(u64 *)(r1 + 0)
ld_pseudo r1, 1, 4
r2 = 16
r3 = 0
call 131
if r0 == 0 goto +7
r7 = r0
r1 = *(u32 *)(r6 + 8)
*(u32 *)(r7 + 0) = r1
*(u64 *)(r7 + 8) = {value}
r1 = r7
r2 = 0
call 132
r0 = 0
exit"""


def test_a_ring_buffer_record_is_observed_when_submitted():
    p = prog(RECORD.format(value=5), meta={"map_specs": RINGBUF})
    assert verdict(p, run_passes(p, ["blind"], PassContext(seed=7))).verdict is ProofVerdict.PROVED
    res = verdict(p, prog(RECORD.format(value=6), meta={"map_specs": RINGBUF}))
    assert res.verdict is ProofVerdict.COUNTEREXAMPLE and any("call:132" in d for d in res.counterexample.differs)


PROBE_AROUND_STORE = LOOKUP_KEY0 + """if r0 == 0 goto +9
r8 = r0
{first}
r1 = r10
r1 += -16
r2 = 8
r3 = r6
call 113
r7 = *(u64 *)(r10 - 16)
*(u32 *)(r8 + 0) = 0
r0 = r7
exit"""


def test_a_map_store_before_a_probe_read_is_seen_in_a_kprobe_program():
    """bpf_probe_read_kernel may read the program's own map value (its address leaked into kernel memory): in any
    program type that calls it, the stores to map values are events."""
    a = prog(PROBE_AROUND_STORE.format(first="*(u32 *)(r8 + 0) = 1"), meta={"map_specs": ARRAY})
    b = prog(PROBE_AROUND_STORE.format(first="*(u32 *)(r8 + 0) = 2"), meta={"map_specs": ARRAY})
    assert prove_equivalent(a, b, ProgType.KPROBE).verdict is ProofVerdict.COUNTEREXAMPLE
    assert prove_equivalent(a, run_passes(a, ["blind"], PassContext(seed=8)), ProgType.KPROBE).verdict is ProofVerdict.PROVED


def test_inlined_lookups_of_two_alike_maps_are_read_by_the_map_r1_holds():
    """bcc's readahead: two hash maps with 4-byte keys, whose inlined lookups are the same kernel sequence; the
    kernel pass's output is proved (each is a lookup in the map r1 holds), a wrong value offset is not."""
    path = THIRD_PARTY / "bcc" / "readahead.o"
    if not path.exists():
        pytest.skip(f"{path}: the third-party corpus is not built")
    from bpfpatch.prove.corpus import pass_options

    name = "fexit/__page_cache_alloc:page_cache_alloc_ret"
    p, t = next((p, t) for n, p, t in elf_programs(path) if n == name)
    q = run_passes(p, ["kernel"], PassContext(prog_type=t, options=pass_options(p, t)))
    assert prove_equivalent(p, q, t, rewritten_ctx="xlated").verdict is ProofVerdict.PROVED
    k = next(k for k, x in enumerate(q.insns) if x.code == 0x07 and x.dst == 0 and x.imm == 56)  # r0 += value offset
    bad = Program.from_insns(q.insns[:k] + [q.insns[k]._replace(imm=64)] + q.insns[k + 1:], validate=False, meta=q.meta)
    assert prove_equivalent(p, bad, t, rewritten_ctx="xlated").verdict is not ProofVerdict.PROVED

"""`bpfpatch.prove` on the helpers modelled in stop 19: a tail call (taken: the called program's result, with the
memory as it is at the call), bpf_spin_lock / unlock (the locked value is the environment's once taken, stores are
ordered against the lock), the local-storage deletes, the socket casts (a BTF pointer or NULL), get/setsockopt and
the cgroup storage.

Each program of tests/progs/prove/helpers.c gets wrong rewrites (each a counterexample) and the built-in passes'
faithful ones (each proved); selftest objects that use the helpers are proved or undecided, never a counterexample.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from progtools import mutant, slot_insns as slots
from conftest import PROGS, compile_bpf
from bpfpatch.asm import assemble
from bpfpatch.elf import read_object
from bpfpatch.elf.model import MapSpec
from bpfpatch.isa import build
from bpfpatch.isa.opcodes import AluOp, Size
from bpfpatch.passes import PassContext, run_passes
from bpfpatch.program import Program
from bpfpatch.progtype import ProgType, prog_type_of
from bpfpatch.prove import ProofVerdict, prove_equivalent
from bpfpatch.prove.corpus import elf_programs, pass_options, prove_passes
from bpfpatch.prove.model import Encoder, Env

SELFTESTS = Path("/tmp/objects-corpus")


@pytest.fixture(scope="module")
def helpers(tmp_path_factory):
    obj = read_object(compile_bpf(PROGS / "prove" / "helpers.c", tmp_path_factory.mktemp("prove_helpers")))
    return {sec: obj.linked_program(sec) for sec in obj.programs if sec != ".text"}


def moved(p: Program, order: list[int]) -> Program:
    """`p` with the one-slot instructions at sorted(order) laid out in `order` instead."""
    at = slots(p)
    return mutant(p, {s: at[o] for s, o in zip(sorted(order), order)})


def check(p: Program, q: Program, sec: str):
    return prove_equivalent(p, q, prog_type_of(sec), timeout=20)


def faithful(p: Program, sec: str) -> None:
    ptype = prog_type_of(sec)
    for name in ("blind", "zext", "dce", "div-guard"):
        q = run_passes(p, [name], PassContext(seed=3, prog_type=ptype, options=pass_options(p, ptype)))
        res = check(p, q, sec)
        assert res.verdict is ProofVerdict.PROVED, (name, res)


def is_call(insn, helper: str) -> bool:
    return insn == build.call_helper(helper)


def slot_of(p: Program, pred) -> int:
    return next(s for s, x in slots(p).items() if pred(x))


# --- a tail call -------------------------------------------------------------------------------------------------


def test_tail_call_rewrites(helpers):
    sec = "xdp"
    p = helpers[sec]
    faithful(p, sec)
    call = slot_of(p, lambda x: is_call(x, "tail_call"))
    at = slots(p)
    index = call - 3  # w3 &= 3: the program array's slot
    assert at[index] == build.alu32_imm(AluOp.AND, 3, 3)
    ret = next(s for s in range(call, len(p.slots)) if at[s] == build.alu32_imm(AluOp.MOV, 0, 2))
    cases = {
        "another slot": {index: build.alu32_imm(AluOp.AND, 3, 1)},
        "the tail call dropped": {call: build.alu64_imm(AluOp.MOV, 0, 0)},
        "the fallback's result": {ret: build.alu32_imm(AluOp.MOV, 0, 3)},
    }
    for what, change in cases.items():
        res = check(p, mutant(p, change), sec)
        assert res.verdict is ProofVerdict.COUNTEREXAMPLE, (what, res)


def test_a_taken_tail_call_sees_the_memory_stored_before_it():
    """Storing after the tail call instead of before it only differs when the call is taken (the called program
    sees the store, or not): a counterexample; the same store before the call on both sides is proved."""
    meta = {"map_specs": {"fd3": MapSpec("jmp", 3, 4, 4, 4), "fd4": MapSpec(".bss", 2, 4, 8, 1)}}
    head = "r6 = r1\nld_pseudo r7, 2, 4\n"
    call = "ld_pseudo r2, 1, 3\nr1 = r6\nr3 = 0\ncall 12\n"
    store = "*(u64 *)(r7 + 0) = 1\n"
    before = Program.from_insns(assemble(head + store + call + "r0 = 2\nexit"), meta=meta)
    after = Program.from_insns(assemble(head + call + store + "r0 = 2\nexit"), meta=meta)
    res = prove_equivalent(before, after, ProgType.XDP)
    assert res.verdict is ProofVerdict.COUNTEREXAMPLE, res
    assert any(d.startswith("gd:fd4") for d in res.counterexample.differs), res.counterexample.differs
    again = Program.from_insns(assemble(head + store + call + "r0 = 2\nexit"), meta=meta)
    assert prove_equivalent(before, again, ProgType.XDP, use_region=False).verdict is ProofVerdict.PROVED


# --- a spin lock -------------------------------------------------------------------------------------------------


def test_spin_lock_rewrites(helpers):
    sec = "tc"
    p = helpers[sec]
    faithful(p, sec)
    lock = slot_of(p, lambda x: is_call(x, "spin_lock"))
    unlock = slot_of(p, lambda x: is_call(x, "spin_unlock"))
    at = slots(p)
    load = lock + 1
    assert at[load] == build.ldx_mem(Size.DW, 6, 8, 8)
    store = load + 2
    assert at[store] == build.stx_mem(Size.DW, 8, 6, 8)
    cases = {
        # the counter read before the lock is taken: another CPU may change it meanwhile
        "a load moved before the lock": moved(p, [load - 1, load, lock]),
        # the counter stored after the lock is released
        "a store moved after the unlock": moved(p, list(range(store + 1, unlock + 1)) + [store]),
        "the unlock dropped": mutant(p, {unlock: build.alu64_imm(AluOp.MOV, 0, 0)}),
    }
    for what, q in cases.items():
        res = check(p, q, sec)
        assert res.verdict is ProofVerdict.COUNTEREXAMPLE, (what, res)


# --- local storage deleted -----------------------------------------------------------------------------------------


def test_storage_delete_rewrites(helpers):
    sec = "tp_btf/sched_process_exit"
    p = helpers[sec]
    faithful(p, sec)
    delete = slot_of(p, lambda x: is_call(x, "task_storage_delete"))
    owner = delete - 1
    assert slots(p)[owner] == build.alu64_reg(AluOp.MOV, 2, 7)
    cases = {
        "the delete dropped": mutant(p, {delete: build.alu64_imm(AluOp.MOV, 0, 0)}),
        "another owner": mutant(p, {owner: build.alu64_reg(AluOp.MOV, 2, 6)}),
    }
    for what, q in cases.items():
        res = check(p, q, sec)
        assert res.verdict is ProofVerdict.COUNTEREXAMPLE, (what, res)
    refs = dict(p.meta["map_refs"])
    refs[delete - 3] = ("others", None)  # the delete's map: the other storage
    other = Program.from_insns(p.insns, meta={**p.meta, "map_refs": refs})
    assert check(p, other, sec).verdict is ProofVerdict.COUNTEREXAMPLE


def test_a_deleted_storage_is_absent_to_the_next_get():
    """get, delete, get of one owner: the second get finds nothing unless the delete failed, so a program that
    returns 1 when the second get finds it and the delete succeeded is the program that returns 0 then."""
    meta = {"map_specs": {"fd3": MapSpec("starts", 29, 4, 8, 0)}}
    text = """r6 = *(u64 *)(r1 + 0)
ld_pseudo r1, 1, 3
r2 = r6
r3 = 0
r4 = 1
call 156
ld_pseudo r1, 1, 3
r2 = r6
call 157
r7 = r0
ld_pseudo r1, 1, 3
r2 = r6
r3 = 0
r4 = 0
call 156
r1 = 0
if r7 != 0 goto +2
if r0 == 0 goto +1
r1 = {found}
r0 = r1
exit"""
    found = Program.from_insns(assemble(text.format(found=1)), meta=meta)
    never = Program.from_insns(assemble(text.format(found=0)), meta=meta)
    assert prove_equivalent(found, never, ProgType.TRACING, use_region=False).verdict is ProofVerdict.PROVED
    kept = Program.from_insns(assemble(text.format(found=1).replace("call 157", "r0 = 0")), meta=meta)
    assert prove_equivalent(found, kept, ProgType.TRACING, use_region=False).verdict is ProofVerdict.COUNTEREXAMPLE


# --- a socket cast -------------------------------------------------------------------------------------------------


def test_socket_cast_rewrites(helpers):
    sec = "fentry/tcp_v6_connect"
    p = helpers[sec]
    faithful(p, sec)
    cast = slot_of(p, lambda x: is_call(x, "skc_to_tcp6_sock"))
    cases = {
        "another argument cast": {cast - 1: build.ldx_mem(Size.DW, 1, 1, 8)},
        "the cast dropped": {cast: build.alu64_reg(AluOp.MOV, 0, 1)},
    }
    for what, change in cases.items():
        res = check(p, mutant(p, change), sec)
        assert res.verdict is ProofVerdict.COUNTEREXAMPLE, (what, res)


# --- selftest objects ----------------------------------------------------------------------------------------------

#: Selftest objects whose programs call these helpers.
SELFTEST_OBJECTS = ("tailcall1.o", "lsm_tailcall.o", "tailcall_poke.o", "test_spin_lock.o", "local_storage.o",
                    "sock_destroy_prog.o", "lsm_cgroup.o")
#: The helpers modelled here: a selftest program's call of one, dropped, is a counterexample (not the cgroup storage:
#: its map value, dropped, is a region one program has and the other not, undecided).
MODELLED = {build.helper_id(h) for h in ("tail_call", "spin_lock", "spin_unlock", "task_storage_delete",
                                          "inode_storage_delete", "sk_storage_delete", "skc_to_tcp6_sock",
                                          "skc_to_tcp_sock", "skc_to_udp6_sock", "skc_to_unix_sock", "setsockopt",
                                          "getsockopt")}


@pytest.mark.parametrize("name", SELFTEST_OBJECTS)
def test_selftest_objects_using_the_helpers(name):
    """blind and zext rewrites are proved or undecided with a reason; in a proved program, each call of a helper
    modelled here dropped (r0 = 0 instead) is a counterexample."""
    path = SELFTESTS / name
    if not path.exists():
        pytest.skip(f"{path}: no selftest object (tests/objcorpus.py builds them)")
    proved, dropped = 0, 0
    for prog_name, p, ptype in elf_programs(path):
        ok = True
        for pname in ("blind", "zext"):
            q = run_passes(p, [pname], PassContext(seed=1, prog_type=ptype, options=pass_options(p, ptype)))
            res = prove_equivalent(p, q, ptype, timeout=10)
            assert res.verdict is not ProofVerdict.COUNTEREXAMPLE, (prog_name, pname, res)
            assert res.verdict is ProofVerdict.PROVED or res.reason, (prog_name, pname)
            ok = ok and res.verdict is ProofVerdict.PROVED
        if not ok:
            continue
        proved += 1
        for s, insn in slots(p).items():
            if insn.code == build.call_helper(1).code and insn.src == 0 and insn.imm in MODELLED:
                res = prove_equivalent(p, mutant(p, {s: build.alu64_imm(AluOp.MOV, 0, 0)}), ptype, timeout=10)
                assert res.verdict is ProofVerdict.COUNTEREXAMPLE, (prog_name, s, res)
                dropped += 1
    assert proved and dropped, (name, proved, dropped)


# --- found on the third-party sweep -----------------------------------------------------------------------------


def test_the_kernel_view_of_an_unconverted_context_is_the_programs():
    """A tracepoint's (kprobe's, raw tracepoint's) context is not converted by the verifier: in the kernel's view
    (``xlated``, a rewritten program with lowered sequences) its bytes are the ones the original reads.  They were
    the bytes of a converted context, other symbols: bcc's biopattern, a faithful kernel pass rewrite (an inlined
    map lookup), got a counterexample."""
    p = Program.from_insns(assemble("r0 = *(u64 *)(r1 + 8)\nexit"))
    for ptype, converted in ((ProgType.TRACEPOINT, False), (ProgType.KPROBE, False), (ProgType.TRACING, False),
                             (ProgType.SOCKET_FILTER, True)):
        env = Env(ptype)
        user, kernel = Encoder(p, env), Encoder(p, env, lowerings={})
        assert (user.ctx_key(8) != kernel.ctx_key(8)) is converted, ptype
    obj = Path("/tmp/corpus/objs/bcc/biopattern.o")
    if obj.exists():
        rows = prove_passes(elf_programs(obj), ["kernel"], timeout=20)
        assert rows and all(r.result.verdict is not ProofVerdict.COUNTEREXAMPLE for r in rows), rows


#: lookup; when absent: insert zeros and look up again; then value[ctx byte & mask] += 1 (bcc's histograms)
HISTOGRAM = """r6 = *(u8 *)(r1 + 0)
r6 &= {mask}
*(u32 *)(r10 - 4) = 0
r2 = r10
r2 += -4
ld_pseudo r1, 1, 3
call 1
if r0 != 0 goto +14
*(u64 *)(r10 - 16) = 0
*(u64 *)(r10 - 24) = 0
r2 = r10
r2 += -4
r3 = r10
r3 += -24
ld_pseudo r1, 1, 3
r4 = 0
call 2
r2 = r10
r2 += -4
ld_pseudo r1, 1, 3
call 1
if r0 == 0 goto +5
r6 <<= 3
r0 += r6
r1 = 1
lock *(u64 *)(r0 + 0) += r1
r0 = 0
exit"""


def test_a_variable_offset_into_one_of_two_lookups_of_a_map():
    """The value pointer is one of two lookups' (merged paths) plus a variable offset: each lookup's region is
    accessed at that offset.  bcc's biopattern (`x = lookup(); if (!x) { update(); x = lookup(); }`, then a
    histogram slot by a variable index) was undecided: "a pointer into one of mv:counters:0, mv:counters:1"."""
    meta = {"map_specs": {"fd3": MapSpec("hist", 1, 4, 16, 8)}}
    p = Program.from_insns(assemble(HISTOGRAM.format(mask=1)), meta=meta)
    q = run_passes(p, ["blind"], PassContext(seed=4, prog_type=ProgType.KPROBE))
    whole = prove_equivalent(p, q, ProgType.KPROBE, use_region=False)
    assert whole.verdict is ProofVerdict.PROVED, whole
    r = Program.from_insns(assemble(HISTOGRAM.format(mask=1).replace("r6 <<= 3", "r6 <<= 2")), meta=meta)
    res = prove_equivalent(p, r, ProgType.KPROBE, use_region=False)
    assert res.verdict is ProofVerdict.COUNTEREXAMPLE, res
    obj = Path("/tmp/corpus/objs/bcc/biopattern.o")
    if obj.exists():
        rows = prove_passes(elf_programs(obj), ["blind", "zext"], timeout=20)
        assert rows and all(r.result.verdict is ProofVerdict.PROVED for r in rows), rows

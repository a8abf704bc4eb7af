"""Where the analysis checkpoints and prunes: the kernel's places and heuristics, and facts that do not depend on them.

The kernel reports how many instructions it processed (``verified_insns``):
that count is a direct measure of where it kept checkpoints and pruned (an
instruction is counted before the prune check, as do_check does).  On
programs that fork at every block, diamonds, bounded and nested loops, ours
is the same number, with the kernel's default heuristics and with
``BPF_F_TEST_STATE_FREQ`` (a checkpoint at every prune point).  The facts the
passes read (``seen``, pointer types, maps, helpers) do not depend on the
checkpoints: real objects give the same facts with checkpoints everywhere.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from conftest import PROGS, compile_bpf

from bpfpatch.analysis.verifier import analyze
from bpfpatch.elf import read_object
from bpfpatch.progtype import UnknownProgType, prog_type_of
from bpfpatch.program import Program

BPF_F_TEST_STATE_FREQ = 1 << 3
XDP_TOOLS = Path("/usr/lib/x86_64-linux-gnu/bpf")


def _i(code: int, regs: int, off: int, imm: int) -> bytes:
    return struct.pack("<BBhi", code, regs, off, imm)


EXIT = _i(0x95, 0, 0, 0)


def blocks(n: int) -> bytes:
    """bench/bench_analysis.py's shape: 256-instruction blocks, each forking once, with a spill, a fill and a decided jump."""
    body = [_i(0xBF, 0x01, 0, 0), _i(0x57, 0x01, 0, 0xFF), _i(0x25, 0x01, 1, 100), _i(0x07, 0x00, 0, 1),
            _i(0x7B, 0x0A, -8, 0), _i(0x79, 0xA0, -8, 0), _i(0x55, 0x03, 0, 0)]
    body += [_i(0x07 if k % 2 else 0xA7, 0x02, 0, k * 37) for k in range(256 - len(body))]
    ins = [_i(0x61, 0x10, 0, 0), _i(0xB7, 0x02, 0, 0), _i(0xB7, 0x03, 0, 0)]
    while len(ins) + len(body) + 2 <= n:
        ins.extend(body)
    return b"".join(ins) + _i(0xB7, 0, 0, 0) + EXIT


def loop(k: int) -> bytes:
    """r1 counts to k, r0 sums it: the loop is unrolled until it leaves."""
    return _i(0xB7, 0, 0, 0) + _i(0xB7, 1, 0, 0) + _i(0x07, 1, 0, 1) + _i(0x0F, 0x10, 0, 0) + _i(0xA5, 1, -3, k) + EXIT


def nested(k: int) -> bytes:
    """Two nested counted loops."""
    return (_i(0xB7, 0, 0, 0) + _i(0xB7, 1, 0, 0) + _i(0xB7, 2, 0, 0) + _i(0x07, 2, 0, 1) + _i(0x0F, 0x20, 0, 0)
            + _i(0xA5, 2, -3, k) + _i(0x07, 1, 0, 1) + _i(0xA5, 1, -6, k) + EXIT)


def diamonds(m: int) -> bytes:
    """m branches on an unknown value in a row, each setting r2 on one side only."""
    out = _i(0x61, 0x10, 0, 0) + _i(0xB7, 2, 0, 0)
    for i in range(m):
        out += _i(0x25, 0, 1, i) + _i(0xB7, 2, 0, i)
    return out + _i(0xB7, 0, 0, 0) + EXIT


def may_goto_counter() -> bytes:
    """r0 counts up in a loop only may_goto bounds: the kernel widens r0 (imprecise) after one iteration."""
    from bpfpatch.isa.build import add64_imm, exit_insn, ja, may_goto, mov64_imm

    return Program.from_insns([mov64_imm(0, 0), may_goto(2), add64_imm(0, 1), ja(-3), exit_insn()]).to_bytes()


def may_goto_nested() -> bytes:
    """A may_goto loop inside another, the inner count added to the outer one."""
    from bpfpatch.asm import assemble

    return Program.from_insns(assemble("""
        r0 = 0
        r6 = 0
        may_goto +6
        r7 = 0
        may_goto +2
        r7 += 1
        goto -3
        r6 += r7
        goto -7
        r0 = r6
        exit
    """)).to_bytes()


def may_goto_in_subprog() -> bytes:
    """A function with nested may_goto loops called from three places: each call chain is a visit of its own."""
    from bpfpatch.asm import assemble

    return Program.from_insns(assemble("""
        r6 = 0
        r1 = 3
        call pc+8
        r6 += r0
        r1 = 5
        call pc+5
        r6 += r0
        r1 = 7
        call pc+2
        r0 += r6
        exit
        r0 = 0
        r2 = 0
        may_goto +6
        r3 = 0
        may_goto +2
        r3 += 1
        goto -3
        r2 += r3
        goto -7
        r0 = r2
        exit
    """)).to_bytes()


def spill_join(tail: str) -> bytes:
    """Two paths spill different pointers to fp-8 and join; `tail` follows the join (6.18's stack liveness
    decides whether the join prunes: a slot nothing reads after it no longer keeps the paths apart)."""
    from bpfpatch.asm import assemble

    pad = "\n".join(["r2 = 0"] + [f"r2 += {k}" for k in range(7)])
    return Program.from_insns(assemble(f"""
        {pad}
        r0 = *(u32 *)(r1 + 0)
        if r0 > 10 goto +2
        *(u64 *)(r10 - 8) = r1
        goto +1
        *(u64 *)(r10 - 8) = r10
        r0 = 0
        {tail}
        exit
    """)).to_bytes()


def spill_or_misc(spill_first: bool) -> bytes:
    """One path spills a scalar 0 to fp-8, the other has bpf_skb_load_bytes write it (MISC bytes); both read it
    after the join.  A 64-bit scalar spill and an all-MISC slot compare as registers (an unbound scalar
    for the MISC bytes: stacksafe's scalar_reg_for_stack), so an imprecise spilled 0 explored first
    prunes the MISC path (pyperf_global: 9,562 processed against the kernel's 7,185 before)."""
    from bpfpatch.asm import assemble

    pad = "\n".join(["r2 = 0"] + [f"r2 += {k}" for k in range(7)])
    zero = "r2 = 0\n*(u64 *)(r10 - 8) = r2"
    load = "r6 = r1\nr2 = 0\nr3 = r10\nr3 += -8\nr4 = 8\ncall 26\nr1 = r6"  # bpf_skb_load_bytes(skb, 0, fp-8, 8)
    first, second = (zero, load) if spill_first else (load, zero)
    return Program.from_insns(assemble(f"""
        {pad}
        r0 = *(u32 *)(r1 + 0)
        if r0 > 10 goto +{len(first.splitlines()) + 1}
        {first}
        goto +{len(second.splitlines())}
        {second}
        r0 = 0
        {READ_SLOT}
        exit
    """)).to_bytes()


DEAD_SLOT = "\n".join(["r0 += 1"] * 10)
READ_SLOT = "r3 = *(u64 *)(r10 - 8)\n" + DEAD_SLOT
CALLEE_READS = """r1 = r10
        r1 += -8
        call pc+2
        r0 = 0
        exit
        r0 = *(u64 *)(r1 + 0)
        r0 = 0"""
OVERWRITTEN = "*(u64 *)(r10 - 8) = r2\n" + READ_SLOT


SHAPES = {"blocks3000": blocks(3000), "blocks10000": blocks(10000), "loop100": loop(100), "nested20": nested(20),
          "diamonds20": diamonds(20), "diamonds200": diamonds(200), "may_goto_counter": may_goto_counter(),
          "may_goto_nested": may_goto_nested(), "may_goto_in_subprog": may_goto_in_subprog(),
          "dead_slot": spill_join(DEAD_SLOT), "read_slot": spill_join(READ_SLOT),
          "callee_reads": spill_join(CALLEE_READS), "overwritten": spill_join(OVERWRITTEN),
          "spill_vs_misc": spill_or_misc(True), "misc_vs_spill": spill_or_misc(False)}


@pytest.mark.kernel
@pytest.mark.parametrize("freq", [False, True], ids=["default", "state_freq"])
@pytest.mark.parametrize("name", sorted(SHAPES))
def test_processed_equals_kernel(name, freq):
    from bpfpatch.kernel import load_program

    raw = SHAPES[name]
    with load_program(raw, "socket_filter", prog_flags=BPF_F_TEST_STATE_FREQ if freq else 0) as lp:
        kernel = lp.verified_insns
    ours = analyze(Program.from_bytes(raw), "socket_filter", keep_states=False, test_state_freq=freq)
    assert ours.processed == kernel


@pytest.mark.kernel
@pytest.mark.parametrize("freq", [False, True], ids=["default", "state_freq"])
def test_processed_equals_kernel_across_callsites(objdir, freq):
    """A function called from five places: its entry's checkpoints are kept per callsite (the kernel's lists
    are per hash of instruction and callsite), so one call's checkpoint still being explored does not
    keep the next call from adding its own (counted one list for all, 258 against the kernel's 255)."""
    from bpfpatch.kernel import load_program

    prog = read_object(compile_bpf(PROGS / "analysis" / "callsites.c", objdir)).linked_program("tc")
    raw = prog.to_bytes()
    with load_program(raw, "sched_cls", prog_flags=BPF_F_TEST_STATE_FREQ if freq else 0) as lp:
        kernel = lp.verified_insns
    ours = analyze(prog, "sched_cls", keep_states=False, test_state_freq=freq)
    assert ours.processed == kernel


def _facts(a) -> list:
    return [None if x is None else (x.seen, x.ptr_type, x.ctx_field_size, x.map, x.call_helper) for x in a.aux]


def _objects(objdir) -> list[Path]:
    out = [compile_bpf(PROGS / "analysis" / "corpus.c", objdir)]
    out += [XDP_TOOLS / n for n in ("xdpfilt_alw_eth.o", "xsk_def_xdp_prog.o", "xdp-dispatcher.o") if (XDP_TOOLS / n).exists()]
    return out


def test_facts_do_not_depend_on_checkpoints(objdir):
    compared = 0
    for path in _objects(objdir):
        obj = read_object(path)
        for sec in obj.programs:
            if sec == ".text":
                continue
            prog = obj.linked_program(sec)
            try:
                ptype = prog_type_of(sec)
            except UnknownProgType:
                continue
            default = analyze(prog, ptype, keep_states=False)
            everywhere = analyze(prog, ptype, keep_states=False, test_state_freq=True)
            assert everywhere.total_states >= default.total_states
            assert _facts(everywhere) == _facts(default), f"{path.name}:{sec}"
            compared += 1
    assert compared >= 6

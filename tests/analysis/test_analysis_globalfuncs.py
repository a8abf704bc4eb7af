"""Global functions: verified on their own from their BTF argument types, as the kernel does.

The prototypes come from the object's BTF (`bpfpatch.btf.funcs`); against the
kernel, the states at every step of the log_level 2 log (the global functions'
own verification included) agree with ours, and we process as many
instructions as the kernel.
"""

from __future__ import annotations

import pytest
from conftest import PROGS, compile_bpf

from analysis_kernel import assert_selftest_agrees, check_object
from bpfpatch import Program
from bpfpatch.analysis.facts import RegType
from bpfpatch.analysis.funcinfo import ArgKind, FuncArg, SubprogFunc
from bpfpatch.analysis.verifier import AnalysisRejected, analyze
from bpfpatch.btf.funcs import subprog_funcs
from bpfpatch.elf import read_object
from bpfpatch.isa.build import Size, call_subprog, exit_insn, ldx_mem, mov64_imm, mov64_reg
from bpfpatch.progtype import ProgType

SRC = PROGS / "analysis" / "globalfuncs.c"


@pytest.fixture(scope="module")
def obj(objdir):
    return compile_bpf(SRC, objdir)


def test_prototypes_from_btf(obj):
    elf = read_object(str(obj))
    recs = [(fi.insn_off, fi.type_id) for fi in elf.btf_ext.func_info[".text"]]
    funcs = {f.name: f for f in subprog_funcs(elf.btf, recs, ProgType.SCHED_CLS).values()}
    assert funcs["sum_pair"] == SubprogFunc(funcs["sum_pair"].start, "sum_pair", True,
                                            (FuncArg(ArgKind.MEM, size=8, nullable=True),))
    assert funcs["scaled"].args == (FuncArg(ArgKind.MEM, size=8, nullable=False), FuncArg(ArgKind.SCALAR))
    assert funcs["ctx_len"].args == (FuncArg(ArgKind.CTX),)
    # an xdp program's context is xdp_md: a __sk_buff pointer is memory there
    xdp = {f.name: f for f in subprog_funcs(elf.btf, recs, ProgType.XDP).values()}
    assert xdp["ctx_len"].args[0].kind is ArgKind.MEM
    # a struct named as kprobe's context typedef is kprobe's context (btf_is_prog_ctx_type compares the
    # typedef's name before its struct's: test_global_func_ctx_args' kprobe_workaround_ctx); memory elsewhere
    kprobe = {f.name: f for f in subprog_funcs(elf.btf, recs, ProgType.KPROBE).values()}
    assert kprobe["regs_ctx"].args == (FuncArg(ArgKind.CTX),)
    assert funcs["regs_ctx"].args[0].kind is ArgKind.MEM


def test_global_call_sees_scalar_r0_and_callee_runs_alone():
    # main: r0 = f(ctx); exit.   f (global, arg ctx): r0 = *(u32 *)(r1 + 0); r0 = 7; exit
    p = Program.from_insns([call_subprog(2), mov64_reg(2, 0), exit_insn(),
                            ldx_mem(Size.W, 0, 1, 0), mov64_imm(0, 7), exit_insn()])
    funcs = {3: SubprogFunc(3, "f", True, (FuncArg(ArgKind.CTX),))}
    a = analyze(p, "socket_filter", funcs=funcs)
    r0 = a.aux[1].states[0].regs[0]
    assert r0.type is RegType.SCALAR and not r0.is_const()  # a static call would give 7
    entry = a.aux[3].states
    assert len(entry) == 1 and len(entry[0].frames) == 1 and entry[0].regs[1].type is RegType.PTR_TO_CTX
    static = analyze(p, "socket_filter")
    assert static.aux[1].states[0].regs[0].is_const()
    # a caller passing a scalar where the prototype wants the context is refused at the call
    bad = Program.from_insns([mov64_imm(1, 0), call_subprog(1), exit_insn(), mov64_imm(0, 0), exit_insn()])
    with pytest.raises(AnalysisRejected, match=r"Caller passes invalid args into func#1 \('f'\)") as exc:
        analyze(bad, "socket_filter", funcs={3: funcs[3]})
    assert exc.value.index == 1


def test_global_exit_needs_a_scalar():
    # main: call g; exit.   g: r0 = r1 (the context); exit
    p = Program.from_insns([call_subprog(1), exit_insn(), mov64_reg(0, 1), exit_insn()])
    with pytest.raises(AnalysisRejected, match="At subprogram exit the register R0 is not a scalar value") as exc:
        analyze(p, "socket_filter", funcs={2: SubprogFunc(2, "g", True, (FuncArg(ArgKind.CTX),))})
    assert exc.value.index == 3


def test_analyze_command_verifies_global_functions_alone(obj, capsys):
    from bpfpatch.cli import main

    assert main(["analyze", str(obj), "--section", "tc"]) == 0
    out = capsys.readouterr().out
    # each global function once, after the main program, in subprogram order (do_check_subprogs); the order is
    # libbpf's layout, depth first: main calls scaled (which calls sum_pair), then ctx_len
    names = [line.split()[1] for line in out.splitlines() if line.startswith("Validating ")]
    assert names == ["scaled()", "sum_pair()", "ctx_len()"]


@pytest.mark.kernel
def test_global_functions_agree_with_kernel(obj):
    results = check_object(str(obj))
    assert {r.name for r in results} == {"global_calls", "global_xdp"}
    for r in results:
        assert not r.kernel_error, r.kernel_error
        assert not r.our_error, r.our_error
        assert r.cmp.types_agree, r.cmp.type_mismatches[:3]
        assert r.cmp.exact_match == r.cmp.steps, r.cmp.exact_mismatches[:3]
        assert r.processed == r.kernel_processed


# Selftest objects whose programs need the BTF models: global functions verified alone (exceptions),
# rbtree `less` callbacks (refcounted_kptr), kptrs in map values (local_kptr_stash, crypto_sanity).
BTF_MODEL_OBJECTS = ["exceptions", "refcounted_kptr", "local_kptr_stash", "crypto_sanity"]
# Sockets as helper arguments: a sockmap's value is a socket (resolve_map_arg_type), skb->sk in a socket
# filter, sk_lookup's ctx->sk a socket or NULL and its bpf_sk_assign taking NULL (refused before).
SOCKET_ARG_OBJECTS = ["verifier_sockmap_mutate", "test_sockmap_update", "test_sk_lookup"]


@pytest.mark.slow
@pytest.mark.kernel
@pytest.mark.parametrize("name", BTF_MODEL_OBJECTS + SOCKET_ARG_OBJECTS)
def test_btf_models_agree_on_selftests(name, tmp_path_factory):
    assert_selftest_agrees(name, tmp_path_factory.getbasetemp() / "btfmodels")

"""BTF-typed contexts (tracing, iterators, struct_ops, LSM) against the running kernel.

`bpfpatch.btf.ctxargs.btf_ctx_layout` reads the attach target's prototype
from the kernel's BTF; the analysis types a context load by it
(``btf_ctx_access``).  Hand-written programs are loaded with their attach
target at log_level 2: every step's register types must be the kernel's,
and what the kernel refuses (a narrow load of a pointer argument, a slot past
the arguments, a misaligned load, a write) we refuse too.  On the selftest
object corpus (tests/objcorpus.py --selftests /tmp/objects-corpus), a fixed
sample of programs of these types goes through ``--pass kernel`` and must
equal the kernel's xlated program.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bpfpatch.analysis.facts import RegType
from bpfpatch.analysis.verifier import AnalysisRejected, analyze
from bpfpatch.analysis.vlog import compare, parse_log
from bpfpatch.asm import assemble
from bpfpatch.btf.ctxargs import BPF_LSM_MAC, BPF_TRACE_ITER, BPF_TRACE_RAW_TP, btf_ctx_layout
from bpfpatch.btf.types import BtfKind
from bpfpatch.btf.vmlinux import kernel_btf_available, kernel_types
from bpfpatch.errors import KernelError
from bpfpatch.program import Program
from bpfpatch.progtype import ProgType

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(not kernel_btf_available(), reason="no kernel BTF (/sys/kernel/btf/vmlinux)")]


def _typedef(kt, name: str) -> int:
    return next(t for t in range(1, kt.type_count) if kt.type(t).kind == BtfKind.TYPEDEF and kt.type(t).name == name)


def _member(kt, struct: str, name: str) -> int:
    return next(off // 8 for m, _, off in kt.find(BtfKind.STRUCT, struct).members if m == name)


def _struct_ops(kt, struct: str, member: str) -> tuple[int, int]:
    t = kt.find(BtfKind.STRUCT, struct)
    return t.id, [m for m, _, _ in t.members].index(member)


def test_layouts_of_each_kind_of_target():
    kt = kernel_types()
    fork = btf_ctx_layout(kt, ProgType.TRACING, BPF_TRACE_RAW_TP, _typedef(kt, "btf_trace_sched_process_fork"))
    assert [(a.type, a.btf_name) for a in fork.args] == [(RegType.PTR_TO_BTF_ID, "task_struct")] * 2
    # raw_tp_null_args: kfree_skb's rx_sk (argument 3) may be NULL
    skb = btf_ctx_layout(kt, ProgType.TRACING, BPF_TRACE_RAW_TP, _typedef(kt, "btf_trace_kfree_skb"))
    assert skb.args[0].type is RegType.PTR_TO_BTF_ID and skb.args[3] .type is RegType.PTR_TO_BTF_ID_OR_NULL
    assert skb.args[1].type is RegType.SCALAR and skb.args[1].pointer  # void *location: 8-byte loads only
    # an iterator: meta and the map trusted, key and value maybe-NULL buffers
    elem = btf_ctx_layout(kt, ProgType.TRACING, BPF_TRACE_ITER, kt.func_id("bpf_iter_bpf_map_elem"))
    assert [a.type for a in elem.args] == [RegType.PTR_TO_BTF_ID, RegType.PTR_TO_BTF_ID, RegType.PTR_TO_BUF_OR_NULL,
                                           RegType.PTR_TO_BUF_OR_NULL]
    task = btf_ctx_layout(kt, ProgType.TRACING, BPF_TRACE_ITER, kt.func_id("bpf_iter_task"))
    assert [(a.type, a.btf_name) for a in task.args] == [(RegType.PTR_TO_BTF_ID, "bpf_iter_meta"),
                                                        (RegType.PTR_TO_BTF_ID_OR_NULL, "task_struct")]
    # struct_ops: the member's prototype; cong_avoid returns void
    sid, idx = _struct_ops(kt, "tcp_congestion_ops", "cong_avoid")
    ops = btf_ctx_layout(kt, ProgType.STRUCT_OPS, idx, sid)
    assert ops.void_return and ops.args[0].btf_name == "sock" and ops.args[1].type is RegType.SCALAR
    # LSM: the return value after the arguments
    lsm = btf_ctx_layout(kt, ProgType.LSM, BPF_LSM_MAC, kt.func_id("bpf_lsm_file_open"))
    assert len(lsm.args) == 2 and lsm.args[0].btf_name == "file" and not lsm.void_return
    assert btf_ctx_layout(kt, ProgType.XDP, 0, 1) is None


def _programs(kt):
    """(label, prog type, expected attach type, attach BTF id, program text) loaded and compared with the log."""
    pid = _member(kt, "task_struct", "pid")
    key_size = _member(kt, "bpf_map", "key_size")
    rcvbuf = _member(kt, "sock", "sk_rcvbuf")
    sid, idx = _struct_ops(kt, "tcp_congestion_ops", "cong_avoid")
    return [
        ("tp_btf", ProgType.TRACING, BPF_TRACE_RAW_TP, _typedef(kt, "btf_trace_sched_process_fork"), f"""
            r2 = *(u64 *)(r1 + 0)
            r3 = *(u32 *)(r2 + {pid})
            r4 = *(u64 *)(r1 + 8)
            r5 = *(u32 *)(r4 + {pid})
            r0 = 0
            exit
        """),
        ("iter", ProgType.TRACING, BPF_TRACE_ITER, kt.func_id("bpf_iter_bpf_map_elem"), f"""
            r2 = *(u64 *)(r1 + 8)
            r3 = *(u32 *)(r2 + {key_size})
            r4 = *(u64 *)(r1 + 16)
            r0 = 0
            if r4 == 0 goto +1
            r0 = *(u8 *)(r4 + 0)
            r0 = 0
            exit
        """),
        ("struct_ops void", ProgType.STRUCT_OPS, idx, sid, f"""
            r2 = *(u64 *)(r1 + 0)
            r3 = *(u32 *)(r2 + {rcvbuf})
            r4 = *(u64 *)(r1 + 8)
            exit
        """),
    ]


@pytest.mark.parametrize("which", [0, 1, 2], ids=["tp_btf", "iter", "struct_ops"])
def test_context_types_agree_with_the_kernel_log(which):
    from bpfpatch.kernel import load_program

    kt = kernel_types()
    _label, ptype, attach, btf_id, text = _programs(kt)[which]
    prog = Program.from_insns(assemble(text))
    layout = btf_ctx_layout(kt, ptype, attach, btf_id)
    a = analyze(prog, ptype, ctx_layout=layout, kernel_types=kt, attach_type=attach, log=True)
    try:
        with load_program(prog, ptype, expected_attach_type=attach, attach_btf_id=btf_id, log_level=2) as lp:
            log = parse_log(lp.verifier_log)
    except (KernelError, OSError) as exc:
        pytest.skip(f"bpf() refused the load: {exc}")
    cmp = compare(a.aux, log)
    assert cmp.types_agree, cmp.type_mismatches[:3]
    assert any(r.type is RegType.PTR_TO_BTF_ID and r.btf_name for x in a.aux if x is not None
               for st in x.extra.get("after", []) for r in st.cur.regs)


#: Loads btf_ctx_access / tracing_prog_is_valid_access refuse (sched_process_fork: two task pointers).
REFUSED = {
    "a pointer argument read narrow": "r2 = *(u32 *)(r1 + 0)",
    "a slot past the arguments": "r2 = *(u64 *)(r1 + 16)",
    "a misaligned slot": "r2 = *(u32 *)(r1 + 4)",
    "a write": "*(u64 *)(r1 + 0) = r1",
}


@pytest.mark.parametrize("what", sorted(REFUSED))
def test_what_the_kernel_refuses_we_refuse(what):
    from bpfpatch.kernel import load_program
    from bpfpatch.errors import VerifierError

    kt = kernel_types()
    btf_id = _typedef(kt, "btf_trace_sched_process_fork")
    prog = Program.from_insns(assemble(REFUSED[what] + "\nr0 = 0\nexit\n"))
    with pytest.raises(AnalysisRejected, match="invalid bpf_context access"):
        analyze(prog, ProgType.TRACING, ctx_layout=btf_ctx_layout(kt, ProgType.TRACING, BPF_TRACE_RAW_TP, btf_id),
                attach_type=BPF_TRACE_RAW_TP)
    try:
        with load_program(prog, ProgType.TRACING, expected_attach_type=BPF_TRACE_RAW_TP, attach_btf_id=btf_id):
            pytest.fail("the kernel accepted it")
    except VerifierError as exc:
        assert "invalid bpf_context access" in str(getattr(exc, "log", "")) + str(exc)
    except (KernelError, OSError) as exc:
        pytest.skip(f"bpf() refused the load: {exc}")


CORPUS = Path("/tmp/objects-corpus")
#: Selftest objects of each BTF context, every loaded program reproduced exactly: tp_btf
#: (bench_local_storage_create, kfree_skb), struct_ops (bpf_cubic, bpf_dctcp, bpf_cc_cubic), iterators
#: (bpf_iter_bpf_hash_map: the map is trusted, key and value maybe NULL; bpf_iter_netlink: a pointer member
#: read as untrusted memory keeps its NULL check; bpf_iter_task_file; sock_iter_batch: bpf_rdonly_cast's
#: struct; sock_destroy_prog: tracing's bpf_get_socket_cookie takes a socket), a sleepable iterator
#: (cgrp_ls_sleepable: storage_get with GFP_KERNEL); and graph nodes taken from list heads and rbtree
#: roots in map values, global data and inner maps, then pushed again at their node offset (linked_list,
#: refcounted_kptr, rbtree), referenced cpumasks that need no NULL check (cpumask_success).
SAMPLE = ["bench_local_storage_create.o", "kfree_skb.o", "bpf_cubic.o", "bpf_dctcp.o", "bpf_cc_cubic.o",
          "bpf_iter_bpf_hash_map.o", "bpf_iter_netlink.o", "bpf_iter_task_file.o", "sock_iter_batch.o",
          "sock_destroy_prog.o", "cgrp_ls_sleepable.o", "linked_list.o", "refcounted_kptr.o", "rbtree.o",
          "cpumask_success.o"]


@pytest.mark.slow
@pytest.mark.parametrize("name", SAMPLE)
def test_btf_context_objects_match_the_kernel(name):
    from kernel_xlated_corpus import check_object

    path = CORPUS / name
    if not path.exists():
        pytest.skip(f"{path} missing (tests/objcorpus.py --selftests {CORPUS} builds the selftest corpus)")
    results = [r for r in check_object(path, timeout=120) if r.verdict != "kernel refused"]
    if not results:
        pytest.skip(f"the kernel loads none of {name}'s programs here")
    assert [(r.prog, r.verdict) for r in results if r.verdict != "match"] == []

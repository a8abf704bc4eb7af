"""The BTF-typed contexts of tracing, LSM, struct_ops and iterator programs, read from the kernel's BTF.

A program of these types gets as context an array of u64: the arguments of
the function it is attached to (``btf_ctx_access`` in kernel/bpf/btf.c).
Which function is the load's ``attach_btf_id`` (``bpf_prog_info`` reports it):

- ``tp_btf`` (BPF_TRACE_RAW_TP): the typedef ``btf_trace_<tracepoint>``, a
  pointer to a prototype whose first argument (``void *__data``) is skipped;
- fentry / fexit / fmod_ret, LSM: the FUNC itself (fexit, fmod_ret and LSM
  may read the return value after the last argument);
- iterators (BPF_TRACE_ITER): the FUNC ``bpf_iter_<target>`` (`ITER_NULLABLE`: its maybe-NULL objects);
- struct_ops: the struct (``tcp_congestion_ops``), the program being member
  number ``expected_attach_type``, a function pointer.

A pointer to a kernel struct reads as PTR_TO_BTF_ID of it (trusted for
tp_btf, iterators, LSM and struct_ops: the analysis does not keep the flag).
It may be NULL (PTR_TO_BTF_ID_OR_NULL) where the kernel says so: an
iterator's objects (its ``ctx_arg_info``; a ``void *`` key / value is a
buffer, PTR_TO_BUF_OR_NULL), a struct_ops
argument whose stub ``<struct>__<member>`` names it ``*__nullable``, an
argument named ``*__nullable``, and the tracepoint arguments of the kernel's
``raw_tp_null_args`` table (`RAW_TP_NULL_ARGS`; those that may hold an
error pointer read as scalars).  ``__user`` and ``__percpu`` pointers read
as scalars here (the kernel refuses dereferencing them either way).
"""

from __future__ import annotations

from bpfpatch.analysis.ctxlayout import CtxArg, CtxLayout
from bpfpatch.analysis.facts import RegType
from bpfpatch.btf.types import MODIFIERS, BtfKind
from bpfpatch.errors import BpfPatchError, ElfError
from bpfpatch.progtype import ProgType, libbpf_section

#: enum bpf_attach_type values that decide a BTF context.
BPF_TRACE_RAW_TP, BPF_TRACE_FENTRY, BPF_TRACE_FEXIT, BPF_MODIFY_RETURN, BPF_LSM_MAC, BPF_TRACE_ITER = range(23, 29)
BPF_LSM_CGROUP = 43
#: Attach types whose program may read the target's return value (the slot after the last argument).
RETVAL_ATTACH = frozenset({BPF_TRACE_FEXIT, BPF_MODIFY_RETURN, BPF_LSM_MAC, BPF_LSM_CGROUP})
MAX_SLOTS = 12  # MAX_BPF_FUNC_ARGS

#: raw_tp_null_args (kernel/bpf/btf.c): per tracepoint, 4 bits per argument: 0x1 may be NULL, 0x2 may be
#: an error pointer.
RAW_TP_NULL_ARGS = {
    "sched_pi_setprio": 0x10, "sched_process_wait": 0x1, "sched_stick_numa": 0x100, "sched_swap_numa": 0x100,
    "afs_make_fs_call": 0x10, "afs_make_fs_calli": 0x10, "afs_make_fs_call1": 0x10, "afs_make_fs_call2": 0x10,
    "afs_protocol_error": 0x1, "afs_flock_ev": 0x10, "cachefiles_lookup": 0x1 | 0x200, "cachefiles_unlink": 0x1,
    "cachefiles_rename": 0x1, "cachefiles_prep_read": 0x1, "cachefiles_mark_active": 0x1,
    "cachefiles_mark_failed": 0x1, "cachefiles_mark_inactive": 0x1, "cachefiles_vfs_error": 0x1,
    "cachefiles_io_error": 0x1, "cachefiles_ondemand_open": 0x1, "cachefiles_ondemand_copen": 0x1,
    "cachefiles_ondemand_close": 0x1, "cachefiles_ondemand_read": 0x1, "cachefiles_ondemand_cread": 0x1,
    "cachefiles_ondemand_fd_write": 0x1, "cachefiles_ondemand_fd_release": 0x1, "ext4_mballoc_discard": 0x10,
    "ext4_mballoc_free": 0x10, "fib_table_lookup": 0x100, "posix_lock_inode": 0x10, "fcntl_setlk": 0x10,
    "locks_remove_posix": 0x10, "flock_lock_inode": 0x10, "break_lease_noblock": 0x10, "break_lease_block": 0x10,
    "break_lease_unblock": 0x10, "generic_delete_lease": 0x10, "time_out_leases": 0x10,
    "host1x_cdma_push_gather": 0x10000, "mm_khugepaged_scan_pmd": 0x10, "mm_collapse_huge_page_isolate": 0x1,
    "mm_khugepaged_scan_file": 0x10, "mm_khugepaged_collapse_file": 0x10, "mm_page_alloc": 0x1,
    "mm_page_pcpu_drain": 0x1, "mm_page_alloc_zone_locked": 0x1, "netfs_failure": 0x10,
    "device_pm_callback_start": 0x10, "qdisc_dequeue": 0x1000, "rxrpc_recvdata": 0x1, "rxrpc_resend": 0x10,
    "signal_generate": 0x20, "signal_deliver": 0x20, "kfree_skb": 0x1000, "xs_stream_read_data": 0x1,
    "xprt_reserve_cong": 0x10, "xprt_release_cong": 0x10, "xprt_get_cong": 0x10, "xprt_put_cong": 0x10,
    "tcp_send_reset": 0x11, "tegra_dma_tx_status": 0x100, "tmigr_update_events": 0x1,
    "writeback_dirty_folio": 0x10, "folio_wait_writeback": 0x10, "mr_integ_alloc": 0x2000,
    "bpf_testmod_test_read": 0x0,
}

#: Iterator targets' ``ctx_arg_info``: the parameters of ``bpf_iter_<target>`` registered as maybe NULL
#: (struct pointers PTR_TO_BTF_ID_OR_NULL, ``void *`` PTR_TO_BUF_OR_NULL); their other pointers (``meta``,
#: the map of a map-element iterator) are trusted and never NULL.  A target not listed: every pointer but
#: ``meta`` (what every target registered in 6.12 and 6.18 does, the map-element ones aside).
ITER_NULLABLE = {
    "bpf_map": {"map"}, "bpf_map_elem": {"key", "value"}, "bpf_prog": {"prog"}, "bpf_link": {"link"},
    "cgroup": {"cgroup"}, "task": {"task"}, "task_file": {"task", "file"}, "task_vma": {"task", "vma"},
    "netlink": {"sk"}, "ipv6_route": {"rt"}, "sockmap": {"key", "sk"}, "bpf_sk_storage_map": {"sk", "value"},
    "unix": {"unix_sk"}, "tcp": {"sk_common"}, "udp": {"udp_sk"}, "ksym": {"ksym"}, "kmem_cache": {"s"},
}



def _target(kt, prog_type: ProgType, attach_type: int, btf_id: int):
    """(the prototype's id, whether its first argument is skipped, the names that mark a parameter nullable)
    of the attach target, or None."""
    t = kt.type(btf_id)
    if prog_type == ProgType.STRUCT_OPS:
        if t.kind != BtfKind.STRUCT or not 0 <= attach_type < len(t.members):
            return None
        mname, mtype, _ = t.members[attach_type]
        ptr = kt.resolve(mtype)
        if ptr.kind != BtfKind.PTR or kt.resolve(ptr.size_or_type).kind != BtfKind.FUNC_PROTO:
            return None
        stub = kt.func_id(f"{t.name}__{mname}")  # the cfi stub names nullable arguments
        names = [n for n, _ in kt.params(kt.type(stub).size_or_type)] if stub else []
        return kt.resolve(ptr.size_or_type).id, False, names
    if t.kind == BtfKind.TYPEDEF and t.name.startswith("btf_trace_"):
        ptr = kt.resolve(t.size_or_type)
        if ptr.kind != BtfKind.PTR:
            return None
        return kt.resolve(ptr.size_or_type).id, True, []
    if t.kind == BtfKind.FUNC:
        return t.size_or_type, False, []
    return None


def _strip(kt, type_id: int) -> tuple[int, set[str]]:
    """The type under modifiers, and the type tags met on the way."""
    tags = set()
    for _ in range(64):
        if type_id == 0:
            break
        t = kt.type(type_id)
        if t.kind not in MODIFIERS:
            break
        if t.kind == BtfKind.TYPE_TAG:
            tags.add(t.name)
        type_id = t.size_or_type
    return type_id, tags


def _arg(kt, type_id: int, *, nullable: bool, buf_ok: bool) -> tuple[CtxArg, int]:
    """What a load of one argument of type `type_id` gives, and how many 8-byte slots it takes."""
    tid, _ = _strip(kt, type_id)
    if tid == 0:
        return CtxArg(), 1
    t = kt.type(tid)
    if t.kind != BtfKind.PTR:
        size = kt.size_of(tid) if t.kind in (BtfKind.INT, BtfKind.ENUM, BtfKind.ENUM64, BtfKind.STRUCT,
                                             BtfKind.UNION) else 8
        return CtxArg(), max(1, (size + 7) // 8)
    target, tags = _strip(kt, t.size_or_type)
    if tags & {"user", "percpu"}:
        return CtxArg(pointer=True), 1
    tt = kt.type(target) if target else None
    if tt is None or tt.kind in (BtfKind.INT, BtfKind.FUNC_PROTO):
        if buf_ok and tt is None:
            return CtxArg(RegType.PTR_TO_BUF_OR_NULL, pointer=True), 1
        return CtxArg(pointer=True), 1  # void * or int *: a scalar
    if tt.kind not in (BtfKind.STRUCT, BtfKind.UNION, BtfKind.FWD) or not tt.name:
        if buf_ok:
            return CtxArg(RegType.PTR_TO_BUF_OR_NULL, pointer=True), 1
        return CtxArg(pointer=True), 1
    return CtxArg(RegType.PTR_TO_BTF_ID_OR_NULL if nullable else RegType.PTR_TO_BTF_ID, tt.name, pointer=True), 1


def btf_ctx_layout(kt, prog_type: "ProgType | int", attach_type: int, attach_btf_id: int) -> CtxLayout | None:
    """The context of a tracing / LSM / struct_ops program attached to kernel BTF type `attach_btf_id`
    (`kt`: `bpfpatch.btf.vmlinux.KernelTypes` of the kernel's BTF); None for other programs or targets
    it cannot read (the analysis then reads every argument as a scalar)."""
    ptype = ProgType(int(prog_type))
    if ptype not in (ProgType.TRACING, ProgType.LSM, ProgType.STRUCT_OPS) or not attach_btf_id or kt is None:
        return None
    try:
        got = _target(kt, ptype, attach_type, attach_btf_id)
        if got is None:
            return None
        proto_id, skip_first, stub_names = got
        proto = kt.type(proto_id)
        if proto.kind != BtfKind.FUNC_PROTO:
            return None
        params = kt.params(proto_id)
        iter_prog = ptype == ProgType.TRACING and attach_type == BPF_TRACE_ITER
        iter_null = ITER_NULLABLE.get(kt.type(attach_btf_id).name[len("bpf_iter_"):]) if iter_prog else None
        null_mask = 0
        if ptype == ProgType.TRACING and attach_type == BPF_TRACE_RAW_TP:
            null_mask = RAW_TP_NULL_ARGS.get(kt.type(attach_btf_id).name[len("btf_trace_"):], 0)
        # get_ctx_arg_idx counts slots over the whole prototype (the skipped __data included), then
        # indexes the argument list after the skip
        slot_arg: list[int] = []
        for k, (_name, ptype_id) in enumerate(params):
            _, n = _arg(kt, ptype_id, nullable=False, buf_ok=False)
            slot_arg += [k] * n
        first = 1 if skip_first else 0
        nargs = len(params) - first
        ret_id = proto.size_or_type
        slots: list[CtxArg] = []
        for a in slot_arg[:MAX_SLOTS]:
            if a >= nargs:
                break
            name, tid = params[a + first]
            stub = stub_names[a] if a < len(stub_names) else ""
            in_iter = iter_prog and a > 0 and (name in iter_null if iter_null is not None else True)
            nullable = (name.endswith("__nullable") or stub.endswith("__nullable") or bool(null_mask >> (4 * a) & 1)
                        or in_iter)
            arg, _ = _arg(kt, tid, nullable=nullable, buf_ok=in_iter)
            if null_mask >> (4 * a) & 2:
                arg = CtxArg(pointer=True)  # may encode an error: the kernel scrubs it to a scalar
            slots.append(arg)
        if attach_type in RETVAL_ATTACH and ptype != ProgType.STRUCT_OPS and len(slots) < MAX_SLOTS:
            ret, _ = _arg(kt, ret_id, nullable=False, buf_ok=False)
            slots.append(ret)
        void = ret_id == 0 or _strip(kt, ret_id)[0] == 0
        return CtxLayout("ctx", 0, args=tuple(slots), void_return=void)
    except (BpfPatchError, IndexError, ValueError):
        return None


#: libbpf's section prefixes of programs attached to a kernel function or tracepoint by name:
#: (program type, expected attach type, the BTF name of the target, its BTF kind: FUNC or TYPEDEF).
SECTION_TARGETS = {
    "tp_btf/": (ProgType.TRACING, BPF_TRACE_RAW_TP, "btf_trace_{}", BtfKind.TYPEDEF),
    "fentry/": (ProgType.TRACING, BPF_TRACE_FENTRY, "{}", BtfKind.FUNC),
    "fentry.s/": (ProgType.TRACING, BPF_TRACE_FENTRY, "{}", BtfKind.FUNC),
    "fexit/": (ProgType.TRACING, BPF_TRACE_FEXIT, "{}", BtfKind.FUNC),
    "fexit.s/": (ProgType.TRACING, BPF_TRACE_FEXIT, "{}", BtfKind.FUNC),
    "fmod_ret/": (ProgType.TRACING, BPF_MODIFY_RETURN, "{}", BtfKind.FUNC),
    "fmod_ret.s/": (ProgType.TRACING, BPF_MODIFY_RETURN, "{}", BtfKind.FUNC),
    "iter/": (ProgType.TRACING, BPF_TRACE_ITER, "bpf_iter_{}", BtfKind.FUNC),
    "iter.s/": (ProgType.TRACING, BPF_TRACE_ITER, "bpf_iter_{}", BtfKind.FUNC),
    "lsm/": (ProgType.LSM, BPF_LSM_MAC, "bpf_lsm_{}", BtfKind.FUNC),
    "lsm.s/": (ProgType.LSM, BPF_LSM_MAC, "bpf_lsm_{}", BtfKind.FUNC),
    "lsm_cgroup/": (ProgType.LSM, BPF_LSM_CGROUP, "bpf_lsm_{}", BtfKind.FUNC),
}


def section_ctx_layout(kt, section: str, strict: bool = False) -> CtxLayout | None:
    """The BTF context of a program in ELF section `section` (``tp_btf/sched_switch``, ``fentry/do_unlinkat``,
    ``iter/task``, ``lsm/file_open``: `SECTION_TARGETS`), its target looked up by name in `kt` as libbpf
    does; None for other sections, struct_ops ones included (their target is the object's ``.struct_ops``
    map), or a target the kernel lacks -- with `strict`, that is an `ElfError` naming the section, as libbpf
    refuses to load it."""
    section = libbpf_section(section)
    for prefix, (ptype, attach, pattern, kind) in SECTION_TARGETS.items():
        if section.startswith(prefix) and kt is not None:
            target = section[len(prefix):]
            btf_id = kt.named_id(pattern.format(target), int(kind))
            if btf_id:
                return btf_ctx_layout(kt, ptype, attach, btf_id)
            if strict and target:
                # bcc's fsslower: fentry/dummy_file_read, the real target set at run time; libbpf cannot load it as it is
                raise ElfError(f"attach target {target!r} is not in the running kernel's BTF, so its arguments are "
                               "unknown (a loader that sets the target at run time: name the real one in the section)",
                               section=section)
            return None
    return None


__all__ = ["BPF_LSM_CGROUP", "BPF_LSM_MAC", "BPF_MODIFY_RETURN", "BPF_TRACE_FENTRY", "BPF_TRACE_FEXIT",
           "BPF_TRACE_ITER", "BPF_TRACE_RAW_TP", "ITER_NULLABLE", "RAW_TP_NULL_ARGS", "RETVAL_ATTACH", "SECTION_TARGETS", "btf_ctx_layout", "section_ctx_layout"]

"""Subprogram prototypes from a program's BTF and func_info (``btf_prepare_func_args``, kernel/bpf/btf.c).

    funcs = subprog_funcs(btf, [(0, 12), (40, 15)], ProgType.XDP)
    analyze(program, "xdp", funcs=funcs)

Each func_info record pairs a subprogram's first instruction with a FUNC type;
the FUNC's linkage says whether it is global, its FUNC_PROTO and the
``arg:<tag>`` decl tags give each argument's kind the way the kernel derives
it: a pointer to the program type's context struct (or tagged ``arg:ctx``) is
the context, ``struct bpf_dynptr *`` a dynptr, ``arg:trusted`` a trusted
kernel pointer, ``arg:arena`` an arena pointer, any other pointer of a global
function sized memory that may be NULL (unless ``arg:nonnull``), an int or
enum a scalar.  A prototype the kernel refuses keeps its message in
`SubprogFunc.error`.
"""

from __future__ import annotations

from typing import Iterable

from bpfpatch.analysis.funcinfo import ArgKind, FuncArg, SubprogFunc
from bpfpatch.btf.types import MODIFIERS, BtfKind, BtfType, TypeLookup
from bpfpatch.errors import ElfError
from bpfpatch.progtype import ProgType

BTF_FUNC_GLOBAL = 1
MAX_BPF_FUNC_REG_ARGS = 5

# include/linux/bpf_types.h: the context struct each program type's first argument points to
# ("" where the type has none: then only arg:ctx names it); "bpf_user_pt_regs_t" is pt_regs here.
CTX_TYPE_NAMES = {
    ProgType.SOCKET_FILTER: "__sk_buff", ProgType.SCHED_CLS: "__sk_buff", ProgType.SCHED_ACT: "__sk_buff",
    ProgType.XDP: "xdp_md", ProgType.CGROUP_SKB: "__sk_buff", ProgType.CGROUP_SOCK: "bpf_sock",
    ProgType.CGROUP_SOCK_ADDR: "bpf_sock_addr", ProgType.LWT_IN: "__sk_buff", ProgType.LWT_OUT: "__sk_buff",
    ProgType.LWT_XMIT: "__sk_buff", ProgType.LWT_SEG6LOCAL: "__sk_buff", ProgType.SOCK_OPS: "bpf_sock_ops",
    ProgType.SK_SKB: "__sk_buff", ProgType.SK_MSG: "sk_msg_md", ProgType.FLOW_DISSECTOR: "__sk_buff",
    ProgType.KPROBE: "pt_regs", ProgType.PERF_EVENT: "bpf_perf_event_data",
    ProgType.RAW_TRACEPOINT: "bpf_raw_tracepoint_args", ProgType.RAW_TRACEPOINT_WRITABLE: "bpf_raw_tracepoint_args",
    ProgType.CGROUP_DEVICE: "bpf_cgroup_dev_ctx", ProgType.CGROUP_SYSCTL: "bpf_sysctl",
    ProgType.CGROUP_SOCKOPT: "bpf_sockopt", ProgType.SK_REUSEPORT: "sk_reuseport_md",
    ProgType.SK_LOOKUP: "bpf_sk_lookup", ProgType.NETFILTER: "bpf_nf_ctx",
}
# btf_is_projection_of: the kernel's own struct names the uapi one too
PROJECTIONS = {"__sk_buff": "sk_buff", "xdp_md": "xdp_buff"}
# The context type's own name where bpf_types.h names a typedef: btf_is_prog_ctx_type compares the
# program's struct name with it before resolving it (kprobe's bpf_user_pt_regs_t -> pt_regs), so an
# empty `struct bpf_user_pt_regs_t` -- the selftests' workaround for old kernels -- is kprobe's context.
TYPEDEF_CTX_NAMES = {ProgType.KPROBE: "bpf_user_pt_regs_t"}
_TAGS = ("ctx", "trusted", "nonnull", "nullable", "arena")


def _is_ctx(btf: TypeLookup, ptr: BtfType, prog_type: ProgType) -> bool:
    """``btf_is_prog_ctx_type``: the pointee's struct name is the program type's context name."""
    t = btf.type(ptr.size_or_type)
    if prog_type is ProgType.KPROBE:
        while t.kind in MODIFIERS and t.kind != BtfKind.TYPEDEF:
            t = btf.type(t.size_or_type)
        if t.kind == BtfKind.TYPEDEF and t.name == "bpf_user_pt_regs_t":
            return True
    t = btf.resolve(t.id)
    if t.kind not in (BtfKind.STRUCT, BtfKind.UNION) or not t.name:
        return False
    want = CTX_TYPE_NAMES.get(prog_type, "")
    return bool(want) and t.name in (want, PROJECTIONS.get(want), TYPEDEF_CTX_NAMES.get(prog_type))


def _arg_tags(btf: TypeLookup, func_id: int, count: int) -> dict[int, set[str]]:
    """``arg:<tag>`` decl tags on the FUNC `func_id`, by argument (unknown tags kept as they are)."""
    out: dict[int, set[str]] = {}
    for tid in range(1, count):
        t = btf.type(tid)
        if t.kind == BtfKind.DECL_TAG and t.size_or_type == func_id and t.name.startswith("arg:") and t.extra:
            out.setdefault(t.extra[0], set()).add(t.name[4:])
    return out


def prototype(btf: TypeLookup, start: int, func_id: int, prog_type: ProgType) -> SubprogFunc:
    """One subprogram's prototype from its FUNC type (the kernel's checks of a global one's BTF)."""
    fn = btf.type(func_id)
    name = fn.name
    is_global = fn.kind == BtfKind.FUNC and fn.vlen == BTF_FUNC_GLOBAL

    def refuse(msg: str) -> SubprogFunc:
        return SubprogFunc(start, name, is_global, (), msg if is_global else "")

    if fn.kind != BtfKind.FUNC:
        return refuse(f"BTF of func at {start} doesn't point to KIND_FUNC")
    proto = btf.type(fn.size_or_type)
    if proto.kind != BtfKind.FUNC_PROTO:
        return refuse(f"Invalid type of function {name}()")
    params = proto.members
    if len(params) > MAX_BPF_FUNC_REG_ARGS:
        return refuse(f"Global function {name}() with {len(params)} > {MAX_BPF_FUNC_REG_ARGS} args. Buggy compiler.")
    ret = btf.resolve(proto.size_or_type)
    if ret.kind not in (BtfKind.INT, BtfKind.ENUM, BtfKind.ENUM64):
        return refuse(f"Global function {name}() doesn't return scalar. Only those are supported.")
    tags = _arg_tags(btf, func_id, btf.type_count) if is_global else {}
    args = []
    for i, (_name_off, type_id) in enumerate(params):
        tg = tags.get(i, set())
        if tg - set(_TAGS):
            return refuse(f"arg#{i} has unsupported set of tags")
        t = btf.resolve(type_id)
        if t.kind == BtfKind.PTR:
            if "ctx" in tg or _is_ctx(btf, t, prog_type):
                if tg - {"ctx"}:
                    return refuse(f"arg#{i} has invalid combination of tags")
                args.append(FuncArg(ArgKind.CTX))
                continue
            pointee = btf.resolve(t.size_or_type)
            if pointee.kind == BtfKind.STRUCT and pointee.name == "bpf_dynptr":
                if tg:
                    return refuse(f"arg#{i} has invalid combination of tags")
                args.append(FuncArg(ArgKind.DYNPTR))
                continue
            if "trusted" in tg:
                if "nonnull" in tg:
                    return refuse(f"arg#{i} has invalid combination of tags")
                args.append(FuncArg(ArgKind.BTF_ID, nullable="nullable" in tg, btf_name=pointee.name))
                continue
            if "arena" in tg:
                if tg - {"arena"}:
                    return refuse(f"arg#{i} arena cannot be combined with any other tags")
                args.append(FuncArg(ArgKind.ARENA))
                continue
            if is_global:
                if "nullable" in tg:
                    return refuse(f"arg#{i} has invalid combination of tags")
                try:
                    size = btf.size_of(t.size_or_type)
                except ElfError:
                    return refuse(f"arg#{i} reference type('{pointee.kind.name}') size cannot be determined")
                args.append(FuncArg(ArgKind.MEM, size=size, nullable="nonnull" not in tg))
                continue
        if tg:
            return refuse(f"arg#{i} has pointer tag, but is not a pointer type")
        if t.kind in (BtfKind.INT, BtfKind.ENUM, BtfKind.ENUM64):
            args.append(FuncArg(ArgKind.SCALAR))
            continue
        return refuse(f"Arg#{i} type {t.kind.name.lower()} in {name}() is not supported yet.")
    return SubprogFunc(start, name, is_global, tuple(args))


def subprog_funcs(btf: TypeLookup, func_info: Iterable[tuple[int, int]], prog_type: ProgType) -> dict[int, SubprogFunc]:
    """Prototypes of a program's subprograms from its func_info ``(first instruction, FUNC type id)`` records."""
    return {start: prototype(btf, start, type_id, prog_type) for start, type_id in func_info}


__all__ = ["subprog_funcs", "prototype", "CTX_TYPE_NAMES"]

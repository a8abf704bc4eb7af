"""Helper prototypes: argument and return types of every helper the kernel defines, as data.

`helpers_table.HELPERS` is generated from the kernel source
(`bpfpatch.analysis.helpers_gen`): the uapi FN list gives the ids, the
``struct bpf_func_proto`` definitions the types.  `proto` turns one entry into
a `HelperProto` the interpreter checks calls against.

    >>> proto(1).name, proto(1).ret, proto(1).args[:2]
    ('map_lookup_elem', 'RET_PTR_TO_MAP_VALUE_OR_NULL', ('ARG_CONST_MAP_PTR', 'ARG_PTR_TO_MAP_KEY'))
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from bpfpatch.analysis.helpers_table import HELPERS

# Helpers after which every packet pointer is invalid (bpf_helper_changes_pkt_data, net/core/filter.c).
CHANGES_PKT_DATA = frozenset({
    "clone_redirect", "l3_csum_replace", "l4_csum_replace", "lwt_push_encap", "lwt_seg6_action",
    "lwt_seg6_adjust_srh", "lwt_seg6_store_bytes", "msg_pop_data", "msg_pull_data", "msg_push_data",
    "skb_adjust_room", "skb_change_head", "skb_change_proto", "skb_change_tail", "skb_pull_data",
    "skb_store_bytes", "skb_vlan_pop", "skb_vlan_push", "store_hdr_opt", "xdp_adjust_head", "xdp_adjust_meta",
    "xdp_adjust_tail", "tail_call", "skb_change_type",
})

# Helpers that release the reference their argument holds (OBJ_RELEASE in the table) and
# those returning an acquired reference (sk_lookup_*, skc_lookup_tcp, ringbuf_reserve; kptr_xchg: the old
# pointer it takes out of the field, is_acquire_function).
ACQUIRES = frozenset({"sk_lookup_tcp", "sk_lookup_udp", "skc_lookup_tcp", "ringbuf_reserve", "task_acquire",
                      "kptr_xchg"})


@dataclass(frozen=True)
class HelperProto:
    """One helper's prototype: name, return type, argument types (with their flags)."""

    id: int
    name: str
    ret: str
    ret_flags: frozenset[str]
    args: tuple[str, ...]
    arg_flags: tuple[frozenset[str], ...]
    pkt_access: bool

    @property
    def nargs(self) -> int:
        return sum(a != "ARG_DONTCARE" for a in self.args)

    @property
    def changes_pkt_data(self) -> bool:
        return self.name in CHANGES_PKT_DATA

    @property
    def releases(self) -> int | None:
        """The argument (0-based) whose reference the helper releases, if any."""
        for i, flags in enumerate(self.arg_flags):
            if "OBJ_RELEASE" in flags:
                return i
        return None

    @property
    def acquires(self) -> bool:
        return self.name in ACQUIRES


def _row(name: str, ret: str, *args: str) -> tuple:
    full = [tuple(a.split("|")) for a in args] + [("ARG_DONTCARE",)] * (5 - len(args))
    return (name, tuple(ret.split("|")), tuple(full), False, f"bpf_{name}_proto")


_MEM_RO = "ARG_PTR_TO_MEM|MEM_RDONLY"
_UNINIT = "ARG_PTR_TO_UNINIT_MEM"
_SIZE0 = "ARG_CONST_SIZE_OR_ZERO"
_CTX = "ARG_PTR_TO_CTX"
_ANY = "ARG_ANYTHING"
# The tracing and rc helpers live in kernel/trace/bpf_trace.c and drivers/media/rc/bpf-lirc.c, which
# the Debian source tree here lacks: written down by hand from the kernel's protos.
SUPPLEMENT = {
    4: _row("probe_read", "RET_INTEGER", _UNINIT, _SIZE0, _ANY),
    6: _row("trace_printk", "RET_INTEGER", _MEM_RO, "ARG_CONST_SIZE"),
    22: _row("perf_event_read", "RET_INTEGER", "ARG_CONST_MAP_PTR", _ANY),
    25: _row("perf_event_output", "RET_INTEGER", _CTX, "ARG_CONST_MAP_PTR", _ANY, _MEM_RO, _SIZE0),
    35: _row("get_current_task", "RET_INTEGER"),
    36: _row("probe_write_user", "RET_INTEGER", _ANY, _MEM_RO, "ARG_CONST_SIZE"),
    45: _row("probe_read_str", "RET_INTEGER", _UNINIT, _SIZE0, _ANY),
    55: _row("perf_event_read_value", "RET_INTEGER", "ARG_CONST_MAP_PTR", _ANY, _UNINIT, "ARG_CONST_SIZE"),
    56: _row("perf_prog_read_value", "RET_INTEGER", _CTX, _UNINIT, "ARG_CONST_SIZE"),
    58: _row("override_return", "RET_INTEGER", _CTX, _ANY),
    73: _row("lwt_push_encap", "RET_INTEGER", _CTX, _ANY, _MEM_RO, "ARG_CONST_SIZE"),
    77: _row("rc_repeat", "RET_INTEGER", _CTX),
    78: _row("rc_keydown", "RET_INTEGER", _CTX, _ANY, _ANY, _ANY),
    92: _row("rc_pointer_rel", "RET_INTEGER", _CTX, _ANY, _ANY),
    109: _row("send_signal", "RET_INTEGER", _ANY),
    112: _row("probe_read_user", "RET_INTEGER", _UNINIT, _SIZE0, _ANY),
    113: _row("probe_read_kernel", "RET_INTEGER", _UNINIT, _SIZE0, _ANY),
    114: _row("probe_read_user_str", "RET_INTEGER", _UNINIT, _SIZE0, _ANY),
    115: _row("probe_read_kernel_str", "RET_INTEGER", _UNINIT, _SIZE0, _ANY),
    117: _row("send_signal_thread", "RET_INTEGER", _ANY),
    119: _row("read_branch_records", "RET_INTEGER", _CTX, "ARG_PTR_TO_MEM_OR_NULL", _SIZE0, _ANY),
    126: _row("seq_printf", "RET_INTEGER", "ARG_PTR_TO_BTF_ID", _MEM_RO, "ARG_CONST_SIZE",
             "ARG_PTR_TO_MEM|PTR_MAYBE_NULL|MEM_RDONLY", _SIZE0),
    127: _row("seq_write", "RET_INTEGER", "ARG_PTR_TO_BTF_ID", _MEM_RO, _SIZE0),
    147: _row("d_path", "RET_INTEGER", "ARG_PTR_TO_BTF_ID", "ARG_PTR_TO_MEM|MEM_WRITE", _SIZE0),
    149: _row("snprintf_btf", "RET_INTEGER", "ARG_PTR_TO_MEM|MEM_WRITE", "ARG_CONST_SIZE", _MEM_RO, "ARG_CONST_SIZE",
              _ANY),
    150: _row("seq_printf_btf", "RET_INTEGER", "ARG_PTR_TO_BTF_ID", _MEM_RO, _SIZE0, _ANY),
    158: _row("get_current_task_btf", "RET_PTR_TO_BTF_ID_TRUSTED"),
    173: _row("get_func_ip", "RET_INTEGER", _CTX),
    175: _row("task_pt_regs", "RET_PTR_TO_BTF_ID", "ARG_PTR_TO_BTF_ID"),
    176: _row("get_branch_snapshot", "RET_INTEGER", _UNINIT, _SIZE0, _ANY),
    177: _row("trace_vprintk", "RET_INTEGER", _MEM_RO, "ARG_CONST_SIZE", "ARG_PTR_TO_MEM|PTR_MAYBE_NULL|MEM_RDONLY",
              _SIZE0),
    183: _row("get_func_arg", "RET_INTEGER", _CTX, _ANY, "ARG_PTR_TO_FIXED_SIZE_MEM|MEM_UNINIT|MEM_WRITE"),
    184: _row("get_func_ret", "RET_INTEGER", _CTX, "ARG_PTR_TO_FIXED_SIZE_MEM|MEM_UNINIT|MEM_WRITE"),
    185: _row("get_func_arg_cnt", "RET_INTEGER", _CTX),
}


@lru_cache(maxsize=None)
def proto(helper_id: int) -> HelperProto | None:
    """The prototype of helper `helper_id`, or None if no kernel defines one."""
    row = HELPERS.get(helper_id) or SUPPLEMENT.get(helper_id)
    if row is None:
        return None
    name, ret, args, pkt_access, _ = row
    base_args = tuple(a[0] for a in args)
    return HelperProto(helper_id, name, ret[0], frozenset(ret[1:]), base_args,
                       tuple(frozenset(a[1:]) for a in args), bool(pkt_access))


def helper_name(helper_id: int) -> str:
    """``bpf_<name>`` as the verifier log prints it (``#<id>`` for unknown ids)."""
    p = proto(helper_id)
    return f"bpf_{p.name}" if p else f"#{helper_id}"


__all__ = ["HelperProto", "proto", "helper_name", "CHANGES_PKT_DATA"]

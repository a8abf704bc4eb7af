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
# those returning an acquired reference (sk_lookup_*, skc_lookup_tcp, ringbuf_reserve).
ACQUIRES = frozenset({"sk_lookup_tcp", "sk_lookup_udp", "skc_lookup_tcp", "ringbuf_reserve", "task_acquire"})


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


@lru_cache(maxsize=None)
def proto(helper_id: int) -> HelperProto | None:
    """The prototype of helper `helper_id`, or None if this kernel source defines none."""
    row = HELPERS.get(helper_id)
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

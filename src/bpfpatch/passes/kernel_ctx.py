"""The kernel's context-access conversions (net/core/filter.c ``*_convert_ctx_access``).

A program reads a stable user-facing context (``struct __sk_buff``,
``struct xdp_md``); the verifier's ``convert_ctx_accesses`` rewrites every
access whose base the verifier proved is the context (``ptr_type ==
PTR_TO_CTX``) into accesses of the kernel's own structures.  `convert`
returns the replacement of one such access and its ``target_size`` (the size
of the kernel field, for narrow loads), or None when the program type has no
conversion; `CtxAccessError` when the field is one this module does not know.

Offsets of the kernel's structures come from `bpfpatch.passes.ctx_layout`
(the running kernel's BTF when a provider is installed, else the shipped
6.18 table).  Written after the kernel's code; checked against this kernel's
xlated output (tests/passes/test_pass_kernel.py).

    w0 = *(u32 *)(r1 + 0)      ; __sk_buff.len  ->  w0 = *(u32 *)(r1 + 112)   ; sk_buff.len
    w2 = *(u32 *)(r1 + 76)     ; __sk_buff.data ->  r2 = *(u64 *)(r1 + 200)   ; sk_buff.data
"""

from __future__ import annotations

from bpfpatch.ctxstructs import BPF_SK_LOOKUP, BPF_SOCK_ADDR, PERF_EVENT_DATA, SK_BUFF
from bpfpatch.ctxstructs import XDP_MD as XDP_MD_STRUCT
from bpfpatch.errors import PatchError
from bpfpatch.isa import Insn
from bpfpatch.isa.build import (
    alu32_imm, alu64_reg, ja, jmp32_imm, jmp_imm, ldx_mem, mov32_imm, mov64_imm, mov64_reg, stx_mem,
)
from bpfpatch.isa.opcodes import AX_REG, CLASS_MASK, SIZE_MASK, AluOp, InsnClass, JmpOp, Mode, Size
from bpfpatch.passes.ctx_layout import member
from bpfpatch.passes.kernel_ctx_sock import (
    convert_bpf_sock, convert_flow_dissector, convert_sk_msg, convert_sk_reuseport, convert_sock_ops, convert_sockopt,
    convert_sysctl,
)
from bpfpatch.progtype import ProgType

READ, WRITE = "read", "write"
SIZE_OF_BYTES = {1: Size.B, 2: Size.H, 4: Size.W, 8: Size.DW}
BYTES_OF_SIZE = {v: k for k, v in SIZE_OF_BYTES.items()}

NO_QUEUE_MAPPING = 0xFFFF
KERNEL_MAX_CPU = "/sys/devices/system/cpu/kernel_max"  # NR_CPUS - 1 of the running kernel
TC_ACT_SHOT, SK_DROP = 2, 0
BPF_FUNC_skb_pull_data = 39

# The uapi structures' field -> offset (`bpfpatch.ctxstructs`; an array by its name: where element 0 is).
SKB = SK_BUFF.offsets()
XDP_MD = XDP_MD_STRUCT.offsets()

#: Program types whose context is __sk_buff, and which conversion variant they get.
SKB_VARIANT = {
    ProgType.SOCKET_FILTER: "filter", ProgType.CGROUP_SKB: "filter", ProgType.LWT_IN: "filter",
    ProgType.LWT_OUT: "filter", ProgType.LWT_XMIT: "filter", ProgType.LWT_SEG6LOCAL: "filter",
    ProgType.SCHED_CLS: "tc", ProgType.SCHED_ACT: "tc", ProgType.SK_SKB: "sk_skb",
}
SUPPORTED = frozenset(SKB_VARIANT) | {ProgType.XDP, ProgType.CGROUP_SOCK_ADDR, ProgType.SK_LOOKUP,
                                          ProgType.PERF_EVENT, ProgType.CGROUP_SOCK, ProgType.SOCK_OPS,
                                          ProgType.SK_MSG, ProgType.FLOW_DISSECTOR, ProgType.CGROUP_SOCKOPT,
                                          ProgType.SK_REUSEPORT, ProgType.CGROUP_SYSCTL}
#: The contexts kernel_ctx_sock converts, by program type.
OTHER_CONVERTERS = {ProgType.CGROUP_SOCK: convert_bpf_sock, ProgType.SOCK_OPS: convert_sock_ops,
                    ProgType.SK_MSG: convert_sk_msg, ProgType.FLOW_DISSECTOR: convert_flow_dissector,
                    ProgType.CGROUP_SOCKOPT: convert_sockopt, ProgType.SK_REUSEPORT: convert_sk_reuseport,
                    ProgType.CGROUP_SYSCTL: convert_sysctl}
#: Program types whose verifier ops have no convert_ctx_access: their context accesses stay as written.
UNCONVERTED = frozenset({ProgType.KPROBE, ProgType.TRACEPOINT, ProgType.RAW_TRACEPOINT,
                         ProgType.RAW_TRACEPOINT_WRITABLE, ProgType.TRACING, ProgType.LSM, ProgType.SYSCALL,
                         ProgType.EXT, ProgType.STRUCT_OPS, ProgType.CGROUP_DEVICE, ProgType.NETFILTER,
                         ProgType.LIRC_MODE2})


class CtxAccessError(PatchError):
    """A context access the conversion does not know (the kernel would convert it; we cannot say how)."""


def min_napi_id() -> int:
    """MIN_NAPI_ID = NR_CPUS + 1: from the running kernel's kernel_max, else 257 (this project's 6.18)."""
    try:
        with open(KERNEL_MAX_CPU) as f:
            return int(f.read().strip()) + 2
    except (OSError, ValueError):
        return 257


def _bit(name: str) -> tuple[int, int]:
    """(byte offset of a bitfield's marker byte, mask of the field in it) from ``struct.member@bit``."""
    bit, width = member(name + "@bit")
    return bit // 8, ((1 << width) - 1) << (bit % 8)


def _store(si: Insn, size: Size, off: int) -> Insn:
    """BPF_EMIT_STORE: the access's own class (ST or STX), registers and immediate, at `off`."""
    return Insn((si.code & CLASS_MASK) | size | Mode.MEM, si.dst, si.src, off, si.imm)


def _ldx_field(name: str, dst: int, src: int, extra: int = 0) -> Insn:
    off, size = member(name)
    return ldx_mem(SIZE_OF_BYTES[size], dst, src, off + extra)


def _shinfo(dst: int, skb: int) -> list[Insn]:
    """dst = skb_shinfo(skb): skb->head + skb->end (NET_SKBUFF_DATA_USES_OFFSET, 64-bit)."""
    return [_ldx_field("sk_buff.end", AX_REG, skb), _ldx_field("sk_buff.head", dst, skb),
            alu64_reg(AluOp.ADD, dst, AX_REG)]


def uses_tstamp_type(accesses: list[tuple[str, Insn]], ptype: ProgType) -> bool:
    """prog->tstamp_type_access: a tc program reads __sk_buff.tstamp_type somewhere."""
    return SKB_VARIANT.get(ptype) == "tc" and any(si.off == SKB["tstamp_type"] for _, si in accesses)


def convert_skb(kind: str, si: Insn, variant: str, tstamp_type_access: bool) -> tuple[list[Insn], int] | None:
    """bpf_convert_ctx_access / tc_cls_act_ / sk_skb_convert_ctx_access: (replacement, target_size)."""
    d, s, off = si.dst, si.src, si.off
    w = kind == WRITE

    def field(name: str, size: int) -> tuple[list[Insn], int]:
        o, _ = member(f"sk_buff.{name}")
        return ([_store(si, SIZE_OF_BYTES[size], o)] if w else [ldx_mem(SIZE_OF_BYTES[size], d, s, o)]), size

    def via_sk(name: str, size: int, extra: int = 0, target: int | None = None) -> tuple[list[Insn], int]:
        o, _ = member(f"sock_common.{name}")
        return [_ldx_field("sk_buff.sk", d, s), ldx_mem(SIZE_OF_BYTES[size], d, d, o + extra)], \
            size if target is None else target

    if off == SKB["len"]:
        return field("len", 4)
    if off == SKB["protocol"]:
        return field("protocol", 2)
    if off == SKB["vlan_proto"]:
        return field("vlan_proto", 2)
    if off == SKB["priority"]:
        return field("priority", 4)
    if off == SKB["ingress_ifindex"]:
        return field("skb_iif", 4)
    if off == SKB["ifindex"]:
        out = [_ldx_field("sk_buff.dev", d, s)]
        if variant != "tc":
            out.append(jmp_imm(JmpOp.JEQ, d, 0, 1))
        return out + [ldx_mem(Size.W, d, d, member("net_device.ifindex")[0])], 4
    if off == SKB["hash"]:
        return field("hash", 4)
    if off == SKB["mark"]:
        return field("mark", 4)
    if off == SKB["pkt_type"]:
        byte, mask = _bit("sk_buff.pkt_type")
        return [ldx_mem(Size.B, d, s, byte), alu32_imm(AluOp.AND, d, mask)], 1
    if off == SKB["queue_mapping"]:
        o, _ = member("sk_buff.queue_mapping")
        if not w:
            return [ldx_mem(Size.H, d, s, o)], 2
        if si.code & CLASS_MASK == InsnClass.ST and (si.imm & 0xFFFFFFFF) >= NO_QUEUE_MAPPING:
            return [ja(0)], 2  # a no-op the dead-code passes no longer see
        out = [jmp_imm(JmpOp.JGE, si.src, NO_QUEUE_MAPPING, 1)] if si.code & CLASS_MASK == InsnClass.STX else []
        return out + [_store(si, Size.H, o)], 2
    if off == SKB["vlan_present"]:
        o, _ = member("sk_buff.vlan_all")
        return [ldx_mem(Size.W, d, s, o), jmp_imm(JmpOp.JEQ, d, 0, 1), mov32_imm(d, 1)], 4
    if off == SKB["vlan_tci"]:
        return field("vlan_tci", 2)
    if SKB["cb"] <= off < SKB["cb"] + 20:
        base = member("sk_buff.cb")[0] + (member("sk_skb_cb.data")[0] if variant == "sk_skb"
                                         else member("qdisc_skb_cb.data")[0])
        size = si.code & SIZE_MASK
        o = off - SKB["cb"] + base
        return ([_store(si, Size(size), o)] if w else [ldx_mem(Size(size), d, s, o)]), 0
    if off == SKB["tc_classid"]:
        o = member("sk_buff.cb")[0] + member("qdisc_skb_cb.tc_classid")[0]
        return ([_store(si, Size.H, o)] if w else [ldx_mem(Size.H, d, s, o)]), 2
    if off == SKB["data"]:
        return [_ldx_field("sk_buff.data", d, s)], 0
    if off == SKB["data_meta"]:
        o = member("sk_buff.cb")[0] + member("bpf_skb_data_end.data_meta")[0]
        return [ldx_mem(Size.DW, d, s, o)], 0
    if off == SKB["data_end"]:
        if variant == "sk_skb":
            return _sk_skb_data_end(si), 0
        o = member("sk_buff.cb")[0] + member("bpf_skb_data_end.data_end")[0]
        return [ldx_mem(Size.DW, d, s, o)], 0
    if off == SKB["tc_index"]:
        return field("tc_index", 2)
    if off == SKB["napi_id"]:
        o, _ = member("sk_buff.napi_id")
        return [ldx_mem(Size.W, d, s, o), jmp_imm(JmpOp.JGE, d, min_napi_id(), 1), mov64_imm(d, 0)], 4
    if off == SKB["family"]:
        return via_sk("skc_family", 2)
    if off == SKB["remote_ip4"]:
        return via_sk("skc_daddr", 4)
    if off == SKB["local_ip4"]:
        return via_sk("skc_rcv_saddr", 4)
    if SKB["remote_ip6"] <= off < SKB["remote_ip6"] + 16:
        return via_sk("skc_v6_daddr", 4, off - SKB["remote_ip6"], 0)
    if SKB["local_ip6"] <= off < SKB["local_ip6"] + 16:
        return via_sk("skc_v6_rcv_saddr", 4, off - SKB["local_ip6"], 0)
    if off == SKB["remote_port"]:
        out, _ = via_sk("skc_dport", 2)
        return out + [alu32_imm(AluOp.LSH, d, 16)], 2
    if off == SKB["local_port"]:
        return via_sk("skc_num", 2)
    if off == SKB["tstamp"]:
        return (_tstamp_write(si, tstamp_type_access) if w else _tstamp_read(si, tstamp_type_access)), 8
    if off == SKB["tstamp_type"]:
        byte, mask = _bit("sk_buff.tstamp_type")
        return [ldx_mem(Size.B, d, s, byte), alu32_imm(AluOp.AND, d, mask)], 0
    if off == SKB["gso_segs"]:
        return _shinfo(d, s) + [_ldx_field("skb_shared_info.gso_segs", d, d)], 2
    if off == SKB["gso_size"]:
        return _shinfo(d, s) + [_ldx_field("skb_shared_info.gso_size", d, d)], 2
    if off == SKB["wire_len"]:
        o = member("sk_buff.cb")[0] + member("qdisc_skb_cb.pkt_len")[0]
        return [ldx_mem(Size.W, d, s, o)], 4
    if off == SKB["sk"]:
        return [_ldx_field("sk_buff.sk", d, s)], 0
    if off == SKB["hwtstamp"]:
        return _shinfo(d, s) + [ldx_mem(Size.DW, d, d, member("skb_shared_info.hwtstamps")[0])], 8
    return None


def _tstamp_read(si: Insn, tstamp_type_access: bool) -> list[Insn]:
    d, s = si.dst, si.src
    out = []
    if not tstamp_type_access:
        byte, ingress = _bit("sk_buff.tc_at_ingress")
        _, ttype = _bit("sk_buff.tstamp_type")
        out = [ldx_mem(Size.B, AX_REG, s, byte), jmp32_imm(JmpOp.JSET, AX_REG, ingress, 1), ja(4),
               jmp32_imm(JmpOp.JSET, AX_REG, ttype, 1), ja(2), mov64_imm(d, 0), ja(1)]
    return out + [ldx_mem(Size.DW, d, s, member("sk_buff.tstamp")[0])]


def _tstamp_write(si: Insn, tstamp_type_access: bool) -> list[Insn]:
    skb = si.dst
    out = []
    if not tstamp_type_access:
        byte, ingress = _bit("sk_buff.tc_at_ingress")
        _, ttype = _bit("sk_buff.tstamp_type")
        out = [ldx_mem(Size.B, AX_REG, skb, byte), jmp32_imm(JmpOp.JSET, AX_REG, ingress, 1), ja(2),
               alu32_imm(AluOp.AND, AX_REG, _s32(~ttype)),
               stx_mem(Size.B, skb, AX_REG, byte)]
    return out + [_store(si, Size.DW, member("sk_buff.tstamp")[0])]


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


def _sk_skb_data_end(si: Insn) -> list[Insn]:
    """bpf_convert_data_end_access: data + len - data_len, with a saved scratch register if dst == src."""
    d, s = si.dst, si.src
    temp = member("sk_buff.cb")[0] + member("sk_skb_cb.temp_reg")[0]
    out = []
    if s == d:
        reg = 9
        if reg in (s, d):
            reg -= 1
        if reg in (s, d):
            reg -= 1
        out.append(stx_mem(Size.DW, s, reg, temp))
    else:
        reg = d
    out += [_ldx_field("sk_buff.data", reg, s), _ldx_field("sk_buff.len", AX_REG, s),
            alu64_reg(AluOp.ADD, reg, AX_REG), _ldx_field("sk_buff.data_len", AX_REG, s),
            alu64_reg(AluOp.SUB, reg, AX_REG)]
    if s == d:
        out += [mov64_reg(AX_REG, s), mov64_reg(d, reg), ldx_mem(Size.DW, reg, AX_REG, temp)]
    return out


def convert_xdp(kind: str, si: Insn) -> tuple[list[Insn], int] | None:
    """xdp_convert_ctx_access."""
    d, s, off = si.dst, si.src, si.off
    if off == XDP_MD["data"]:
        return [_ldx_field("xdp_buff.data", d, s)], 0
    if off == XDP_MD["data_meta"]:
        return [_ldx_field("xdp_buff.data_meta", d, s)], 0
    if off == XDP_MD["data_end"]:
        return [_ldx_field("xdp_buff.data_end", d, s)], 0
    if off == XDP_MD["ingress_ifindex"]:
        return [_ldx_field("xdp_buff.rxq", d, s), _ldx_field("xdp_rxq_info.dev", d, d),
                ldx_mem(Size.W, d, d, member("net_device.ifindex")[0])], 0
    if off == XDP_MD["rx_queue_index"]:
        return [_ldx_field("xdp_buff.rxq", d, s), ldx_mem(Size.W, d, d, member("xdp_rxq_info.queue_index")[0])], 0
    if off == XDP_MD["egress_ifindex"]:
        return [_ldx_field("xdp_buff.txq", d, s), _ldx_field("xdp_txq_info.dev", d, d),
                ldx_mem(Size.W, d, d, member("net_device.ifindex")[0])], 0
    return None


# struct bpf_sock_addr and struct bpf_sk_lookup (uapi).
SOCK_ADDR = BPF_SOCK_ADDR.offsets()
SK_LOOKUP = BPF_SK_LOOKUP.offsets()


def _nested(kind: str, si: Insn, outer: str, inner_off: int, size: Size, tmp_field: str | None) -> list[Insn]:
    """SOCK_ADDR_LOAD_OR_STORE_NESTED_FIELD_SIZE_OFF: through the pointer field `outer` to a nested field.

    A store needs a third register: r9 (or r8, r7 when the access names it), saved in the
    context's `tmp_field` around the store.
    """
    d, s = si.dst, si.src
    o_off, _ = member(outer)
    if kind == READ:
        return [ldx_mem(Size.DW, d, s, o_off), ldx_mem(size, d, d, inner_off)]
    tmp = 9
    if tmp in (s, d):
        tmp -= 1
    if tmp in (s, d):
        tmp -= 1
    t_off, _ = member(tmp_field)
    return [stx_mem(Size.DW, d, tmp, t_off), ldx_mem(Size.DW, tmp, d, o_off),
            Insn(size | Mode.MEM | (si.code & CLASS_MASK), tmp, s, inner_off, si.imm), ldx_mem(Size.DW, tmp, d, t_off)]


def convert_sock_addr(kind: str, si: Insn) -> tuple[list[Insn], int] | None:
    """sock_addr_convert_ctx_access (cgroup/connect4, bind6, sendmsg4, ...)."""
    off = si.off
    size = Size(si.code & SIZE_MASK)
    kern, tmp = "bpf_sock_addr_kern", "bpf_sock_addr_kern.tmp_reg"
    if off == SOCK_ADDR["user_family"]:
        o, n = member("sockaddr.sa_family")
        return _nested(READ, si, f"{kern}.uaddr", o, SIZE_OF_BYTES[n], None), n
    if off == SOCK_ADDR["user_ip4"]:
        return _nested(kind, si, f"{kern}.uaddr", member("sockaddr_in.sin_addr")[0], size, tmp), 4
    if SOCK_ADDR["user_ip6"] <= off < SOCK_ADDR["user_ip6"] + 16:
        inner = member("sockaddr_in6.sin6_addr")[0] + off - SOCK_ADDR["user_ip6"]
        return _nested(kind, si, f"{kern}.uaddr", inner, size, tmp), 4
    if off == SOCK_ADDR["user_port"]:
        o, n = member("sockaddr_in6.sin6_port")
        port = SIZE_OF_BYTES[min(n, BYTES_OF_SIZE[size])]
        return _nested(kind, si, f"{kern}.uaddr", o, port, tmp), n
    if off in (SOCK_ADDR["family"], SOCK_ADDR["type"], SOCK_ADDR["protocol"]):
        if off == SOCK_ADDR["family"]:
            o, n = member("sock.__sk_common")[0] + member("sock_common.skc_family")[0], 2
        else:
            o, n = member("sock.sk_type" if off == SOCK_ADDR["type"] else "sock.sk_protocol")
        return _nested(READ, si, f"{kern}.sk", o, SIZE_OF_BYTES[n], None), n
    if off == SOCK_ADDR["msg_src_ip4"]:
        return _nested(kind, si, f"{kern}.t_ctx", 0, size, tmp), 4
    if SOCK_ADDR["msg_src_ip6"] <= off < SOCK_ADDR["msg_src_ip6"] + 16:
        return _nested(kind, si, f"{kern}.t_ctx", off - SOCK_ADDR["msg_src_ip6"], size, tmp), 4
    if off == SOCK_ADDR["sk"]:
        return [_ldx_field(f"{kern}.sk", si.dst, si.src)], 0
    return None


def convert_sk_lookup(kind: str, si: Insn) -> tuple[list[Insn], int] | None:
    """sk_lookup_convert_ctx_access."""
    d, s, off = si.dst, si.src, si.off
    kern = "bpf_sk_lookup_kern"

    def plain(name: str, size: Size, n: int) -> tuple[list[Insn], int]:
        return [ldx_mem(size, d, s, member(f"{kern}.{name}")[0])], n

    if off == SK_LOOKUP["sk"]:
        return plain("selected_sk", Size.DW, 0)
    if off == SK_LOOKUP["family"]:
        return plain("family", Size.H, 2)
    if off == SK_LOOKUP["protocol"]:
        return plain("protocol", Size.H, 2)
    if off == SK_LOOKUP["remote_ip4"]:
        return plain("v4.saddr", Size.W, 4)
    if off == SK_LOOKUP["local_ip4"]:
        return plain("v4.daddr", Size.W, 4)
    for name, field in (("remote_ip6", "v6.saddr"), ("local_ip6", "v6.daddr")):
        if SK_LOOKUP[name] <= off < SK_LOOKUP[name] + 16:
            return [ldx_mem(Size.DW, d, s, member(f"{kern}.{field}")[0]), jmp_imm(JmpOp.JEQ, d, 0, 1),
                    ldx_mem(Size.W, d, d, off - SK_LOOKUP[name])], 4
    if off == SK_LOOKUP["remote_port"]:
        return plain("sport", Size.H, 2)
    if off == SK_LOOKUP["remote_port"] + 2:
        return [mov32_imm(d, 0)], 2
    if off == SK_LOOKUP["local_port"]:
        return plain("dport", Size.H, 2)
    if off == SK_LOOKUP["ingress_ifindex"]:
        return plain("ingress_ifindex", Size.W, 4)
    return None


# struct bpf_perf_event_data (uapi, x86-64: regs is struct pt_regs, 21 longs).
PERF_EVENT = PERF_EVENT_DATA.offsets()


def convert_perf_event(kind: str, si: Insn) -> tuple[list[Insn], int] | None:
    """pe_prog_convert_ctx_access: sample_period and addr through the sample data, the rest from regs."""
    d, s, off = si.dst, si.src, si.off
    for name, field in (("sample_period", "period"), ("addr", "addr")):
        if off == PERF_EVENT[name]:
            return [_ldx_field("bpf_perf_event_data_kern.data", d, s),
                    ldx_mem(Size.DW, d, d, member(f"perf_sample_data.{field}")[0])], 8
    return [_ldx_field("bpf_perf_event_data_kern.regs", d, s), ldx_mem(Size.DW, d, d, off)], 0


def convert(ptype: ProgType, kind: str, si: Insn, tstamp_type_access: bool = False) -> tuple[list[Insn], int]:
    """The conversion of one context access of a `ptype` program (`si` already narrowed)."""
    if ptype in UNCONVERTED:
        return [si], 0
    if ptype == ProgType.XDP:
        got = convert_xdp(kind, si)
    elif ptype == ProgType.CGROUP_SOCK_ADDR:
        got = convert_sock_addr(kind, si)
    elif ptype == ProgType.SK_LOOKUP:
        got = convert_sk_lookup(kind, si)
    elif ptype == ProgType.PERF_EVENT:
        got = convert_perf_event(kind, si)
    elif ptype in OTHER_CONVERTERS:
        got = OTHER_CONVERTERS[ptype](kind, si)
    elif ptype in SKB_VARIANT:
        got = convert_skb(kind, si, SKB_VARIANT[ptype], tstamp_type_access)
    else:
        raise CtxAccessError(f"kernel: context conversion for {ptype.name.lower()} programs is not implemented")
    if got is None:
        raise CtxAccessError(f"kernel: {ptype.name.lower()} context {kind} at offset {si.off} is not converted here")
    return got


def prologue(ptype: ProgType, first: Insn) -> list[Insn]:
    """bpf_unclone_prologue (tc, lwt_xmit, sk_skb) for a program that writes packet data directly
    (lwt_xmit has tc's prologue, tc_cls_act_prologue: a failed unclone returns TC_ACT_SHOT)."""
    verdict = SK_DROP if ptype == ProgType.SK_SKB else TC_ACT_SHOT
    cloned, mask = _bit("sk_buff.cloned")
    return [ldx_mem(Size.B, 6, 1, cloned), alu32_imm(AluOp.AND, 6, mask), jmp_imm(JmpOp.JEQ, 6, 0, 7),
            mov64_reg(6, 1), alu64_reg(AluOp.XOR, 2, 2), Insn(InsnClass.JMP | JmpOp.CALL, 0, 0, 0, BPF_FUNC_skb_pull_data),
            jmp_imm(JmpOp.JEQ, 0, 0, 2), mov32_imm(0, verdict), Insn(InsnClass.JMP | JmpOp.EXIT), mov64_reg(1, 6), first]


#: Program types with a prologue for direct packet writes.
PROLOGUE_TYPES = frozenset({ProgType.SCHED_CLS, ProgType.SCHED_ACT, ProgType.SK_SKB, ProgType.LWT_XMIT})

__all__ = ["CtxAccessError", "PROLOGUE_TYPES", "READ", "SKB", "SKB_VARIANT", "SUPPORTED", "UNCONVERTED", "WRITE", "XDP_MD",
           "convert", "convert_skb", "convert_xdp", "prologue", "uses_tstamp_type"]

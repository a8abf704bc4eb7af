"""Inputs that reach the code: well-formed packets, the program's own constants, user captures.

Packets are built with dpkt (pure Python, 2 MB installed, imports in 0.03 s and
builds 1,000 Ethernet/IPv4-with-options/TCP packets in 0.02 s here; scapy
needs 24 MB, 0.7 s to import and 0.85 s for the same 1,000).  dpkt fills in
lengths and IPv4/TCP/UDP/ICMP checksums; IPv6 extension headers and their
upper-layer checksums are laid out here.

    >>> seeds(harvest(raw))              # [(label, packet bytes), ...]
    >>> read_inputs("capture.pcapng")    # pcap, pcapng, or one hex packet per line
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field
from pathlib import Path

import dpkt

from bpfpatch.errors import BpfPatchError
from bpfpatch.isa import LD_IMM64, decode_slots

MAC_A, MAC_B = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
IP4_A, IP4_B = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
IP6_A = bytes.fromhex("fd000000000000000000000000000001")
IP6_B = bytes.fromhex("fd000000000000000000000000000002")

ETH_P_IP, ETH_P_IPV6, ETH_P_ARP, ETH_P_8021Q, ETH_P_8021AD = 0x0800, 0x86DD, 0x0806, 0x8100, 0x88A8
# Where headers start in common frames: Ethernet, after one and two VLAN tags, IPv4 L4 (plain,
# with options), IPv6 L4, after one IPv6 extension header.
HEADER_STARTS = (0, 14, 18, 22, 34, 38, 42, 54, 62)


class InputFileError(BpfPatchError):
    """An --inputs-from file that cannot be read (its place named)."""


@dataclass
class Harvest:
    """Constants taken from a program: compared immediates, small values, offsets it reads."""

    values: list[int] = field(default_factory=list)  # compared immediates first, then ALU immediates
    offsets: list[int] = field(default_factory=list)  # load/store offsets and pointer adds
    reads: list[tuple[int, int]] = field(default_factory=list)  # (packet offset, width) the program loads
    compared: list[int] = field(default_factory=list)  # immediates of conditional jumps

    def add_data(self, blobs) -> None:
        """Values of global data (.rodata settings the verifier folds into the code): every
        aligned u16 and u32, in both byte orders."""
        extra: dict[int, None] = {}
        for blob in blobs:
            if not blob:
                continue
            for w, fmt in ((2, "H"), (4, "I")):
                for at in range(0, len(blob) - w + 1, w):
                    for order in "<>":
                        v = struct.unpack_from(order + fmt, blob, at)[0]
                        if v:
                            extra[v] = None
        self.values = list(dict.fromkeys(list(extra)[:64] + self.values))

    def packet_offsets(self) -> list[int]:
        """Where in a frame the program may read: its offsets from each common header start."""
        out = {b + o for b in HEADER_STARTS for o in self.offsets if b + o < 160}
        return sorted(out | set(HEADER_STARTS))

    def cut_lengths(self) -> list[int]:
        """Frame lengths at the program's bounds checks (header start + offset, +-1)."""
        out = set()
        for b in HEADER_STARTS:
            for o in self.offsets + [0]:
                for d in (-1, 0, 1):
                    if 0 < b + o + d < 200:
                        out.add(b + o + d)
        return sorted(out)

    def lengths(self) -> list[int]:
        """Compared values that could be a frame length (14..4096), each with its neighbours."""
        out = {x for v in self.compared for x in (v - 1, v, v + 1) if 14 <= x <= 4096}
        return sorted(out)[:64]

    def ports(self) -> list[int]:
        return [v for v in self.values if 0 < v < 65536][:24]

    def protocols(self) -> list[int]:
        return [v for v in self.values if 0 <= v < 256][:16]

    def ethertypes(self) -> list[int]:
        known = {ETH_P_IP, ETH_P_IPV6, ETH_P_ARP, ETH_P_8021Q, ETH_P_8021AD}
        out = []
        for v in self.values:
            for cand in (v & 0xFFFF, _swap16(v & 0xFFFF)):
                if cand >= 0x0600 and cand not in out:
                    out.append(cand)
        return [e for e in out if e in known] + [e for e in out if e not in known][:6]


def _swap16(v: int) -> int:
    return ((v & 0xFF) << 8) | (v >> 8)


def _swap32(v: int) -> int:
    return int.from_bytes((v & 0xFFFFFFFF).to_bytes(4, "little"), "big")


def harvest(raw: bytes) -> Harvest:
    """Immediates of compares and ALU operations (both byte orders), and memory offsets."""
    slots = decode_slots(raw)
    vals: dict[int, None] = {}
    cmp_vals: dict[int, None] = {}
    offs: dict[int, None] = {}
    codes, imms, offsets = slots["code"].tolist(), slots["imm"].tolist(), slots["off"].tolist()
    i = 0
    while i < len(codes):
        code = codes[i]
        if code == LD_IMM64:
            i += 2
            continue
        cls, op, x = code & 0x07, code & 0xF0, code & 0x08
        imm = imms[i]
        if cls in (0x05, 0x06) and op not in (0x00, 0x80, 0x90) and not x:
            for v in (imm, imm - 1, imm + 1):
                vals[v & 0xFFFFFFFF] = None
                cmp_vals[v & 0xFFFFFFFF] = None
            if 0 <= imm < 65536:
                vals[_swap16(imm)] = None
            vals[_swap32(imm)] = None
        elif cls in (0x04, 0x07) and not x and op in (0x00, 0x50, 0x40, 0xA0):  # add, and, or, xor
            vals[imm & 0xFFFFFFFF] = None
            if op == 0x00 and 0 < imm < 4096:
                offs[imm] = None
        elif cls in (0x01, 0x02, 0x03) and 0 <= offsets[i] < 4096:
            offs[offsets[i]] = None
        i += 1
    # Compared immediates first (in program order), then the rest.
    values = [v for v in cmp_vals if v in vals] + [v for v in vals if v not in cmp_vals]
    compared = [v for v in cmp_vals if v < 1 << 31]
    return Harvest(values[:256], sorted(offs)[:128], packet_reads(slots), compared[:256])


_CTX_DATA = {0, 76}  # xdp_md.data, __sk_buff.data
_SKB_LOAD_BYTES = 26


def packet_reads(slots) -> list[tuple[int, int]]:
    """Fixed packet offsets the program loads from, found by following pointers of the form
    ``ctx->data + constant`` through moves and constant adds (one pass in program order: a
    heuristic for input placement, not an analysis), plus LD_ABS and bpf_skb_load_bytes with
    constant offsets."""
    ctx = {1}
    pkt: dict[int, int] = {}
    const: dict[int, int] = {}
    reads: dict[tuple[int, int], None] = {}
    codes, regs = slots["code"].tolist(), slots["regs"].tolist()
    offs, imms = slots["off"].tolist(), slots["imm"].tolist()
    size_of = {0x00: 4, 0x08: 2, 0x10: 1, 0x18: 8}
    i = 0
    while i < len(codes):
        code, dst, src, off, imm = codes[i], regs[i] & 0x0F, regs[i] >> 4, offs[i], imms[i]
        cls, op = code & 0x07, code & 0xF0
        if code == LD_IMM64:
            for d in (ctx, pkt, const):
                if isinstance(d, set):
                    d.discard(dst)
                else:
                    d.pop(dst, None)
            i += 2
            continue
        if cls == 0x01 and code & 0xE0 == 0x60:  # LDX MEM
            if src in ctx and off in _CTX_DATA and code & 0x18 == 0x00:
                pkt[dst] = 0
            elif src in pkt:
                reads[(pkt[src] + off, size_of[code & 0x18])] = None
                pkt.pop(dst, None)
            else:
                pkt.pop(dst, None)
            ctx.discard(dst)
            const.pop(dst, None)
        elif cls == 0x00 and code & 0xE0 in (0x20, 0x40):  # LD_ABS / LD_IND
            if code & 0xE0 == 0x20:
                reads[(imm, size_of[code & 0x18])] = None
            for r in range(6):
                pkt.pop(r, None)
                const.pop(r, None)
        elif cls in (0x04, 0x07):
            x = code & 0x08
            if op == 0xB0:  # mov
                for d in (pkt, const):
                    d.pop(dst, None)
                ctx.discard(dst)
                if x:
                    if src in pkt:
                        pkt[dst] = pkt[src]
                    if src in const:
                        const[dst] = const[src]
                    if src in ctx:
                        ctx.add(dst)
                else:
                    const[dst] = imm
            elif op == 0x00 and not x and dst in pkt:
                pkt[dst] += imm
            elif op == 0x00 and x and dst in pkt and src in const:
                pkt[dst] += const[src]
            else:
                pkt.pop(dst, None)
                const.pop(dst, None)
                ctx.discard(dst)
        elif cls in (0x05, 0x06) and op == 0x80:  # call
            if imm == _SKB_LOAD_BYTES and 2 in const and 4 in const:
                reads[(const[2], max(1, min(const[4], 8)))] = None
            for r in range(6):
                pkt.pop(r, None)
                const.pop(r, None)
                ctx.discard(r)
        i += 1
    return [r for r in reads if 0 <= r[0] < 4096][:128]


# --- packet shapes ------------------------------------------------------------------------------

def _eth(ethertype: int, payload: bytes, vlans: tuple[int, ...] = ()) -> bytes:
    head = MAC_B + MAC_A
    for k, vid in enumerate(vlans):
        tpid = ETH_P_8021AD if (k == 0 and len(vlans) > 1) else ETH_P_8021Q
        head += struct.pack(">HH", tpid, vid & 0x0FFF)
    return head + struct.pack(">H", ethertype) + payload


def _l4(proto: int, sport: int, dport: int, payload: bytes, flags: int = dpkt.tcp.TH_SYN):
    if proto == 6:
        return dpkt.tcp.TCP(sport=sport, dport=dport, flags=flags, seq=0x01020304, win=8192, data=payload)
    if proto == 17:
        return dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
    if proto == 1:
        return dpkt.icmp.ICMP(type=8, code=0, data=dpkt.icmp.ICMP.Echo(id=sport, seq=dport, data=payload))
    return payload


def ipv4(proto: int = 6, sport: int = 40000, dport: int = 80, payload: bytes = b"x" * 8, *, opts: bytes = b"",
         src: bytes = IP4_A, dst: bytes = IP4_B, ttl: int = 64, frag: int = 0, tos: int = 0) -> bytes:
    """An IPv4 packet (no Ethernet) with right lengths and checksums."""
    body = _l4(proto, sport, dport, payload)
    ip = dpkt.ip.IP(src=src, dst=dst, p=proto, ttl=ttl, tos=tos, opts=opts, data=body)
    ip.mf, ip.offset = (frag >> 13) & 1, frag & 0x1FFF
    ip.hl = 5 + len(opts) // 4
    if isinstance(body, (dpkt.tcp.TCP, dpkt.udp.UDP)):
        body.sum = 0
    ip.len = 4 * ip.hl + len(bytes(body))
    return bytes(ip)


def _ip6_csum(src: bytes, dst: bytes, nxt: int, l4: bytes) -> int:
    pseudo = src + dst + struct.pack(">IxxxB", len(l4), nxt)
    data = pseudo + l4 + (b"\0" if len(l4) % 2 else b"")
    s = sum(struct.unpack(f">{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s & 0xFFFF) or 0xFFFF


def ipv6(proto: int = 6, sport: int = 40000, dport: int = 80, payload: bytes = b"x" * 8, *,
         ext: tuple[int, ...] = (), src: bytes = IP6_A, dst: bytes = IP6_B, hlim: int = 64) -> bytes:
    """An IPv6 packet (no Ethernet) with extension headers `ext` (0 hop-by-hop, 43 routing,
    44 fragment, 60 destination options) before the upper layer, checksum right."""
    if proto == 6:
        l4 = bytearray(bytes(dpkt.tcp.TCP(sport=sport, dport=dport, flags=dpkt.tcp.TH_SYN, seq=1, win=8192, data=payload)))
        csum_at = 16
    elif proto == 17:
        l4 = bytearray(struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload)
        csum_at = 6
    elif proto == 58:
        l4 = bytearray(struct.pack(">BBHHH", 128, 0, 0, sport, dport) + payload)
        csum_at = 2
    else:
        l4, csum_at = bytearray(payload), None
    if csum_at is not None:
        l4[csum_at:csum_at + 2] = b"\0\0"
        l4[csum_at:csum_at + 2] = struct.pack(">H", _ip6_csum(src, dst, proto, bytes(l4)))
    chain = list(ext) + [proto]
    exts = b""
    for k, h in enumerate(ext):
        nxt = chain[k + 1]
        if h == 44:
            exts += struct.pack(">BBHI", nxt, 0, 0, 0x12345678)
        elif h == 43:
            exts += struct.pack(">BBBB", nxt, 2, 0, 0) + bytes(4) + IP6_B  # type 0, segments left 0
        else:
            exts += struct.pack(">BB", nxt, 0) + bytes([1, 4, 0, 0, 0, 0])  # PadN
    first = chain[0]
    head = struct.pack(">IHBB", 6 << 28, len(exts) + len(l4), first, hlim) + src + dst
    return head + exts + bytes(l4)


def arp(op: int = 1) -> bytes:
    return struct.pack(">HHBBH", 1, ETH_P_IP, 6, 4, op) + MAC_A + IP4_A + bytes(6) + IP4_B


def shapes(h: Harvest | None = None) -> list[tuple[str, bytes]]:
    """Ethernet frames of every common shape, with the program's ports and protocols filled in."""
    h = h or Harvest()
    ports = [80, 443, 53, 22] + h.ports()[:12]
    out: list[tuple[str, bytes]] = []
    for proto, name in ((6, "tcp"), (17, "udp"), (1, "icmp")):
        out.append((f"eth/ipv4/{name}", _eth(ETH_P_IP, ipv4(proto))))
        out.append((f"eth/ipv6/{name if proto != 1 else 'icmpv6'}", _eth(ETH_P_IPV6, ipv6(proto if proto != 1 else 58))))
    out.append(("eth/ipv4+options/tcp", _eth(ETH_P_IP, ipv4(6, opts=b"\x01\x01\x01\x00" + b"\x07\x07\x04" + bytes(5)))))
    out.append(("eth/ipv4+options/udp", _eth(ETH_P_IP, ipv4(17, opts=b"\x94\x04\x00\x00"))))
    out.append(("eth/ipv4 fragment", _eth(ETH_P_IP, ipv4(17, frag=0x2000 | 0))))
    out.append(("eth/ipv4 later fragment", _eth(ETH_P_IP, ipv4(17, frag=185))))
    for ext, name in (((0,), "hop-by-hop"), ((43,), "routing"), ((44,), "fragment"), ((60,), "dest-opts"),
                      ((0, 60, 43), "hbh+dst+rt")):
        out.append((f"eth/ipv6+{name}/tcp", _eth(ETH_P_IPV6, ipv6(6, ext=ext))))
        out.append((f"eth/ipv6+{name}/udp", _eth(ETH_P_IPV6, ipv6(17, ext=ext))))
    out.append(("eth/vlan/ipv4/tcp", _eth(ETH_P_IP, ipv4(6), vlans=(100,))))
    out.append(("eth/vlan/ipv6/udp", _eth(ETH_P_IPV6, ipv6(17), vlans=(100,))))
    out.append(("eth/qinq/ipv4/udp", _eth(ETH_P_IP, ipv4(17), vlans=(10, 20))))
    out.append(("eth/arp request", _eth(ETH_P_ARP, arp(1))))
    out.append(("eth/arp reply", _eth(ETH_P_ARP, arp(2))))
    out.append(("eth/ipv4/tcp ack big", _eth(ETH_P_IP, ipv4(6, payload=bytes(range(256)) * 4))))
    for p in ports:
        for proto, name in ((6, "tcp"), (17, "udp")):
            out.append((f"eth/ipv4/{name} dport {p}", _eth(ETH_P_IP, ipv4(proto, 40000, p))))
            out.append((f"eth/ipv4/{name} sport {p}", _eth(ETH_P_IP, ipv4(proto, p, 8080))))
            out.append((f"eth/ipv6/{name} dport {p}", _eth(ETH_P_IPV6, ipv6(proto, 40000, p))))
    for proto in h.protocols()[:10]:
        out.append((f"eth/ipv4 proto {proto}", _eth(ETH_P_IP, ipv4(proto))))
        out.append((f"eth/ipv6 nexthdr {proto}", _eth(ETH_P_IPV6, ipv6(proto))))
    for et in h.ethertypes()[:8]:
        out.append((f"eth type {et:#06x}", _eth(et, ipv4(6))))
    # Boundaries: frames cut at every header end and at the program's own bounds checks.
    bases = [(n, p) for n, p in out[:6]] + [(n, p) for n, p in out if n in ("eth/vlan/ipv4/tcp", "eth/arp request")]
    cuts = sorted(set(h.cut_lengths()) | {13, 14, 15, 33, 34, 35, 41, 42, 53, 54, 55, 61, 62, 73, 74})
    for name, full in bases:
        for cut in cuts:
            if cut < len(full):
                out.append((f"{name} cut at {cut}", full[:cut]))
    # Lengths the program compares with (skb->len, say): well-formed frames of exactly that size.
    for v in h.lengths():
        if v >= 54:
            out.append((f"eth/ipv4/tcp length {v}", _eth(ETH_P_IP, ipv4(6, payload=bytes(v - 54)))))
        elif v >= 14:
            out.append((f"eth/ipv4/tcp length {v}", full[:v]))
    out.append(("zero-64", bytes(64)))
    return out


def describe(pkt: bytes) -> str:
    """A one-line decode of an Ethernet frame (dpkt), for verdicts."""
    try:
        eth = dpkt.ethernet.Ethernet(pkt)
    except (dpkt.UnpackError, struct.error, ValueError):
        return f"{len(pkt)} bytes (not Ethernet)"
    parts = [f"{len(pkt)} bytes eth type {eth.type:#06x}"]
    if getattr(eth, "vlan_tags", None):
        parts.append("vlan " + "/".join(str(t.id) for t in eth.vlan_tags))
    ip = eth.data
    if isinstance(ip, dpkt.ip.IP):
        parts.append(f"ipv4 {_ip4(ip.src)} > {_ip4(ip.dst)} proto {ip.p} ttl {ip.ttl}" + (f" opts {len(ip.opts)}B" if ip.opts else ""))
    elif isinstance(ip, dpkt.ip6.IP6):
        parts.append(f"ipv6 nxt {ip.nxt} hlim {ip.hlim}")
    elif isinstance(ip, dpkt.arp.ARP):
        parts.append(f"arp op {ip.op}")
    l4 = getattr(ip, "data", None)
    if isinstance(l4, (dpkt.tcp.TCP, dpkt.udp.UDP)):
        parts.append(f"{type(l4).__name__.lower()} {l4.sport} > {l4.dport}")
    elif isinstance(l4, (dpkt.icmp.ICMP, dpkt.icmp6.ICMP6)):
        parts.append(f"icmp type {l4.type}")
    return ", ".join(parts)


def _ip4(b: bytes) -> str:
    return ".".join(str(x) for x in b)


# --- mutation -----------------------------------------------------------------------------------

def mutate(pkt: bytes, rng: random.Random, h: Harvest, offsets: list[int]) -> bytes:
    """One coverage-search step: a constant of the program placed where it reads, or a byte flip,
    a cut or a growth."""
    b = bytearray(pkt)
    r = rng.random()
    if r < 0.55 and h.values and b:
        v = rng.choice(h.values[:32]) if rng.random() < 0.6 else rng.choice(h.values)
        if v < 256 and rng.random() < 0.7:
            width = 1
        elif v < 65536 and rng.random() < 0.8:
            width = 2
        else:
            width = rng.choice((1, 2, 4))
        order = rng.choice(("big", "little"))
        if h.reads and rng.random() < 0.5:
            at, width = rng.choice(h.reads)
            width = min(width, 4)
        else:
            at = rng.choice(offsets) if offsets and rng.random() < 0.8 else rng.randrange(len(b))
            if rng.random() < 0.3:
                at += rng.choice((1, 2, 3, 4, 6, 8, 12))
        if at + width <= len(b):
            b[at:at + width] = (v & ((1 << (8 * width)) - 1)).to_bytes(width, order)
    elif r < 0.8 and b:
        at = rng.randrange(len(b))
        b[at] = rng.randrange(256) if rng.random() < 0.5 else b[at] ^ (1 << rng.randrange(8))
    elif r < 0.9 and len(b) > 14:
        b = b[: rng.randrange(14, len(b))]
    else:
        b += bytes(rng.randrange(1, 64))
    return bytes(b)


# --- user inputs --------------------------------------------------------------------------------

def read_inputs(path: "str | Path") -> list[tuple[str, bytes]]:
    """Packets from a pcap or pcapng capture, or a text file of one hex packet per line
    (blank lines and ``#`` comments ignored).  `InputFileError` names the file and place."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputFileError(f"{p}: cannot read: {exc.strerror}") from exc
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"):
        reader_cls = dpkt.pcap.Reader
    elif magic == b"\x0a\x0d\x0d\x0a":
        reader_cls = dpkt.pcapng.Reader
    else:
        return _hex_lines(p, data)
    import io

    try:
        reader = reader_cls(io.BytesIO(data))
        return [(f"{p.name}#{k + 1}", bytes(buf)) for k, (_, buf) in enumerate(reader)]
    except (ValueError, dpkt.UnpackError, struct.error) as exc:
        raise InputFileError(f"{p}: not a readable capture: {exc}") from exc


def _hex_lines(p: Path, data: bytes) -> list[tuple[str, bytes]]:
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise InputFileError(f"{p}: neither pcap, pcapng nor text (one hex packet per line)") from None
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        s = line.split("#", 1)[0].strip().replace(" ", "").replace(":", "")
        if not s:
            continue
        try:
            out.append((f"{p.name}:{n}", bytes.fromhex(s)))
        except ValueError:
            raise InputFileError(f"{p}: line {n}: not hex: {line.strip()[:40]!r}") from None
    return out


def write_pcap(path: "str | Path", packets: list[bytes]) -> None:
    """Write packets as a pcap (Ethernet link type), e.g. to keep the inputs of a check."""
    with open(path, "wb") as f:
        w = dpkt.pcap.Writer(f)
        for k, pkt in enumerate(packets):
            w.writepkt(pkt, ts=float(k))


__all__ = ["Harvest", "InputFileError", "arp", "describe", "harvest", "ipv4", "ipv6", "mutate", "read_inputs",
           "shapes", "write_pcap"]

"""Run an instrumented object on inputs and read its counters back.

Loading is libbpf's (`bpfpatch.kernel.libbpf.load_object`): it creates the
object's maps and the counters' global-data map, relocates, and loads.  The
original object is loaded and run on the same inputs too, and every run's
return value and packet out are compared: instrumentation must not change
behaviour, and `RunResult.differences` says where it did.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from bpfpatch.cover.instrument import COUNTERS_SECTION, CoverError, CoverMap

PCAP_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")


@dataclass
class RunResult:
    """Counters after the runs, and how the instrumented program compared with the original."""

    counters: list[int]
    runs: dict[str, int] = field(default_factory=dict)  # program name -> number of runs
    differences: list[str] = field(default_factory=list)
    original_loaded: bool = True


def read_inputs(path: str | Path) -> list[tuple[str, bytes]]:
    """Packets from a file: a pcap (dpkt), or text with one hex-encoded packet per line (``#`` comments)."""
    data = Path(path).read_bytes()
    if data[:4] in PCAP_MAGICS:
        import io

        import dpkt

        return [(f"pcap#{i}", bytes(buf)) for i, (_ts, buf) in enumerate(dpkt.pcap.Reader(io.BytesIO(data)))]
    out = []
    for n, line in enumerate(data.decode(errors="replace").splitlines(), 1):
        line = line.split("#", 1)[0].strip().replace(" ", "")
        if not line:
            continue
        try:
            out.append((f"{Path(path).name}:{n}", bytes.fromhex(line)))
        except ValueError:
            raise CoverError(f"{path}:{n}: not a hex-encoded packet") from None
    if not out:
        raise CoverError(f"{path}: no packets")
    return out


def parse_counter_dump(text: str, ncounters: int) -> list[int]:
    """Counters from ``bpftool map dump ... -j`` of the counters map (raw or BTF-formatted JSON)."""
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CoverError(f"counter dump is not JSON ({exc})") from None
    if isinstance(rows, dict):
        rows = [rows]
    for row in rows:
        fmt = row.get("formatted")
        if fmt is not None:  # with BTF: {"value": {".data.__bpfcover": [{"__bpfcover": [..]}]}}
            val = fmt.get("value")
            found = _find_list(val)
            if found is not None:
                return [int(v) for v in found][:ncounters] + [0] * max(0, ncounters - len(found))
        value = row.get("value")
        if isinstance(value, list):
            raw = bytes(int(x, 16) if isinstance(x, str) else int(x) for x in value)
            vals = list(struct.unpack_from(f"<{len(raw) // 8}Q", raw))
            return vals[:ncounters] + [0] * max(0, ncounters - len(vals))
    raise CoverError("counter dump has no value of the counters map")


def _find_list(v):
    if isinstance(v, list) and v and all(isinstance(x, int) for x in v):
        return v
    if isinstance(v, dict):
        for x in v.values():
            r = _find_list(x)
            if r is not None:
                return r
    if isinstance(v, list):
        for x in v:
            r = _find_list(x)
            if r is not None:
                return r
    return None


def run_coverage(original: str | Path | bytes, instrumented: bytes, cmap: CoverMap, inputs: list[tuple[str, bytes]], *,
                 programs: list[str] | None = None, prog_type: str | None = None,
                 progress: Callable[[int, int], None] | None = None) -> RunResult:
    """Load both objects, run `programs` (names or sections; default: every packet-runnable one) on every input."""
    from bpfpatch.errors import KernelError
    from bpfpatch.kernel.libbpf import load_object

    sections = {c.section for c in cmap.counters}
    try:
        orig = load_object(original, prog_type=prog_type, name="original")
    except KernelError as exc:
        raise CoverError(f"the original object does not load here either: {exc}") from exc
    with orig, load_object(instrumented, prog_type=prog_type, name="instrumented") as obj:
        chosen = [p for p in obj.programs.values() if p.section in sections and _runnable(p)
                  and (programs is None or p.name in programs or p.section in programs)]
        if not chosen:
            raise CoverError(f"no program of the object can be test-run (sections: {', '.join(sorted(sections))}"
                             + (f"; asked for {', '.join(programs)}" if programs else "") + ")")
        result = RunResult([])
        total, done = len(chosen) * len(inputs), 0
        for p_new in chosen:
            p_old = orig.programs[p_new.name]
            for name, data, *ctx in inputs:
                a = p_old.test_run(data, *ctx)
                r = p_new.test_run(data, *ctx)
                if (a.retval, a.data_out) != (r.retval, r.data_out) and len(result.differences) < 20:
                    result.differences.append(f"{p_new.name} on {name}: retval {a.retval} -> {r.retval}"
                                              + ("" if a.data_out == r.data_out else ", packet out differs"))
                result.runs[p_new.name] = result.runs.get(p_new.name, 0) + 1
                done += 1
                if progress is not None:
                    progress(done, total)  # runs done, runs in all
        raw = obj.map(COUNTERS_SECTION).lookup(bytes(4))
    if raw is None:
        raise CoverError("the counters map is empty")
    result.counters = list(struct.unpack_from(f"<{len(cmap.counters)}Q", raw))
    return result


def _runnable(prog) -> bool:
    from bpfpatch.kernel.equiv import PACKET_RUNNABLE

    return prog.loaded and prog.prog_type in PACKET_RUNNABLE


def merge_counters(runs: Iterable[list[int]]) -> list[int]:
    """Element-wise sum of several counter dumps."""
    out: list[int] = []
    for r in runs:
        if len(r) > len(out):
            out += [0] * (len(r) - len(out))
        for i, v in enumerate(r):
            out[i] += v
    return out




def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def searched_inputs(original: str | Path | bytes, n: int, seed: int = 0, *, programs: list[str] | None = None,
                    prog_type: str | None = None) -> list[tuple[str, bytes, bytes | None]]:
    """`n` inputs per program, as `check` finds them (`bpfpatch.kernel.check.explore`): packets of
    every common shape with the program's own constants and context fields, then a search guided by
    a block-counter copy of the original.  (label, packet, context) for `run_coverage`; the inputs
    found for one program are run on every chosen program."""
    from bpfpatch.kernel.check import explore

    out: list[tuple[str, bytes, bytes | None]] = []
    for found in explore(original, prog_type=prog_type, budget=n, seed=seed):
        if programs is None or found.program in programs or found.section in programs:
            out += [(f"{found.program}:{i.label}", i.data, i.ctx) for i in found.inputs]
    return out


def packet_inputs(n: int, seed: int = 0) -> list[tuple[str, bytes]]:
    """`n` packets: the check command's random ones (a quarter) and well-formed Ethernet frames.

    The frames mix IPv4 / IPv6 / ARP, optional 802.1Q tags, TCP / UDP / ICMP,
    random addresses and ports from a small pool (so filters keyed on them hit
    sometimes), deterministic for a seed.
    """
    import random

    from bpfpatch.kernel.equiv import generate_inputs

    rng = random.Random(seed)
    out = generate_inputs(max(1, n // 4), seed)
    ports = [22, 53, 80, 443, 8080, rng.randrange(1024, 65536)]
    while len(out) < n:
        l3 = rng.choice(["ipv4", "ipv4", "ipv6", "arp"])
        l4 = rng.choice(["tcp", "udp", "icmp"])
        payload = rng.randbytes(rng.choice([0, 8, 64]))
        if l4 == "tcp":
            seg = struct.pack("!HHIIBBHHH", rng.choice(ports), rng.choice(ports), rng.getrandbits(32), 0, 5 << 4,
                              rng.choice([0x02, 0x10, 0x18, 0x11]), 65535, 0, 0) + payload
            proto = 6
        elif l4 == "udp":
            seg = struct.pack("!HHHH", rng.choice(ports), rng.choice(ports), 8 + len(payload), 0) + payload
            proto = 17
        else:
            seg = struct.pack("!BBHHH", 8, 0, 0, rng.getrandbits(16), 1) + payload
            proto = 1 if l3 == "ipv4" else 58
        if l3 == "ipv4":
            hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(seg), rng.getrandbits(16), 0, 64, proto, 0,
                              bytes([10, 0, 0, rng.randrange(1, 4)]), bytes([10, 0, 1, rng.randrange(1, 4)]))
            hdr = hdr[:10] + struct.pack("!H", _csum(hdr)) + hdr[12:]
            body, ethertype = hdr + seg, 0x0800
        elif l3 == "ipv6":
            src = bytes([0xFD] + [0] * 14 + [rng.randrange(1, 4)])
            dst = bytes([0xFD] + [0] * 14 + [rng.randrange(1, 4)])
            body, ethertype = struct.pack("!IHBB16s16s", 6 << 28, len(seg), proto, 64, src, dst) + seg, 0x86DD
        else:
            body, ethertype = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, rng.randbytes(6), bytes(4),
                                          bytes(6), bytes(4)), 0x0806
        eth = rng.randbytes(6) + rng.randbytes(6)
        if rng.random() < 0.2:
            eth += struct.pack("!HH", 0x8100, rng.randrange(1, 4095))
        pkt = eth + struct.pack("!H", ethertype) + body
        out.append((f"{l3}-{l4}#{len(out)}", pkt))
    return out[:n]


__all__ = ["RunResult", "merge_counters", "packet_inputs", "parse_counter_dump", "read_inputs", "run_coverage",
           "searched_inputs"]

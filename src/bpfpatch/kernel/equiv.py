"""Prove a rewrite keeps behaviour: load both programs, run both on the same inputs.

Each program gets its own fresh copies of the maps it references, so one
run cannot influence the other.  Map references come from
``program.meta["map_refs"]`` ({slot: (map name, value offset or None)}) and
``program.meta["map_specs"]`` ({name: MapSpec}), which the ELF linker fills
and `linearize` keeps in step with the instructions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from bpfpatch.errors import KernelError, NotPrivilegedError, VerifierError
from bpfpatch.kernel.loader import PACKET_RUNNABLE, ProgType, TestRunResult, load_program, prog_type_of
from bpfpatch.kernel.maps import Map, create_map, patch_map_fds

# Packet sizes worth trying: boundaries of Ethernet/IP/TCP headers and common sizes.
PACKET_SIZES = (14, 15, 20, 34, 54, 60, 64, 128, 512, 1500)


class Verdict(Enum):
    EQUIVALENT = "equivalent"
    DIFFERENT = "different"
    UNDECIDED = "undecided"


@dataclass
class LoadReport:
    accepted: bool
    error: str = ""


@dataclass
class EquivalenceReport:
    verdict: Verdict
    reason: str = ""
    original: LoadReport | None = None
    rewritten: LoadReport | None = None
    inputs_run: int = 0
    first_difference: dict[str, Any] | None = None
    rows: list[tuple[str, int, int]] = field(default_factory=list)  # (input, retval a, retval b)

    def __str__(self) -> str:
        if self.verdict is Verdict.EQUIVALENT:
            return f"equivalent on {self.inputs_run} inputs"
        if self.verdict is Verdict.DIFFERENT:
            return f"different: {self.reason}"
        return f"undecided: {self.reason}"


def generate_inputs(n: int, seed: int) -> list[tuple[str, bytes]]:
    """Zero packet, boundary sizes, then random packets of random sizes (seeded)."""
    rng = random.Random(seed)
    inputs: list[tuple[str, bytes]] = [("zero-64", bytes(64))]
    for size in PACKET_SIZES:
        inputs.append((f"random-{size}", rng.randbytes(size)))
    while len(inputs) < n:
        size = rng.choice(PACKET_SIZES + (rng.randint(14, 1500),))
        inputs.append((f"random-{size}#{len(inputs)}", rng.randbytes(size)))
    return inputs[:n]


def _first_error_line(exc: KernelError) -> str:
    if exc.log:
        for line in reversed(exc.log.splitlines()):
            if line.strip() and not line.startswith(("processed", "verification time", "stack depth")):
                return line.strip()
    return str(exc)


def with_fresh_maps(program: Any, contents: "dict[str, dict[bytes, bytes]] | None" = None) -> tuple[bytes, dict[str, Map]]:
    """Raw bytes with a fresh map per referenced map patched in, each filled from `contents` by name.

    The caller owns (and closes) the returned maps.
    """
    raw = program if isinstance(program, (bytes, bytearray)) else program.to_bytes()
    meta = getattr(program, "meta", {}) or {}
    refs = meta.get("map_refs") or {}
    specs = meta.get("map_specs") or {}
    contents = contents or {}
    maps: dict[str, Map] = {}
    fds: dict[int, tuple[int, int | None]] = {}
    for slot, (name, value_off) in refs.items():
        if name not in maps:
            maps[name] = create_map(specs[name])
            for key, value in contents.get(name, {}).items():
                maps[name].update(key, value)
        fds[int(slot)] = (maps[name].fd, value_off)
    if fds:
        raw = patch_map_fds(bytes(raw), fds)
    return bytes(raw), maps


def _run_all(program: Any, ptype: ProgType, inputs: list[tuple[str, bytes]]):
    raw, maps = with_fresh_maps(program)
    try:
        with load_program(raw, ptype) as prog:
            return [prog.test_run(data) for _, data in inputs]
    finally:
        for m in maps.values():
            m.close()


def check_equivalence(original: Any, rewritten: Any, prog_type: "ProgType | int | str" = "socket_filter", *,
                      inputs: int = 32, seed: int = 0) -> EquivalenceReport:
    """Load both programs, run both on the same generated inputs, compare retval and data out."""
    try:
        ptype = prog_type_of(prog_type)
    except KernelError as exc:
        return EquivalenceReport(Verdict.UNDECIDED, str(exc))
    if ptype not in PACKET_RUNNABLE:
        return EquivalenceReport(Verdict.UNDECIDED, f"program type {ptype.name.lower()} cannot be test-run with packets")
    cases = generate_inputs(inputs, seed)
    reports: list[LoadReport] = []
    results: list[list[TestRunResult] | None] = []
    for prog in (original, rewritten):
        try:
            results.append(_run_all(prog, ptype, cases))
            reports.append(LoadReport(True))
        except NotPrivilegedError as exc:
            return EquivalenceReport(Verdict.UNDECIDED, f"needs root or CAP_BPF ({exc})")
        except VerifierError as exc:
            results.append(None)
            reports.append(LoadReport(False, _first_error_line(exc)))
        except KernelError as exc:
            return EquivalenceReport(Verdict.UNDECIDED, str(exc))
    a, b = results
    if a is None or b is None:
        verdict = Verdict.EQUIVALENT if (a is None and b is None) else Verdict.DIFFERENT
        reason = "both rejected by the verifier" if verdict is Verdict.EQUIVALENT else (
            f"{'original' if a is None else 'rewritten'} rejected: {(reports[0] if a is None else reports[1]).error}")
        if verdict is Verdict.EQUIVALENT:
            verdict, reason = Verdict.UNDECIDED, reason
        return EquivalenceReport(verdict, reason, reports[0], reports[1])
    report = EquivalenceReport(Verdict.EQUIVALENT, "", reports[0], reports[1], len(cases))
    for (name, data), ra, rb in zip(cases, a, b):
        report.rows.append((name, ra.retval, rb.retval))
        if (ra.retval, ra.data_out) != (rb.retval, rb.data_out) and report.first_difference is None:
            report.verdict = Verdict.DIFFERENT
            report.reason = f"input {name} ({len(data)} bytes): retval {ra.retval} vs {rb.retval}" + (
                "" if ra.data_out == rb.data_out else ", data out differs")
            report.first_difference = {"input": name, "data": data.hex(), "original": ra, "rewritten": rb}
    return report

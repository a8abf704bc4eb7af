"""Block coverage: a copy of a program with a counter per basic block, made with our patch list.

    >>> blocks = basic_blocks(raw)                     # leader slots
    >>> cov = Coverage.instrument(raw, like=obj.program("xdp"), obj=obj)
    >>> cov.run(packet); cov.hit()                     # indices of blocks reached so far

At the start of every basic block the copy gets (``rP``, ``rO``: registers the
program never names)::

    rP = map_value(counter map, 8 * block)   # ld_imm64, BPF_PSEUDO_MAP_VALUE
    rO = 1
    lock *(u64 *)(rP + 0) += rO

inserted with `PatchList.prepend` (retarget: jumps and calls to the block land
on its counter).  With only one free register the block gets a flag instead
(``*(u8 *)(rP + 0) = 1``).  The counter map is one array element holding a
u64 per block.  Blocks the verifier proves dead are removed with their
counters; `Coverage.kept` reads the xlated program to know which blocks the
kernel kept, so "B of C blocks" counts only code that can run.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np

from bpfpatch.analysis.cfg import FlowGraph
from bpfpatch.analysis.liveness import list_liveness
from bpfpatch.errors import BpfPatchError
from bpfpatch.isa import LD_IMM64, decode_slots
from bpfpatch.isa.build import atomic_op, ld_imm64, mov64_imm, st_mem
from bpfpatch.isa.opcodes import AtomicOp, PseudoSrc, Size
from bpfpatch.kernel.bpf_sys import Cmd, InfoAttr, addr, bpf, raise_kernel_error
from bpfpatch.kernel.loader import LoadedProgram
from bpfpatch.kernel.maps import Map, MapSpec, MapType, create_map
from bpfpatch.passes.regs import AUTO_ORDER, registers_named
from bpfpatch.patch import PatchList
from bpfpatch.program import Program

class CoverageError(BpfPatchError):
    """The program cannot be instrumented (no free register, undecodable)."""


def basic_blocks(raw: bytes) -> list[int]:
    """Slot indices where basic blocks start (`bpfpatch.analysis.cfg.FlowGraph`'s blocks: the entry,
    subprogram starts, jump targets, and after jumps and exits)."""
    pl = PatchList(Program.from_bytes(raw, validate=False))
    firsts = np.fromiter((block.first.id for block in FlowGraph(pl).blocks), dtype=np.int64)
    return pl.orig_indices(firsts).tolist()


def free_registers(raw: bytes) -> list[int]:
    """Registers r1-r9 the program never names, callee-saved first."""
    used = registers_named(decode_slots(raw)["regs"])
    return [r for r in AUTO_ORDER if r not in used]


def live_in(raw: bytes) -> list[int]:
    """Per slot: the bit mask of registers live before it (`bpfpatch.analysis.liveness` over the
    program; calls read r1-r5 and clobber r0-r5, exit reads r0; an ld_imm64's second slot gets 0)."""
    pl = PatchList(Program.from_bytes(raw, validate=False))
    ids, live, _ = list_liveness(pl)
    out = [0] * (len(raw) // 8)
    for slot, mask in zip(pl.orig_indices(ids).tolist(), live.live_in.tolist()):
        out[slot] = mask
    return out


def instrument(raw: bytes, counter_fd: int) -> tuple[bytes, list[int], bool]:
    """The program with a counter at each basic block: (bytes, leader slots, all counted?).

    Each block uses registers dead at its start (`live_in`); a block with one
    dead register gets a flag instead of a count."""
    leaders = basic_blocks(raw)
    live = live_in(raw)
    pl = PatchList(Program.from_bytes(raw, validate=False))
    all_counted = True
    for b, slot in enumerate(leaders):
        dead = [r for r in AUTO_ORDER + (0,) if not live[slot] >> r & 1]
        if not dead:
            raise CoverageError(f"no dead register at block {b} (slot {slot}) for its counter")
        rp = dead[0]
        patch = [ld_imm64(rp, (counter_fd & 0xFFFFFFFF) | ((8 * b) << 32), PseudoSrc.MAP_VALUE)]
        if len(dead) >= 2:
            patch += [mov64_imm(dead[1], 1), atomic_op(Size.DW, AtomicOp.ADD, rp, dead[1], 0)]
        else:
            patch += [st_mem(Size.B, rp, 0, 1)]
            all_counted = False
        pl.prepend(pl.node_at(slot), patch)
    return pl.linearize().to_bytes(), leaders, all_counted


class MapInfoStruct(ctypes.Structure):
    """struct bpf_map_info, its first fields."""

    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32), ("key_size", ctypes.c_uint32),
                ("value_size", ctypes.c_uint32), ("max_entries", ctypes.c_uint32), ("map_flags", ctypes.c_uint32),
                ("name", ctypes.c_char * 16)]


def map_id(fd: int) -> int:
    """The kernel's id of the map behind `fd`."""
    info = MapInfoStruct()
    attr = InfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info), info=addr(info))
    try:
        bpf(Cmd.OBJ_GET_INFO_BY_FD, attr)
    except OSError as exc:
        raise_kernel_error(exc, "BPF_OBJ_GET_INFO_BY_FD (map)")
    return int(info.id)


@dataclass
class Coverage:
    """An instrumented copy of a program, loaded, with its counter map."""

    program: LoadedProgram
    counters: Map
    leaders: list[int]
    counts: bool
    kept: list[int]  # block indices the verifier kept (the others are dead code)

    @classmethod
    def instrument(cls, raw: bytes, load) -> "Coverage":
        """Instrument `raw` (relocated instructions) and load it with `load(bytes) -> LoadedProgram`."""
        leaders = basic_blocks(raw)
        counters = create_map(MapSpec("bpfpatch_cover", MapType.ARRAY, 4, 8 * max(len(leaders), 1), 1))
        try:
            code, leaders, counts = instrument(raw, counters.fd)
            prog = load(code)
        except BaseException:
            counters.close()
            raise
        kept = _kept_blocks(prog.xlated(), map_id(counters.fd), len(leaders))
        return cls(prog, counters, leaders, counts, kept)

    @property
    def blocks(self) -> int:
        """Blocks the kernel kept (the denominator of "B of C blocks")."""
        return len(self.kept)

    def counts_now(self) -> np.ndarray:
        """The u64 counter of every block (1/0 flags where only one register was free)."""
        raw = self.counters.lookup(b"\0\0\0\0") or b""
        return np.frombuffer(raw, dtype="<u8", count=len(self.leaders))

    def hit(self) -> set[int]:
        """Blocks reached by some run so far."""
        return set(np.flatnonzero(self.counts_now()).tolist())

    def reset(self) -> None:
        self.counters.update(b"\0\0\0\0", bytes(8 * len(self.leaders)))

    def close(self) -> None:
        self.program.close()
        self.counters.close()

    def __enter__(self) -> "Coverage":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _kept_blocks(xlated: bytes, counter_id: int, nblocks: int) -> list[int]:
    """Blocks whose counter survives in the xlated program (the kernel writes map id and
    value offset back into a map-value ld_imm64 when it dumps)."""
    slots = decode_slots(xlated)
    kept = set()
    codes, regs, imms = slots["code"], slots["regs"], slots["imm"]
    for i in np.flatnonzero(codes == LD_IMM64).tolist():
        if i + 1 < len(slots) and regs[i] >> 4 == PseudoSrc.MAP_VALUE and int(imms[i]) == counter_id:
            b = int(imms[i + 1]) // 8
            if 0 <= b < nblocks:
                kept.add(b)
    return sorted(kept)


__all__ = ["Coverage", "CoverageError", "basic_blocks", "free_registers", "instrument", "map_id"]

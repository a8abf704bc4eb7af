"""Kept states packed against a key frame (`State.keep`, `KeptState`) read back as what eager snapshots kept.

Every state the analysis keeps (``InsnAux.states`` and ``extra["after"]``) is
compared, field by field, with a deep snapshot of the live state taken at the
moment it was kept (the pre-packing behaviour), over the adversarial
generators, random programs and xdp-tools' objects.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from progtools import kernel_programs

from bpfpatch.adversarial import GENERATORS
from bpfpatch.analysis.facts import InsnAux
from bpfpatch.analysis.state import KeptState, Reg, Snapshot, State
from bpfpatch.analysis.verifier import AnalysisError, analyze

XDP_TOOLS = Path("/usr/lib/x86_64-linux-gnu/bpf")


def _reg(r: Reg) -> tuple:
    return tuple(getattr(r, n) for n in Reg.__slots__)


def _fields(s: Snapshot) -> tuple:
    frames = tuple((f.callsite, f.frameno, f.subprog, f.callback_depth, tuple(_reg(r) for r in f.regs),
                    tuple(sorted((k, sl.types, None if sl.spilled is None else _reg(sl.spilled))
                                 for k, sl in f.stack.items())))
                   for f in s.frames)
    return frames, tuple(s.refs), s.may_goto_depth


@contextlib.contextmanager
def _eager_log():
    """Per aux, the fields of the live state at each `keep_state` / `keep_after` (a deep copy at that moment)."""
    log: dict[int, tuple[list, list]] = {}
    cur: list = [None]
    saved = State.keep, InsnAux.keep_state, InsnAux.keep_after

    def keep(self, key, rec):
        cur[0] = _fields(self.snapshot(None))
        return saved[0](self, key, rec)

    def keep_state(self, state):
        log.setdefault(id(self), ([], []))[0].append(cur[0])
        saved[1](self, state)

    def keep_after(self, state):
        log.setdefault(id(self), ([], []))[1].append(cur[0])
        saved[2](self, state)

    State.keep, InsnAux.keep_state, InsnAux.keep_after = keep, keep_state, keep_after
    try:
        yield log
    finally:
        State.keep, InsnAux.keep_state, InsnAux.keep_after = saved


def _packed_as_eager(prog, prog_type: str = "socket_filter", budget: int = 20_000) -> int:
    packed = [0]
    orig = KeptState.unpack

    def unpack(self):
        packed[0] += 1
        return orig(self)

    with _eager_log() as log:
        KeptState.unpack = unpack
        try:
            try:
                a = analyze(prog, prog_type, budget=budget)
            except AnalysisError as exc:
                a = exc.analysis
            compared = 0
            for x in a.aux:
                if x is None:
                    continue
                before, after = log.get(id(x), ([], []))
                assert [_fields(s) for s in x.states] == before
                assert [_fields(s) for s in x.extra_get("after", [])] == after
                compared += len(before) + len(after)
        finally:
            KeptState.unpack = orig
    return compared, packed[0]


@pytest.mark.parametrize("gen", sorted(GENERATORS))
def test_adversarial_programs_keep_what_eager_snapshots_kept(gen):
    compared, packed = _packed_as_eager(GENERATORS[gen](300), budget=5_000)
    assert compared > 0
    if gen in ("ld_imm64 run", "nested loops", "unknown branches", "jump fan-in"):
        assert packed > 0  # these keep most states packed


@settings(max_examples=40, deadline=None)
@given(kernel_programs(max_len=40))
def test_random_programs_keep_what_eager_snapshots_kept(prog):
    _packed_as_eager(prog)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["xdpfilt_alw_eth.o", "xdpfilt_dny_tcp.o", "xsk_def_xdp_prog.o"])
def test_xdp_tools_keep_what_eager_snapshots_kept(name):
    from bpfpatch.elf import read_object

    path = XDP_TOOLS / name
    if not path.exists():
        pytest.skip(f"{path} missing (xdp-tools not installed)")
    obj = read_object(path, opaque=True)
    for n in [n for n in obj.programs if n != ".text"]:
        compared, packed = _packed_as_eager(obj.linked_program(n), "xdp", budget=200_000)
        assert compared > 0 and packed > 0


def test_a_packed_state_is_unpacked_once_read_and_later_states_after_it():
    # the list read is made of the states themselves; a state kept after the read joins it unpacked
    from bpfpatch.analysis.state import Frame

    live = State([Frame(0)])
    key, _ = live.keep(None, None)
    live.frames[0].regs[3] = Reg.known(7)
    k2, rec = live.keep(key, key)
    assert k2 is key and rec.__class__ is KeptState
    aux = InsnAux()
    aux.keep_state(rec)
    aux.keep_state(rec)
    first = aux.states
    assert [s.__class__ for s in first] == [Snapshot, Snapshot] and first[0].regs[3].is_const()
    aux.keep_state(rec)
    assert aux.states is first and first[2].__class__ is Snapshot and _fields(first[2]) == _fields(first[0])

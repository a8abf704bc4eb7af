"""Concrete runs of both programs through the model: a counterexample without solving.

When a changed region cannot be proved from its symbolic entry state, the
programs probably differ.  Before handing the exact prefix state to the solver
(the slow part on a 10,000-instruction program), `probe` runs both programs on
a few concrete inputs (zeros, then seeded random packets, context fields and
helper results; the context fields a test run fixes get the values it gives
them) in a `ConcreteEnv`: every input is a constant, so every value folds and
every branch is decided while the programs are encoded, and each run is one
path.  An input on which an observable differs is a counterexample as good as
the solver's (the same model, evaluated); none found says nothing.
"""

from __future__ import annotations

import random
from typing import Any

import z3

from bpfpatch.progtype import ProgType
from bpfpatch.prove import layout as L
from bpfpatch.prove.model import ETH_HLEN, Env, bv

#: Inputs tried before the solver: zeros, then this many seeded random ones.
RANDOM_PROBES = 2


class ConcreteEnv(Env):
    """An `Env` whose inputs are constants (`values`: symbol name -> int, default 0; helper results by call position)."""

    def __init__(self, prog_type: ProgType, max_len: int, maps, values: dict[str, int], plen: int,
                 helper_results: dict[int, int]) -> None:
        super().__init__(prog_type, max_len, maps)
        self.values = values
        self.plen = bv(plen)
        self.assumptions = []
        self.helper_results = helper_results
        self.helper_ret = self._helper_ret

    def _helper_ret(self, pos: z3.BitVecRef) -> z3.BitVecRef:
        if not z3.is_bv_value(pos):  # a count of calls under conditions that fold (every input is a constant)
            pos = z3.simplify(pos)
        k = pos.as_long() if z3.is_bv_value(pos) else None
        if k is None:
            return z3.Function("helper_ret", z3.BitVecSort(32), z3.BitVecSort(64))(pos)
        return bv(self.helper_results.get(k, 0))

    def tail_taken(self, pos: z3.BitVecRef) -> z3.BoolRef:
        """No tail call is taken (a test run's program arrays are empty)."""
        return z3.BoolVal(False)

    def sym(self, name: str, bits: int) -> z3.BitVecRef:
        s = self._syms.get(name)
        if s is None:
            s = self._syms[name] = z3.BitVecVal(self.values.get(name, 0) & ((1 << bits) - 1), bits)
        return s


def inputs(prog_type: ProgType, max_len: int, n_random: int = RANDOM_PROBES) -> list[tuple[dict[str, int], int, dict[int, int]]]:
    """(symbol values, packet length, helper results) of the probes: zeros first, then seeded random ones."""
    skb = prog_type in L.SKB_TYPES
    fixed = L.SKB_TEST_RUN_DEFAULTS if skb else L.XDP_TEST_RUN_DEFAULTS if prog_type == ProgType.XDP else {}
    out = []
    for k in range(n_random + 1):
        rng = random.Random(k)
        values: dict[str, Any] = {}
        plen = max_len if k else max(max_len // 2, ETH_HLEN)
        if k:
            for i in range(max_len):
                values[f"pkt_{i}"] = rng.randrange(256)
            for f in L.user_layout(prog_type):
                values[f"ctx_{f.name}"] = rng.getrandbits(f.bits)
        for name, v in fixed.items():
            values[f"ctx_{name}"] = v
        if skb and prog_type != ProgType.SOCKET_FILTER:
            values["ctx_protocol"] = values.get("pkt_13", 0) << 8 | values.get("pkt_12", 0)
        helpers = {i: rng.getrandbits(32) for i in range(64)} if k else {}
        out.append((values, plen, helpers))
    return out


def completion() -> z3.ModelRef:
    """A model that gives every uninterpreted symbol left (map contents) its default."""
    s = z3.Solver()
    s.check()
    return s.model()


__all__ = ["ConcreteEnv", "RANDOM_PROBES", "completion", "inputs"]

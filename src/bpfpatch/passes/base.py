"""What a pass is: a small object that patches a `PatchList` in place.

A pass never sees offsets: it walks the list, looks at ``node.insn`` and
calls ``replace`` / ``prepend`` / ``append`` / ``delete``.  Several passes run
on one list; the caller linearizes once at the end.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from bpfpatch.patch import PatchList


@dataclass
class PassContext:
    """Options shared by the passes of one pipeline run."""

    seed: int = 0
    #: Register the blinding pass may clobber: 11 (kernel AX), a program register, or "auto".
    aux_reg: int | str = 11
    #: Program type (a `bpfpatch.progtype.ProgType`, its number or name) for passes that need it.
    prog_type: Any = None
    #: Free-form per-pass options, e.g. {"ctx": {"mapping": ...}}.
    options: dict[str, Any] = field(default_factory=dict)
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)


class Pass(Protocol):
    """A rewriting pass."""

    name: ClassVar[str]

    def run(self, pl: PatchList, ctx: PassContext) -> None:
        """Patch `pl` in place."""
        ...

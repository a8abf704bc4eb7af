"""`--pass kernel` on the xdp-tools objects (not written by us) equals this kernel's xlated output."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel_xlated_corpus import check_object

THIRD_PARTY = sorted(Path("/usr/lib/x86_64-linux-gnu/bpf").glob("*.o"))


@pytest.mark.kernel
@pytest.mark.slow
@pytest.mark.skipif(not THIRD_PARTY, reason="no xdp-tools objects here (apt-get install xdp-tools)")
def test_kernel_pass_reproduces_xdp_tools_xlated():
    outcomes = [r for p in THIRD_PARTY for r in check_object(p, timeout=120) if r.verdict != "kernel refused"]
    assert len(outcomes) >= 10
    bad = [f"{r.obj}:{r.prog}: {r.verdict} @{r.first_diff}" for r in outcomes if r.verdict != "match"]
    assert not bad, bad

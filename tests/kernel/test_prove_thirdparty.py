"""`check --prove` on constructs of third-party objects (tests/progs/thirdparty/): a verdict, never a crash."""

from __future__ import annotations

import pytest

from bpfpatch.elf import read_object
from bpfpatch.passes import PassContext, run_passes
from bpfpatch.prove import ProofVerdict, prove_equivalent
from conftest import PROGS, compile_bpf


@pytest.mark.parametrize("passes", [["zext"], ["blind"]])
def test_a_map_pointer_merged_with_an_inner_map_is_undecided_not_a_crash(tmp_path_factory, passes):
    obj = compile_bpf(PROGS / "thirdparty" / "map_or_inner.c", tmp_path_factory.mktemp("mapinner"), clang="clang")
    prog = read_object(obj.read_bytes()).linked_program("socket")
    new = run_passes(prog, passes, PassContext(seed=1, prog_type="socket_filter"))
    res = prove_equivalent(prog, new, "socket_filter", timeout=10)
    assert res.verdict is not ProofVerdict.COUNTEREXAMPLE, res
    if res.verdict is ProofVerdict.UNDECIDED:
        assert "r1 is not a map the model knows" in res.reason, res

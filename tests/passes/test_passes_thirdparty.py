"""Every pass on third-party objects (xdp-tools' /usr/lib/x86_64-linux-gnu/bpf/*.o, not written here):
where libbpf loads the original (maps created), it loads the rewrite, or the pass refuses clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from bpfpatch.elf import read_object
from bpfpatch.elf.writer import build_object
from bpfpatch.errors import BpfPatchError, PatchError
from bpfpatch.passes import PassContext, run_passes
from bpfpatch.progtype import UnknownProgType, prog_type_of

pytestmark = pytest.mark.kernel

OBJECTS = sorted(Path("/usr/lib/x86_64-linux-gnu/bpf").glob("*.o"))
#: The passes whose output is meant to load (ctx and kernel write the kernel's internal view).
LOADABLE_PASSES = ("dce", "div-guard", "zext", "blind")


def _section_type(name: str):
    try:
        return prog_type_of(name)
    except UnknownProgType:
        return None


@pytest.mark.skipif(not OBJECTS, reason="no xdp-tools objects installed (apt-get install xdp-tools)")
@pytest.mark.parametrize("path", OBJECTS, ids=[p.name for p in OBJECTS])
def test_every_pass_keeps_a_loadable_object_loadable(path):
    from bpfpatch.kernel.libbpf import load_object

    try:
        with load_object(path):
            pass
    except BpfPatchError as exc:
        pytest.skip(f"the original does not load here: {str(exc).splitlines()[0][:120]}")
    obj = read_object(path)
    refused = {}
    for name in LOADABLE_PASSES:
        try:
            out = {sec: run_passes(prog, [name], PassContext(seed=1, aux_reg="auto", prog_type=_section_type(sec)))
                   for sec, prog in obj.programs.items()}
        except PatchError as exc:  # a clear refusal (e.g. blind: no register left for the scratch value)
            refused[name] = str(exc)
            continue
        with load_object(build_object(obj, out), name=f"{path.stem}-{name}"):
            pass
    assert set(refused) <= {"blind"}, refused


@pytest.mark.skipif(not OBJECTS, reason="no xdp-tools objects installed")
def test_ctx_refuses_xdp_programs():
    xdp = [p for p in OBJECTS if "xdp" in read_object(p).programs]
    if not xdp:
        pytest.skip("no object with an xdp section")
    prog = read_object(xdp[0]).programs["xdp"]
    with pytest.raises(PatchError, match="__sk_buff"):
        run_passes(prog, ["ctx"], PassContext(prog_type="xdp"))

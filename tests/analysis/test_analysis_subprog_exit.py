"""A static subprogram's exit, as prepare_func_exit has it: r0 goes back as it is, written or not.

The caller may never read it (a subprogram that only tail-calls, or only writes memory); reading it
is refused at the read, as the kernel refuses it there. A stack pointer is never returned.
"""

from __future__ import annotations

import pytest

from bpfpatch import Program
from bpfpatch.analysis.verifier import AnalysisRejected, analyze
from bpfpatch.isa.build import call_subprog, exit_insn, mov64_imm, mov64_reg, add64_imm

CASES = {
    # main: call sub; r0 = 0; exit.  sub: exit, r0 never written
    "unread": ([call_subprog(2), mov64_imm(0, 0), exit_insn(), exit_insn()], None),
    # main: call sub; exit (reads the r0 sub left unwritten)
    "read": ([call_subprog(1), exit_insn(), exit_insn()], (1, "R0 !read_ok")),
    # sub returns a pointer into the caller's frame
    "stack": ([call_subprog(2), mov64_imm(0, 0), exit_insn(), mov64_reg(0, 10), add64_imm(0, -8), exit_insn()],
              (5, "cannot return stack pointer to the caller")),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_as_the_analysis_says(name):
    insns, refused = CASES[name]
    prog = Program.from_insns(insns)
    if refused is None:
        analyze(prog, "socket_filter")
        return
    with pytest.raises(AnalysisRejected) as err:
        analyze(prog, "socket_filter")
    assert err.value.index == refused[0] and refused[1] in str(err.value)


@pytest.mark.kernel
@pytest.mark.parametrize("name", sorted(CASES))
def test_as_the_kernel_says(name):
    from bpfpatch.errors import VerifierError
    from bpfpatch.kernel.loader import load_program

    insns, refused = CASES[name]
    raw = Program.from_insns(insns).to_bytes()
    if refused is None:
        load_program(raw, "socket_filter").close()
        return
    with pytest.raises(VerifierError) as err:
        load_program(raw, "socket_filter", log_level=1)
    assert refused[1] in str(err.value) or refused[1] in (getattr(err.value, "log", "") or "")

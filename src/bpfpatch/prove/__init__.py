"""Symbolic equivalence of two eBPF programs with an SMT solver (z3).

    >>> from bpfpatch.prove import prove_equivalent
    >>> result = prove_equivalent(original, rewritten, "socket_filter")
    >>> result.verdict, str(result)
    (<ProofVerdict.PROVED: 'proved'>, 'proved equivalent for all inputs [packets up to 128 bytes]')

The solver part (`model`, `equiv`, `layout`) does not touch the kernel;
`replay` runs a counterexample on it.
"""

from bpfpatch.prove.equiv import Counterexample, ProofResult, ProofVerdict, changed_region, prove_equivalent
from bpfpatch.prove.model import Unsupported

__all__ = ["Counterexample", "ProofResult", "ProofVerdict", "Unsupported", "changed_region", "prove_equivalent"]

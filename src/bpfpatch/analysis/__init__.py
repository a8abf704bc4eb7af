"""Analyses of programs and patch lists: what the verifier knows, per instruction.

Layer: above `patch` (it reads programs and patch lists), below `passes` (which
are driven by its facts).  `facts` holds the per-instruction aux data the
kernel's verifier records (`InsnAux`), shared by every analysis and pass.
"""

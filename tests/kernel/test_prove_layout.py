"""prove/layout.py: the prover's context tables are the shared ones, and the solver stays below the kernel layer."""

from __future__ import annotations

import subprocess
import sys

from bpfpatch.ctxstructs import SK_BUFF
from bpfpatch.kernel.ctxlayout import LAYOUTS
from bpfpatch.prove import layout as L


def test_the_skb_types_are_the_kernel_layers_test_run_types():
    assert L.SKB_TYPES == {t for t, test_run in LAYOUTS.items() if test_run.fields is SK_BUFF.fields}


def test_the_uapi_fields_are_the_one_tables():
    assert [(f.offset, f.size) for f in L.SK_BUFF_UAPI] == [(SK_BUFF.by_name(f.name).offset, SK_BUFF.by_name(f.name).size)
                                                           for f in L.SK_BUFF_UAPI]
    assert {f.name: f.bits for f in L.SK_BUFF_UAPI}["queue_mapping"] == 16 and L.field_at(L.SK_BUFF_UAPI, 50, 2).name == "cb[0]"


def test_the_solver_imports_nothing_from_the_kernel_layer():
    code = ("import sys, bpfpatch.prove.model, bpfpatch.prove.equiv, bpfpatch.prove.lowered; "
            "print(sorted(m for m in sys.modules if m.startswith('bpfpatch.kernel')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

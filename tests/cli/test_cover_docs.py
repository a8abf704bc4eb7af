"""The API reference builds from the docstrings (pdoc), and the kit's names are in it."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_api_reference_builds_with_the_kit(tmp_path):
    pytest.importorskip("pdoc")
    mods = ["bpfpatch.isa.build", "bpfpatch.analysis.cfg", "bpfpatch.elf.addmap", "bpfpatch.cover.instrument"]
    res = subprocess.run([sys.executable, "-m", "pdoc", "--docformat", "markdown", "-o", str(tmp_path), *mods],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    build = (tmp_path / "bpfpatch" / "isa" / "build.html").read_text()
    assert "add64_imm" in build and "dst += imm32" in build and "call_helper" in build
    cfg = (tmp_path / "bpfpatch" / "analysis" / "cfg.html").read_text()
    assert "free_registers" in cfg and "dominators" in cfg

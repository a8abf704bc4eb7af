"""The atheris target (fuzz/fuzz_decoder.py) runs with a fixed seed: typed errors only, bounded memory.

A bounded run (marked slow: CI runs it): ``BPFPATCH_FUZZ_SECONDS`` (default 180) and at most
``BPFPATCH_FUZZ_RUNS`` inputs (default 200,000), libFuzzer's RSS limit 2 GiB.  The corpus is a copy
(libFuzzer adds to the corpus it is given); a crash leaves its input and traceback in the report.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

atheris = pytest.importorskip("atheris", reason="atheris is not installed (pip install atheris)")

ROOT = Path(__file__).resolve().parents[2]
TARGET = ROOT / "fuzz" / "fuzz_decoder.py"
SEED = 20261201


@pytest.mark.slow
def test_fuzz_target_with_a_fixed_seed(tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "fuzz" / "corpus", corpus)
    for found in sorted((ROOT / "tests" / "data" / "fuzz").iterdir()):  # earlier findings seed the run too
        shutil.copy(found, corpus / found.name)
    seconds = int(os.environ.get("BPFPATCH_FUZZ_SECONDS", "180"))
    runs = int(os.environ.get("BPFPATCH_FUZZ_RUNS", "200000"))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    r = subprocess.run(
        [sys.executable, str(TARGET), f"-seed={SEED}", f"-runs={runs}", f"-max_total_time={seconds}",
         "-rss_limit_mb=2048", "-timeout=30", f"-artifact_prefix={tmp_path}/", str(corpus)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=seconds + 120,
    )
    crashes = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "oom-", "timeout-", "leak-")))
    assert r.returncode == 0 and not crashes, f"{crashes}\n{r.stderr[-4000:]}"
    assert "Done" in r.stderr  # libFuzzer's end-of-run line: the target really ran

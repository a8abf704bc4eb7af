"""Shared fixtures: the kernel oracle (skipped with the reason where bpf() is refused), clang."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import os

import pytest
from hypothesis import settings

# CI runs the same examples every time (a red build must be reproducible); local runs explore.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

PROGS = Path(__file__).parent / "progs"


def _bpf_status() -> tuple[bool, str]:
    try:
        from bpfpatch.kernel import bpf_available
    except ImportError as exc:  # pragma: no cover
        return False, f"bpfpatch.kernel unavailable: {exc}"
    return bpf_available()


_BPF_OK, _BPF_WHY = _bpf_status()


# Slow tests (corpus-wide proofs, whole-corpus loads) run in CI and when asked for; a developer's
# quick run leaves them out, saying so.
_RUN_SLOW = bool(os.environ.get("CI") or os.environ.get("BPFPATCH_SLOW"))


# A quick run also explores a fifth of each property test's examples (at least 10); CI and
# BPFPATCH_SLOW=1 run them all.
_QUICK_EXAMPLES = 5


def _quicken(item) -> None:
    test = getattr(item, "obj", None)
    current = getattr(test, "_hypothesis_internal_use_settings", None)
    if current is not None and current.max_examples > 10 and not getattr(test, "_bpfpatch_quick", False):
        test._bpfpatch_quick = True  # parametrized tests share the function: quicken it once
        test._hypothesis_internal_use_settings = settings(
            current, max_examples=max(10, current.max_examples // _QUICK_EXAMPLES))


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason=f"bpf() refused on this machine: {_BPF_WHY}")
    skip_slow = pytest.mark.skip(reason="slow: runs in CI (CI=true) or with BPFPATCH_SLOW=1")
    for item in items:
        if not _RUN_SLOW:
            _quicken(item)
        if "kernel" in item.keywords and not _BPF_OK:
            item.add_marker(skip)
        if "slow" in item.keywords and not _RUN_SLOW:
            item.add_marker(skip_slow)


def multiarch_include() -> list[str]:
    """Debian keeps asm/types.h under the multiarch directory, which -target bpf does not search."""
    out = subprocess.run(["gcc", "-print-multiarch"], capture_output=True, text=True).stdout.strip() if shutil.which("gcc") else ""
    return [f"-I/usr/include/{out or 'x86_64-linux-gnu'}"]


def compile_bpf(src: Path, out_dir: Path, *, cpu: str = "v3", clang: str = "clang", extra: tuple[str, ...] = ()) -> Path:
    """Compile BPF C to an object, skipping the test (with the reason) where that clang is missing."""
    if shutil.which(clang) is None:
        pytest.skip(f"{clang} is not installed")
    out = out_dir / f"{src.stem}-{cpu}-{Path(clang).name}.o"
    cmd = [clang, "-O2", "-g", "-target", "bpf", f"-mcpu={cpu}", *multiarch_include(), *extra, "-c", str(src), "-o", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise AssertionError(f"clang failed: {' '.join(cmd)}\n{res.stderr}")
    return out


@pytest.fixture(scope="session")
def objdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bpfobj")

"""Counters -> per-line coverage -> an lcov tracefile and genhtml's HTML report.

Each instruction runs as often as its block (blocks are cut after tail
calls, which do not return when they succeed), and belongs to the source
line DWARF's line table says (BTF line info when the object has no DWARF).
A line is hit iff some instruction of it ran; a line no run reached shows
0.  Its count is, per copy of the line, the largest count of its
instructions there (how often its most-executed part ran), summed over the
copies: the inlined copies of a function DWARF names
(``DW_TAG_inlined_subroutine``) and a function's own code, one per section,
as gcov and llvm-cov count an inlined function (the copies of a loop that
clang unrolled are one copy: their largest count).  Code the compiler made up (line 0), such as
a block's first instructions without a debug location, counts for no line.
Lines whose code is all dead to the verifier (blocks it never reaches,
which the kernel removes) are not reachable: they are left out of the
tracefile (as lines without code are) and listed in
`FileCoverage.unreachable`.  Functions count their entry block; with edge
counters, each conditional jump gives two branches (taken, fall-through).

Sources: a file that exists at the path BTF names is used as is; otherwise it
is rebuilt from the source text BTF line info carries (one line per record,
blank lines elsewhere) under ``DIR/src/``, so the report shows real code even
for objects built elsewhere.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bpfpatch.cover.instrument import CoverError, CoverMap

BLOCK_KINDS = ("block", "after_tail_call")  # counters of code (the rest count edges)


@dataclass
class FileCoverage:
    """One source file's line, function and branch counts."""

    path: str  # as BTF names it
    lines: dict[int, int] = field(default_factory=dict)
    functions: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (line, count)
    branches: list[tuple[int, int, int, int]] = field(default_factory=list)  # (line, block, branch, count)
    unreachable: set[int] = field(default_factory=set)  # lines whose code the verifier never reaches

    @property
    def lines_hit(self) -> int:
        """Lines executed at least once."""
        return sum(1 for c in self.lines.values() if c)


def line_coverage(cmap: CoverMap, counters: list[int]) -> dict[str, FileCoverage]:
    """Per file: every line with line info, its count; functions; branches."""
    if len(counters) < len(cmap.counters):
        raise CoverError(f"{len(counters)} counters for {len(cmap.counters)} counted places")
    files: dict[str, FileCoverage] = {}
    for f, lines in cmap.sources.items():
        fc = files.setdefault(f, FileCoverage(f))
        for ln in lines:
            fc.lines.setdefault(ln, 0)
    entry: dict[str, int] = {}
    counted: set[tuple[str, int]] = set()
    per_copy: dict[tuple[str, int, tuple[str, int]], int] = {}  # (file, line, (section, copy)) -> largest count
    for c in cmap.counters:
        if c.kind not in BLOCK_KINDS:
            continue
        n = counters[c.index]
        for f, ln, copy in c.copies or [(f, ln, -1) for f, ln in c.lines]:
            key = (f, ln, (c.section if copy < 0 else "", copy))
            per_copy[key] = max(per_copy.get(key, 0), n)
            counted.add((f, ln))
        if c.kind == "block" and c.function and (c.function not in entry
                                                 or c.slot < cmap.counters[entry[c.function]].slot):
            entry[c.function] = c.index
    for (f, ln, _copy), n in per_copy.items():  # copies add up: each is one execution of the line
        fc = files.setdefault(f, FileCoverage(f))
        fc.lines[ln] = fc.lines.get(ln, 0) + n
    for dead in cmap.unreachable:
        for f, ln in dead["lines"]:
            if (f, ln) not in counted and f in files:
                files[f].lines.pop(ln, None)
                files[f].unreachable.add(ln)
    for name, (f, ln) in cmap.functions.items():
        if name in entry:
            files.setdefault(f, FileCoverage(f)).functions[name] = (ln, counters[entry[name]])
    for br in cmap.branches:
        fall = counters[br["fallthrough"]]
        taken = max(0, counters[br["counter"]] - fall)
        fc = files.setdefault(br["file"], FileCoverage(br["file"]))
        key = br["counter"]  # unique across sections: the block's counter
        fc.branches += [(br["line"], key, 0, taken), (br["line"], key, 1, fall)]
    return files


def _source_path(out_dir: Path, name: str, text: dict[int, str], source_dirs: tuple[Path, ...] = ()) -> Path:
    real = Path(name)
    if real.is_absolute() and real.is_file():
        return real
    for d in source_dirs:  # a relative BTF path, resolved under a source tree the user names
        cand = (d / name).resolve()
        if not real.is_absolute() and cand.is_file():
            return cand
    rel = Path(*[p for p in Path(name).parts if p not in ("/", "..", ".")]) if name else Path("unknown.c")
    dest = (out_dir / "src" / rel).resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    last = max(text) if text else 0
    # Objects built without source text in BTF (line_off -> ""): say so on the lines that have code.
    rows = [text[i] if text.get(i) else (f"/* {name}:{i}: no source text in the object's BTF */" if i in text else "")
            for i in range(1, last + 1)]
    dest.write_text("\n".join(rows) + "\n")
    return dest


def write_lcov(files: dict[str, FileCoverage], cmap: CoverMap, out_dir: Path, test_name: str = "bpfpatch_cover",
               source_dirs: tuple[Path, ...] = ()) -> Path:
    """``out_dir/coverage.info`` in lcov's tracefile format; returns its path.

    `source_dirs`: trees to resolve the relative source paths BTF names against.
    """
    out = [f"TN:{test_name}"]
    for name in sorted(files):
        fc = files[name]
        src = _source_path(out_dir, name, cmap.sources.get(name, {}), source_dirs)
        out.append(f"SF:{src}")
        for fn, (ln, _n) in sorted(fc.functions.items(), key=lambda x: x[1][0]):
            out.append(f"FN:{ln},{fn}")
        for fn, (_ln, n) in sorted(fc.functions.items(), key=lambda x: x[1][0]):
            out.append(f"FNDA:{n},{fn}")
        out.append(f"FNF:{len(fc.functions)}")
        out.append(f"FNH:{sum(1 for _l, n in fc.functions.values() if n)}")
        for ln, blk, br, n in fc.branches:
            out.append(f"BRDA:{ln},{blk},{br},{n}")
        if fc.branches:
            out.append(f"BRF:{len(fc.branches)}")
            out.append(f"BRH:{sum(1 for b in fc.branches if b[3])}")
        for ln in sorted(fc.lines):
            out.append(f"DA:{ln},{fc.lines[ln]}")
        out.append(f"LF:{len(fc.lines)}")
        out.append(f"LH:{fc.lines_hit}")
        out.append("end_of_record")
    path = out_dir / "coverage.info"
    path.write_text("\n".join(out) + "\n")
    return path


def genhtml(tracefile: Path, out_dir: Path, *, branches: bool = False, title: str = "bpfpatch cover") -> Path:
    """Run Debian's lcov ``genhtml`` on the tracefile; returns ``out_dir/index.html``."""
    exe = shutil.which("genhtml")
    if exe is None:
        raise CoverError("genhtml is not installed (Debian package lcov)")
    cmd = [exe, "--quiet", "--output-directory", str(out_dir), "--title", title, "--prefix", str((out_dir / "src").resolve()), str(tracefile)]
    if branches:
        cmd.insert(1, "--branch-coverage")
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise CoverError(f"genhtml failed: {(res.stderr or res.stdout).strip()[-400:]}")
    return out_dir / "index.html"


__all__ = ["BLOCK_KINDS", "FileCoverage", "genhtml", "line_coverage", "write_lcov"]

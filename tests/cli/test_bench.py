"""The benchmark code: series agree with each other and the table is built from what ran."""

from __future__ import annotations

import json
import time

from bpfpatch import bench as B
from bpfpatch.cli import main


def test_every_series_writes_the_same_program():
    raw = B.division_program(500)
    expected = B.run_bulk(raw)
    assert B.run_node(raw) == expected
    assert all(B.run_readme(raw, form) == expected for form in B.README_FORMS.values())
    assert B.run_pipeline(raw, ("div-guard",)) == expected
    assert B.run_reference(raw) == expected
    assert len(expected) == 8 * (4 * 500 + 3)
    inserted = B.run_bulk_insert(raw)  # the insert forms' guard: before the division, same length
    assert all(loop(raw) == inserted for loop in B.INSERT_LOOPS.values())
    assert len(inserted) == len(expected) and inserted != expected


def test_run_benchmarks_table_and_case_peaks():
    seen: list[str] = []
    result = B.run_benchmarks([800, 1600], series=("floor", "bulk", "py-floor", "node", "pipeline"), rounds=2,
                              progress=seen.append)
    # Interleaved rounds: every size once before any size again.
    node_runs = [m for m in seen if m.startswith("node n=") and "round" in m]
    assert node_runs == ["node n=800 (round 1/2)", "node n=1600 (round 1/2)", "node n=800 (round 2/2)",
                         "node n=1600 (round 2/2)"]
    assert {m.series for m in result.measurements} == {"floor", "bulk", "py-floor", "node", "pipeline"}
    assert all(m.seconds and m.seconds > 0 for m in result.measurements)
    assert not [m.note for m in result.measurements if m.note]  # div-guard matched bulk
    assert set(result.case_peak_mib) == {"bulk", "node", "pipeline"}
    table = B.markdown_table(result)
    lines = table.splitlines()
    assert lines[0] == "| series | 800 | 1,600 |"
    assert any(line.startswith("| node | ") and "x)" in line for line in lines)  # ratio to py-floor


def test_bench_command_writes_json(tmp_path):
    out = tmp_path / "r.json"
    assert main(["bench", "--sizes", "500", "--series", "floor,bulk", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert {m["series"] for m in data["measurements"]} == {"floor", "bulk"}


def test_headline_growth_prefers_the_targets_pair():
    m = B.Measurement
    result = B.BenchResult("m", [m("node", 1_000_000, 1.2), m("node", 100_000, 0.1), m("node", 95_000, 0.09),
                                 m("bulk", 1_000_000, 0.9), m("bulk", 95_000, 0.1),
                                 m("pipeline", 100_000, 0.5), m("pipeline", 15_000, 0.1)])
    assert B.headline_growth(result, "node") == ("1M/100k", 1.2 / 0.1)
    assert B.headline_growth(result, "bulk") == ("1M/95k", 0.9 / 0.1)
    assert B.headline_growth(result, "pipeline") == ("100k/15k", 0.5 / 0.1)
    assert B.headline_growth(result, "floor") is None


def test_kernel_factor_and_readme_ratios():
    m = B.Measurement
    made = B.BenchResult("m", [m("readme", 20_000, 0.04), m("kernel", 20_000, 6.0), m("node", 20_000, 0.02)])
    assert B.kernel_factor(made) == 6.0 / 0.04
    assert B.kernel_factor(made, "bulk") is None
    assert "(2.00x)" in B.markdown_table(made)  # the README loop's ratio to the shared tuple, with decimals


def test_bench_prints_the_adversarial_table_after_the_seed_table(monkeypatch, capsys):
    from bpfpatch import adversarial
    from bpfpatch.cli import bench_cmd

    # The table's shape, at a size a test can afford: one generator, every pass and analysis, N = 40.
    first = next(iter(adversarial.GENERATORS))
    monkeypatch.setattr(adversarial, "GENERATORS", {first: adversarial.GENERATORS[first]})
    monkeypatch.setattr(bench_cmd, "ADVERSARIAL_N", 40)
    assert main(["bench", "--sizes", "300", "--series", "floor,bulk,adversarial", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "adversarial programs: every pass and analysis at N = 40 and 4N" in out
    header = adversarial.format_growth_table([]).splitlines()[0]  # whatever columns the table has
    assert header in out
    rows = [line for line in out.splitlines() if line.startswith(f"| {first} | ") and " | 40 | " in line]
    assert rows and all(line.count("|") == header.count("|") for line in rows)
    assert out.index("floor") < out.index("adversarial programs")


def _code(text: str) -> list[str]:
    """Lines of Python without comments, indentation or blanks (line breaks inside a call joined)."""
    out: list[str] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if out and out[-1].count("[") > out[-1].count("]"):
            out[-1] += " " + line
        else:
            out.append(line)
    return out


def test_readme_build_is_the_readme_loop_verbatim():
    import inspect
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = re.search(r"## Using it\n\n```python\n(.*?)```", readme, re.S)
    assert block, "README lost its Using-it example"
    readme_lines = _code(block.group(1))
    loop = readme_lines[readme_lines.index("for node in pl:"):]
    loop = loop[: next(i for i, x in enumerate(loop) if x.startswith("new = "))]
    bench_lines = _code(inspect.getsource(B.readme_build))
    start = bench_lines.index("for node in pl:")
    assert bench_lines[start: start + len(loop)] == loop


def test_own_cost_ratio_takes_the_users_instructions_out():
    m = B.Measurement
    made = B.BenchResult("m", [m("readme", 100_000, 0.17), m("readme-floor", 100_000, 0.16), m("node", 100_000, 0.07)])
    assert abs(B.own_cost_ratio(made, "readme", 100_000) - (0.17 - 0.16 + 0.07) / 0.07) < 1e-12
    assert B.own_cost_ratio(made, "readme-tuple", 100_000) is None  # not run
    assert B.own_cost_ratio(made, "readme", 20_000) is None


def test_bench_command_prints_the_own_cost_line(capsys):
    assert main(["bench", "--sizes", "2000", "--series", "node,readme,readme-floor", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "readme at N=2,000: replace's own cost per site" in out


def test_bench_command_prints_the_insert_forms_beside_replace(capsys):
    assert main(["bench", "--sizes", "2000", "--series", "node,readme,prepend-list,append-list", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    for s in B.INSERT_LOOPS:
        assert f"{s} at N=2,000: " in out and "x readme (replace)" in out
        assert f"growth {s}" not in out  # one size: no growth figure


def test_the_adversarial_tables_kernel_floor_reads_the_running_kernels_sizes():
    from bpfpatch.adversarial import KERNEL_STRUCTS, GrowthRow, format_growth_table
    from bpfpatch.btf.vmlinux import kernel_btf_available
    from bpfpatch.cli.bench_cmd import kernel_verifier_sizes

    if not kernel_btf_available():
        import pytest

        pytest.skip("no /sys/kernel/btf/vmlinux: the kernel floor column stays empty")
    sizes = kernel_verifier_sizes()
    assert set(sizes) == set(KERNEL_STRUCTS)
    # a frame holds R0-R10 (bpf_reg_state, about 112 bytes each in 6.x) and more than a stack element
    assert sizes["bpf_func_state"] > 11 * 96 and sizes["bpf_func_state"] > sizes["bpf_verifier_stack_elem"] > 0
    row = GrowthRow("g", "verifier", 10, 1.0, 2.0, 500.0, 400.0, 300.0, 1_234, 777.0)
    line = format_growth_table([row]).splitlines()[-1]
    assert "| 1,234 | 777 |" in line


def test_the_growth_pair_takes_the_median_of_each_rounds_ratio_and_gives_short_runs_more_rounds():
    # a slow spell reaches both runs of a round: the median of the rounds' ratios, not the ratio of two bests
    # (each best from another spell: a linear 3.7x read 5.0-5.4x in the table)
    import itertools

    from bpfpatch.adversarial import MAX_ROUNDS, GrowthRow, _cpu_pair

    calls = itertools.count()
    spells = [1, 1.5, 2, 2, 1.5, 1.5]  # the machine's slowness run after run (small then big in each round)

    def run(work: int):
        k = next(calls)
        deadline = time.process_time() + 0.004 * work * spells[k % len(spells)]
        while time.process_time() < deadline:
            pass

    t_n, t_4n, ratio = _cpu_pair(lambda: run(1), lambda: run(4), 3, min_seconds=0.0)
    assert abs(ratio - 4.0) < 0.5, ratio  # rounds of 6x, 4x and 4x
    assert t_4n / t_n > 5.5, (t_n, t_4n)  # the two bests, 4 ms of the first round and 24 of the third: 6x
    assert next(calls) == 6  # three rounds of two runs: fast runs get no more without min_seconds
    calls = itertools.count()
    _cpu_pair(lambda: run(1), lambda: run(4), 3, min_seconds=10.0)
    assert next(calls) == 2 * MAX_ROUNDS
    assert GrowthRow("g", "p", 10, 1.0, 5.5, 1.0, ratio=3.9).growth == 3.9
    assert GrowthRow("g", "p", 10, 1.0, 5.5, 1.0).growth == 5.5

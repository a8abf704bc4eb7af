"""The benchmark's whole-process CLI series run the real command and land in the table."""

from __future__ import annotations

from bpfpatch import bench as B


def test_cli_series_time_whole_processes_and_appear_in_the_table():
    seen: list[str] = []
    result = B.run_benchmarks([300, 600], series=("cli-patch", "cli-disasm"), rounds=2, progress=seen.append)
    got = {(m.series, m.n): m.seconds for m in result.measurements}
    # Each command's wall time and its CPU time (the child's user + system time).
    names = ("cli-patch", "cli-patch-cpu", "cli-disasm", "cli-disasm-cpu")
    assert set(got) == {(s, n) for s in names for n in (300, 600)}
    assert all(t and 0 < t < 60 for t in got.values())
    assert "cli-patch n=300 (round 1/2)" in seen and "cli-disasm n=600 (round 2/2)" in seen
    sizes, rows = B.table_rows(result)
    assert [r[0] for r in rows[:4]] == list(names)


def test_cli_seconds_runs_the_command_it_names(tmp_path):
    src, out = tmp_path / "in.bin", tmp_path / "out.bin"
    src.write_bytes(B.division_program(50))
    wall, cpu = B.cli_seconds("cli-patch", str(src), str(out))
    assert wall > 0 and cpu > 0
    assert out.read_bytes() == B.run_bulk(src.read_bytes())

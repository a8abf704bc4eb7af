"""The CLI's fast argument path calls each command exactly as typer would, or leaves it to typer."""

from __future__ import annotations

import functools
import itertools

import pytest

import bpfpatch.cli as cli
from bpfpatch.cli import fastargs


def _all_commands():
    cli._load_commands([])
    from bpfpatch.cli.app import app

    return app


def typer_kwargs(app, name: str, args: list[str]) -> dict | None:
    """What typer calls command `name` with (None when typer refuses the command line)."""
    entry = next(c for c in app.registered_commands if c.name == name)
    original = entry.callback
    seen: dict = {}

    @functools.wraps(original)
    def record(**kwargs):
        seen.update(kwargs)

    entry.callback = record
    try:
        app(args=[name] + args, standalone_mode=False)
    except Exception as exc:  # noqa: BLE001 - click's usage errors
        if not hasattr(exc, "exit_code"):
            raise
        return None
    finally:
        entry.callback = original
    return seen


def lines_for(fn) -> list[list[str]]:
    """Well-formed and ill-formed command lines from the command's own declarations."""
    positionals, options = fastargs._params(fn)
    base = [f"file{k}.o" for k in range(len(positionals))]
    required = []
    for p in options:
        if p.default is ...:
            required += [p.flags[0], "div-guard" if p.type is str else "x.bin"]
    out = [base + required, required + base, base, base + required + ["--bogus"], base + required + ["--help"]]
    sample = {str: "v", int: "3", float: "1.5"}
    for p in options:
        if p.default is ...:
            continue
        if p.type is bool:
            out.append(base + required + [p.flags[0]])
            out += [base + required + [n] for n in p.negative]
        elif p.type is fastargs._MANY:  # a list option: once, twice, and with '='
            out.append(base + required + [p.flags[0], "dce"])
            out.append(base + required + [p.flags[0], "dce", p.flags[0], "blind,zext"])
            out.append(base + required + [f"{p.flags[0]}=dce", p.flags[0], "blind"])
        elif p.type in sample:
            out.append(base + required + [p.flags[-1], sample[p.type]])
            out.append(base + required + [f"{p.flags[-1]}={sample[p.type]}"])
            if p.type is int:
                out.append(base + required + [p.flags[-1], "zero"])
                out.append(base + required + [p.flags[-1], "0"])  # below a min of 1, where there is one
        else:
            out.append(base + required + [p.flags[0], "some/path"])
    return out


def test_fast_path_agrees_with_typer_on_every_command():
    app = _all_commands()
    checked = 0
    for entry in app.registered_commands:
        fn = entry.callback
        if fastargs._params(fn) is None:
            continue  # a command the fast path leaves to typer entirely
        for args in lines_for(fn):
            fast = fastargs.parse(fn, args)
            if fast is None:
                continue  # handed to typer: nothing to compare
            assert fast == typer_kwargs(app, entry.name, args), (entry.name, args)
            checked += 1
    assert checked >= 20


@pytest.mark.parametrize("args", [["--help"], [], ["patch", "--help"], ["nosuch", "x"], ["patch", "x.s"]])
def test_everything_else_goes_to_typer(args):
    app = _all_commands()
    handled, _ = fastargs.run(app, args)  # none of these is complete: nothing runs
    assert not handled


def test_repeated_and_unknown_options_go_to_typer():
    app = _all_commands()
    fn = fastargs.command(app, "patch")
    assert fastargs.parse(fn, ["a.s", "-o", "x", "--pass", "dce"]) is not None
    for args in (["a.s", "-o", "x", "-o", "y", "--pass", "dce"], ["a.s", "-o", "x", "--pass", "dce", "--nope"],
                 ["a.s", "b.s", "-o", "x", "--pass", "dce"], ["a.s", "-o"]):
        assert fastargs.parse(fn, args) is None, args


def test_a_repeated_list_option_accumulates_in_order_as_in_typer():
    app = _all_commands()
    fn = fastargs.command(app, "patch")
    args = ["in.o", "-o", "out.o", "--pass", "dce", "--pass", "div-guard,blind"]
    fast = fastargs.parse(fn, args)
    assert fast["passes"] == ["dce", "div-guard,blind"]
    assert fast == typer_kwargs(app, "patch", args)
    assert fastargs.parse(fn, ["in.o", "-o", "out.o"])["passes"] == []


def test_combinations_of_patch_options_match_typer():
    app = _all_commands()
    fn = fastargs.command(app, "patch")
    extras = [["--seed", "7"], ["--aux-reg", "auto"], ["--relax-long-jumps"], ["--format", "asm"], ["--section=.text"]]
    for r in range(len(extras) + 1):
        for combo in itertools.combinations(extras, r):
            args = ["in.o", "-o", "out.bin", "--pass", "blind,dce"] + [x for part in combo for x in part]
            assert fastargs.parse(fn, args) == typer_kwargs(app, "patch", args), args

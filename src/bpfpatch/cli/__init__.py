"""Command line: `bpfpatch disasm | asm | patch | check | bench`.

Each command lives in its own module and registers itself on `app`; `main`
maps bpfpatch's typed errors to one clear line and an exit code.
"""

from __future__ import annotations

import importlib
import os
import sys

from bpfpatch.errors import BpfPatchError, KernelError

USAGE_EXIT = 64

# Command modules (each registers on `app` when imported), with the first paragraph of each
# command's docstring: `bpfpatch --help` prints these without importing any command
# (tests/cli/test_cli.py checks them against the registered commands).
_COMMANDS = {
    "disasm": "Disassemble every program of FILE (or one section).",
    "asm": "Assemble FILE; the output is written only if the whole file assembles.",
    "patch": "Rewrite one program; the output is written atomically, only on success.",
    "check": "Run ORIGINAL and REWRITTEN (ELF objects, loaded through libbpf with their maps and global data; or raw "
             "instruction files) on the same inputs and compare, after every input, the return value, the packet out, "
             "the context out and every map the program references.",
    "bench": "Time every series on the seed's workload and print the table.",
    "demo": "Rewrite the shipped sample with the kernel's passes and check the result.",
    "cover": "Instrument every basic block with a counter, run in the kernel, write lcov + HTML coverage.",
    "analyze": "Print the per-instruction verifier state of one program; exit 1 at the first violation.",
}


def top_help() -> str:
    """`bpfpatch --help`: the commands and their one-line help (no command module imported)."""
    import textwrap

    width = max(map(len, _COMMANDS))
    lines = ["Usage: bpfpatch [OPTIONS] COMMAND [ARGS]...", "", "  Rewrite eBPF bytecode in linear time.", "",
             "Options:", "  --help".ljust(width + 4) + "Show this message and exit.", "", "Commands:"]
    for name, text in _COMMANDS.items():
        wrapped = textwrap.wrap(text, 78 - width - 4) or [""]
        lines.append(f"  {name.ljust(width)}  {wrapped[0]}")
        lines += [" " * (width + 4) + more for more in wrapped[1:]]
    lines += ["", "`bpfpatch COMMAND --help` shows a command's arguments and options."]
    return "\n".join(lines)


def _load_commands(argv: list[str]) -> None:
    """Import the command modules: only the one named when a command is named (start-up time)."""
    wanted = next((a for a in argv if not a.startswith("-")), None)
    names = (wanted,) if wanted in _COMMANDS else _COMMANDS
    for name in names:
        try:
            importlib.import_module(f"bpfpatch.cli.{name}_cmd")
        except ModuleNotFoundError as exc:  # a command not written yet
            if exc.name != f"bpfpatch.cli.{name}_cmd":
                raise


def _error(message: str) -> int:
    print(f"bpfpatch: error: {message}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `bpfpatch` console script."""
    # bpfpatch does no linear algebra: the OpenBLAS worker threads NumPy's import starts cost
    # about 35 ms of CPU on this 2-core VM for nothing (a caller's own setting is kept).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from bpfpatch.runtime import keep_freed_memory

    keep_freed_memory()  # one process, one job: keep freed memory for the next temporaries
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--help"]:  # the top-level help: no command module, typer or rich to import
        print(top_help())
        return 0
    _load_commands(args)
    from bpfpatch.cli.app import app

    from bpfpatch.cli.fastargs import run as run_fast

    try:
        handled, rc = run_fast(app, args)  # well-formed command lines skip typer's (pydantic) set-up
        if not handled:
            rc = app(args=args, standalone_mode=False)
    except BpfPatchError as exc:
        _error(str(exc))
        if isinstance(exc, KernelError) and exc.log:
            print(exc.log_tail(), file=sys.stderr)
        return 1
    except BrokenPipeError:  # `bpfpatch disasm x | head`: the reader is gone, nothing more to say
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass
        return 1
    except OSError as exc:  # a file error a command did not name itself: still one line
        where = exc.filename if exc.filename is not None else "file"
        return _error(f"{where}: {exc.strerror or exc}")
    except MemoryError:
        return _error("out of memory")
    except SystemExit as exc:  # typer/click exits (usage errors, explicit exits)
        return int(exc.code or 0) if isinstance(exc.code, int) else 1
    except Exception as exc:
        # Usage errors come from the click typer bundles: duck-type them.
        if hasattr(exc, "exit_code") and hasattr(exc, "show"):
            exc.show()
            # Usage errors exit 64 (EX_USAGE), not click's 2: 2 is `check`'s "undecided".
            return USAGE_EXIT if exc.exit_code == 2 else int(exc.exit_code)
        if type(exc).__name__ == "Abort":
            return 1
        if type(exc).__name__ == "Exit":
            return int(getattr(exc, "exit_code", 0))
        raise
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(main())

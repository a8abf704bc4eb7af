"""Command line: `bpfpatch disasm | asm | patch | check | bench`.

Each command lives in its own module and registers itself on `app`; `main`
maps bpfpatch's typed errors to one clear line and an exit code.
"""

from __future__ import annotations

import importlib
import sys

from bpfpatch.cli.app import app
from bpfpatch.errors import BpfPatchError, KernelError

# Command modules; each registers on `app` when imported.
_COMMANDS = ("disasm", "asm", "patch", "check", "bench", "demo")


def _load_commands() -> None:
    for name in _COMMANDS:
        try:
            importlib.import_module(f"bpfpatch.cli.{name}_cmd")
        except ModuleNotFoundError as exc:  # a command not written yet
            if exc.name != f"bpfpatch.cli.{name}_cmd":
                raise


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `bpfpatch` console script."""
    from bpfpatch.runtime import keep_freed_memory

    keep_freed_memory()  # one process, one job: keep freed memory for the next temporaries
    _load_commands()
    try:
        rc = app(args=argv, standalone_mode=False)
    except BpfPatchError as exc:
        print(f"bpfpatch: error: {exc}", file=sys.stderr)
        if isinstance(exc, KernelError) and exc.log:
            print(exc.log_tail(), file=sys.stderr)
        return 1
    except SystemExit as exc:  # typer/click exits (usage errors, explicit exits)
        return int(exc.code or 0) if isinstance(exc.code, int) else 1
    except Exception as exc:
        # Usage errors come from the click typer bundles: duck-type them.
        if hasattr(exc, "exit_code") and hasattr(exc, "show"):
            exc.show()
            return int(exc.exit_code)
        if type(exc).__name__ == "Abort":
            return 1
        if type(exc).__name__ == "Exit":
            return int(getattr(exc, "exit_code", 0))
        raise
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(main())

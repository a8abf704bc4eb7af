"""A fast path past typer's argument machinery for well-formed command lines.

typer builds a pydantic ``TypeAdapter`` for every parameter of the command it
runs (typer >= 0.29 imports pydantic to do so): about 0.2 s of CPU before the
command starts, most of the 0.5 s budget of ``bpfpatch patch`` on a million
divisions.  The commands are plain functions whose defaults are typer's
``Argument``/``Option`` declarations, so a command line that uses only what
they declare (positionals, ``--opt value``, ``--opt=value``, ``-o value``,
boolean flags, ``str``/``int``/``float``/``bool``/``Path`` values, their
``Optional`` forms, and ``List[str]`` options given any number of times) is parsed here from the same declarations and the function
is called directly.  Anything else -- ``--help``, a missing or unknown option,
a value that does not convert or is below its ``min`` -- returns None and typer
handles the command line as before, with its own messages.
"""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import Any, Callable

_SIMPLE = (str, int, float, bool, Path)
_MANY = "many"  # the type of a List[str] option: every occurrence is kept, in order


def _base(annotation: Any) -> Any:
    """`Optional[X]` -> X; other annotations as they are."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Union and len(args) == 2 and type(None) in args:
        return next(a for a in args if a is not type(None))
    return annotation


class _Param:
    __slots__ = ("name", "type", "default", "flags", "negative", "minimum", "maximum")

    def __init__(self, name: str, typ: Any, default: Any, flags: tuple[str, ...], negative: tuple[str, ...],
                 minimum: Any, maximum: Any) -> None:
        self.name, self.type, self.default = name, typ, default
        self.flags, self.negative, self.minimum, self.maximum = flags, negative, minimum, maximum


def _params(fn: Callable) -> tuple[list[_Param], list[_Param]] | None:
    """(positionals, options) of a typer command function, or None if it uses anything else."""
    from typer.models import ArgumentInfo, OptionInfo

    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - an annotation we cannot resolve: typer's business
        return None
    positionals: list[_Param] = []
    options: list[_Param] = []
    for name, p in inspect.signature(fn).parameters.items():
        typ = _base(hints.get(name, str))
        if typing.get_origin(typ) is list and typing.get_args(typ) == (str,):
            typ = _MANY
        elif typ not in _SIMPLE:
            return None
        info = p.default
        if isinstance(info, ArgumentInfo):
            if info.callback is not None or typ is _MANY:
                return None
            positionals.append(_Param(name, typ, info.default, (), (), None, None))
            continue
        if isinstance(info, OptionInfo):
            if info.callback is not None or getattr(info, "count", False) or getattr(info, "is_eager", False):
                return None
            decls, default = tuple(info.param_decls or ()), info.default
            minimum, maximum = getattr(info, "min", None), getattr(info, "max", None)
        elif p.default is inspect.Parameter.empty:
            return None
        else:
            decls, default, minimum, maximum = (), p.default, None, None
        flags: list[str] = []
        negative: list[str] = []
        for d in decls:
            pos, _, neg = d.partition("/")
            flags += [x.strip() for x in pos.split(",") if x.strip()]
            if neg:
                negative.append(neg.strip())
        if not flags:
            flags = [f"--{name.replace('_', '-')}"]
            if typ is bool:
                negative.append(f"--no-{name.replace('_', '-')}")
        options.append(_Param(name, typ, default, tuple(flags), tuple(negative), minimum, maximum))
    return positionals, options


def _convert(param: _Param, text: str) -> Any:
    if param.type is Path:
        return Path(text)
    if param.type is str or param.type is _MANY:
        return text
    value = param.type(text)  # int / float; ValueError goes back to typer
    if (param.minimum is not None and value < param.minimum) or (param.maximum is not None and value > param.maximum):
        raise ValueError(text)
    return value


def parse(fn: Callable, args: list[str]) -> dict[str, Any] | None:
    """The keyword arguments typer would call `fn` with for `args`, or None to let typer decide."""
    spec = _params(fn)
    if spec is None:
        return None
    positionals, options = spec
    by_flag = {f: p for p in options for f in p.flags}
    by_negative = {f: p for p in options for f in p.negative}
    values: dict[str, Any] = {}
    rest: list[str] = []
    i = 0
    only_positionals = False
    while i < len(args):
        a = args[i]
        i += 1
        if only_positionals or a == "-" or not a.startswith("-"):
            rest.append(a)
            continue
        if a == "--":
            only_positionals = True
            continue
        if a in ("--help", "-h"):
            return None
        flag, eq, inline = a.partition("=")
        if flag in by_negative and not eq:
            values[by_negative[flag].name] = False
            continue
        p = by_flag.get(flag)
        if p is None or (p.name in values and p.type is not _MANY):
            return None  # unknown or repeated option: typer's rules and messages
        if p.type is bool:
            if eq:
                return None
            values[p.name] = True
            continue
        if not eq:
            if i >= len(args):
                return None
            inline = args[i]
            i += 1
        try:
            value = _convert(p, inline)
        except ValueError:
            return None
        if p.type is _MANY:
            values.setdefault(p.name, []).append(value)
        else:
            values[p.name] = value
    if len(rest) != len(positionals):
        return None
    for p, text in zip(positionals, rest):
        try:
            values[p.name] = _convert(p, text)
        except ValueError:
            return None
    for p in positionals + options:
        if p.name not in values:
            if p.default is ...:
                return None  # a required value is missing: typer says which
            values[p.name] = list(p.default or ()) if p.type is _MANY else p.default
    return values


def command(app: Any, name: str) -> Callable | None:
    """The function registered as command `name` on a typer app."""
    for c in app.registered_commands:
        if (c.name or c.callback.__name__.replace("_", "-")) == name:
            return c.callback
    return None


def run(app: Any, args: list[str]) -> tuple[bool, Any]:
    """(True, result) when the command line was handled here, (False, None) to hand it to typer."""
    if not args or args[0].startswith("-") or app.registered_callback is not None and _callback_takes_options(app):
        return False, None
    fn = command(app, args[0])
    if fn is None:
        return False, None
    kwargs = parse(fn, args[1:])
    if kwargs is None:
        return False, None
    return True, fn(**kwargs)


def _callback_takes_options(app: Any) -> bool:
    cb = app.registered_callback.callback
    return cb is not None and bool(inspect.signature(cb).parameters)

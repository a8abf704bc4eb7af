"""The package's shape: layers import one way, no import cycle, no private name imported across modules.

The layer order (README, PROTOCOL): isa -> asm -> program / progtype -> patch ->
analysis -> passes -> elf / btf -> kernel -> cli.  The modules outside those
packages sit where what they import puts them: `errors`, `fileio` and
`runtime` at the bottom, `reference` with `patch`, `adversarial` with
`passes`, `loader` above `elf`, `cover`, `prove` and `bench` above `kernel`.
Every import counts, also those inside functions (a lazy import that points up
a layer is still a dependency the wrong way).
"""

from __future__ import annotations

import ast
from pathlib import Path

import bpfpatch

ROOT = Path(bpfpatch.__file__).parent

#: Lowest first; a module may import its own layer and those below it.
LAYERS = (
    ("errors", "fileio", "runtime"),
    ("isa",),
    ("asm",),
    ("program", "progtype", "ctxstructs"),
    ("patch", "reference", ""),  # "": the package itself (it re-exports the patch list and the program)
    ("analysis",),
    ("passes", "adversarial"),
    ("elf", "btf"),
    ("loader",),
    ("kernel",),
    ("cover", "prove", "bench"),
    ("cli", "__main__"),
)
RANK = {name: k for k, names in enumerate(LAYERS) for name in names}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = ("bpfpatch",) + path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _type_only(tree: ast.Module) -> set[int]:
    """Ids of the import nodes under ``if TYPE_CHECKING:`` (annotations only: no import at run time)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            out |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return out


def _imports(module: str, path: Path) -> list[tuple[str, list[str], int, bool]]:
    """(imported module, names taken from it, line, at run time?) for every bpfpatch import in the file."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    typing_only = _type_only(tree)
    found = []
    for node in ast.walk(tree):
        runtime = id(node) not in typing_only
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "bpfpatch" or target.startswith("bpfpatch."):
                names = [a.name for a in node.names]
                # `from pkg import sub` imports the submodule `pkg.sub`
                subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
                rest = [n for n in names if f"{target}.{n}" not in MODULES]
                if rest:
                    found.append((target, rest, node.lineno, runtime))
                found += [(s, [], node.lineno, runtime) for s in subs]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "bpfpatch" or alias.name.startswith("bpfpatch."):
                    found.append((alias.name, [], node.lineno, runtime))
    return found


def _resolve(target: str) -> str:
    """The module a dotted import names (an attribute path resolves to its longest module prefix)."""
    while target not in MODULES and "." in target:
        target = target.rpartition(".")[0]
    return target


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


EDGES = {m: [(_resolve(t), names, line, runtime) for t, names, line, runtime in _imports(m, p)]
         for m, p in MODULES.items()}
#: Every import, type-only ones included (they still say which way a dependency points).
GRAPH = {m: [(t, names, line) for t, names, line, _ in edges] for m, edges in EDGES.items()}
#: What runs at import or call time: a cycle here is a real one.
RUNTIME = {m: [(t, names, line) for t, names, line, runtime in edges if runtime] for m, edges in EDGES.items()}


def test_every_module_has_a_layer():
    assert sorted({_layer(m) for m in MODULES} - set(RANK)) == []


def test_no_import_points_up_a_layer():
    up = [f"{m}:{line} imports {t}" for m, edges in GRAPH.items() for t, _, line in edges
          if RANK[_layer(t)] > RANK[_layer(m)]]
    assert up == []


def test_no_private_name_is_imported_across_modules():
    private = [f"{m}:{line} imports {n} from {t}" for m, edges in GRAPH.items() for t, names, line in edges
               for n in names if n.startswith("_") and not n.startswith("__") and t != m]
    assert private == []


def test_no_import_cycle():
    """No cycle among the imports that run (a type-only import back is how two modules name each other)."""
    # Tarjan's strongly connected components over module -> imported module (package re-exports included).
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        work = [(v, iter(sorted({t for t, _, _ in RUNTIME[v]})))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        while work:
            node, it = work[-1]
            for w in it:
                if w == node:
                    continue
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted({t for t, _, _ in RUNTIME[w]}))))
                    break
                if w in on:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == node:
                            break
                    if len(comp) > 1:
                        cycles.append(sorted(comp))

    for v in sorted(RUNTIME):
        if v not in index:
            visit(v)
    assert cycles == []

"""The import graph points one way (DESIGN.md, "Layout"; STYLE.md, habit 1): read from
the source (ast), without importing anything.

- no module imports a project module inside a function: a late import hides a circle
  (``cli/`` loads its subcommands lazily by design, and is exempt);
- the modules' top-level imports form no cycle;
- no layer imports a higher one, and only the command line imports the sandbox.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: The project's packages, bottom layer first; a module may import its own layer and
#: those below. ``monitoring`` (metric definitions) imports only the core, and every
#: other layer counts with it. ``sandbox`` stands beside the stack (see ``SANDBOX_MAY_IMPORT``).
LAYERS = ("fulfillment", "monitoring", "integrations", "pipelines", "workers", "api", "cli")
PACKAGES = (*LAYERS, "sandbox")
#: Not application code: Alembic's revisions.
SKIPPED = ("fulfillment/migrations",)
#: Packages whose late imports are by design: the command line loads a subcommand's
#: modules only when it runs.
LAZY = ("cli",)
#: Late imports of project modules that are allowed, by file, each with its reason.
LATE_IMPORTS_ALLOWED: dict[str, str] = {}
#: What the sandbox may import besides itself and the core: the leaf modules that state
#: the contract it stands in for, so that it cannot drift from what the service expects.
SANDBOX_MAY_IMPORT: dict[str, str] = {
    "integrations.stripe_events": "the events its Stripe webhook endpoint subscribes to",
    "integrations.sendgrid_templates": "the repository's e-mail templates its SendGrid is seeded with",
}
#: The only package that may import the sandbox (``fulfillment sandbox``, ``run``).
SANDBOX_USERS = ("cli",)


def module_files() -> dict[str, Path]:
    """Every module of the project, by dotted name."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if relative.as_posix().startswith(SKIPPED):
                continue
            parts = relative.with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = module_files()


def _package_of(name: str) -> str:
    path = MODULES[name]
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def imported(node: ast.Import | ast.ImportFrom, importer: str) -> Iterator[str]:
    """The project modules an import statement loads (``from x import y`` is ``x.y``
    when that is a module, else ``x``)."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.split(".")[0] in PACKAGES:
                yield alias.name
        return
    base = node.module or ""
    if node.level:
        package = _package_of(importer).split(".")
        anchor = package[: len(package) - node.level + 1]
        base = ".".join([*anchor, *([base] if base else [])])
    if base.split(".")[0] not in PACKAGES:
        return
    for alias in node.names:
        candidate = f"{base}.{alias.name}"
        yield candidate if candidate in MODULES else base


def imports(name: str) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Each import statement of the module, and whether it runs inside a function."""
    tree = ast.parse(MODULES[name].read_text(), filename=str(MODULES[name]))

    def walk(node: ast.AST, late: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child, late
            inner = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            yield from walk(child, late or inner)

    yield from walk(tree, False)


def graph() -> dict[str, set[str]]:
    """Module -> the project modules its top-level imports load."""
    edges: dict[str, set[str]] = {name: set() for name in MODULES}
    for name in MODULES:
        for node, late in imports(name):
            if not late:
                edges[name].update(m for m in imported(node, name) if m in MODULES and m != name)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component that has one (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(_cycle_within(sorted(component), edges))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def _cycle_within(component: list[str], edges: dict[str, set[str]]) -> list[str]:
    """A path from the component's first module back to itself, for the message."""
    members, start = set(component), component[0]
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(edges[node] & members):
            if nxt == start:
                return [*paths[node], start]
            if nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    return component  # unreachable: a component always holds a cycle


def _layer(module: str) -> str:
    return module.split(".")[0]


def test_no_module_imports_a_project_module_inside_a_function():
    late = []
    for name, path in MODULES.items():
        relative = path.relative_to(ROOT).as_posix()
        if _layer(name) in LAZY or relative in LATE_IMPORTS_ALLOWED:
            continue
        for node, inside in imports(name):
            if inside and any(imported(node, name)):
                late.append(f"{relative}:{node.lineno} imports {', '.join(imported(node, name))}")
    assert not late, "late imports of project modules (a circle, hidden):\n" + "\n".join(late)


def test_the_top_level_imports_form_no_cycle():
    found = cycles(graph())
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_no_layer_imports_a_higher_one_and_only_the_command_line_imports_the_sandbox():
    wrong = []
    for name in MODULES:
        for node, _ in imports(name):
            for target in imported(node, name):
                if not _allowed(_layer(name), target):
                    wrong.append(f"{name}:{node.lineno} imports {target}")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def _allowed(layer: str, target: str) -> bool:
    to = _layer(target)
    if layer == "sandbox":
        return to in ("sandbox", "fulfillment") or target in SANDBOX_MAY_IMPORT
    if to == "sandbox":
        return layer in SANDBOX_USERS
    return LAYERS.index(to) <= LAYERS.index(layer)

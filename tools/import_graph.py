"""The package-level import graph of the library and the export step, and its cycles: `python tools/import_graph.py
[ROOT]`. Every `import` / `from ... import` at any depth of a module counts (lazy imports too), so a cycle hidden
behind a function-level import shows up. Used by docs/architecture.md's "no cycles" rule and tested by
tests/unit/test_import_graph.py."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

# folder -> import name (export/ installs as sensevoice_export)
PACKAGES = {"sensevoice_pipeline": "sensevoice_pipeline", "export": "sensevoice_export"}


def module_name(root: Path, path: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    parts[0] = PACKAGES[parts[0]]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(module: str) -> str:
    """The unit of the graph: a subpackage of the library (``sensevoice_pipeline.lake``), a top-level module of
    it (``sensevoice_pipeline.settings``), or the export step as a whole."""
    parts = module.split(".")
    if parts[0] == "sensevoice_export":
        return "sensevoice_export"
    return ".".join(parts[:2])


def imports_of(root: Path, path: Path) -> set[str]:
    module = module_name(root, path)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if path.name == "__init__.py" else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    old_export = {
        name.replace("export", "sensevoice_export", 1) for name in found if name.split(".")[0] == "export"
    }
    return {name for name in found | old_export if name.split(".")[0] in PACKAGES.values()}


def source_files(root: Path) -> list[Path]:
    return [path for folder in PACKAGES for path in sorted((root / folder).rglob("*.py"))]


def package_graph(root: Path) -> dict[str, set[str]]:
    units = {package_of(module_name(root, path)) for path in source_files(root)}
    graph: dict[str, set[str]] = {}
    for path in source_files(root):
        source = package_of(module_name(root, path))
        targets = {package_of(name) for name in imports_of(root, path)}
        graph.setdefault(source, set()).update(
            t for t in targets & units if t not in (source, "sensevoice_pipeline")
        )
    return graph


def importers_of(root: Path, package: str) -> list[str]:
    """The modules that import ``package`` (or anything in it)."""
    return sorted(
        module_name(root, path)
        for path in source_files(root)
        if any(package_of(name) == package for name in imports_of(root, path))
        and package_of(module_name(root, path)) != package
    )


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def main(argv: list[str]) -> int:
    root = Path(argv[1] if len(argv) > 1 else Path(__file__).resolve().parents[1])
    graph = package_graph(root)
    for source in sorted(graph):
        print(f"{source} -> {', '.join(sorted(graph[source])) or '-'}")
    found = cycles(graph)
    print(f"cycles: {found or 'none'}")
    print(f"modules importing sensevoice_export: {', '.join(importers_of(root, 'sensevoice_export'))}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

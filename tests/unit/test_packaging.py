"""pyproject.toml lists the packages explicitly (export/ installs as sensevoice_export): every package of the tree
must be in the list, or the wheel silently lacks it (a subpackage left out made `svp` fail on import)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_of_the_tree_is_listed_for_the_wheel():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    renamed = {folder: name for name, folder in setuptools["package-dir"].items()}
    found = set()
    for init in [*ROOT.glob("sensevoice_pipeline/**/__init__.py"), *ROOT.glob("export/**/__init__.py")]:
        rel = init.parent.relative_to(ROOT)
        if "shipped" in rel.parts:
            continue
        parts = list(rel.parts)
        parts[0] = renamed.get(parts[0], parts[0])
        found.add(".".join(parts))
    assert found == listed

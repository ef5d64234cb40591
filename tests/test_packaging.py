"""The wheel carries schemas and definitions, and every package directory is listed."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_is_listed() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    found = set()
    for top in ("engine", "plugins"):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT)
            if "migrations" in rel.parts:
                continue
            found.add(".".join(rel.parts))
    assert found - listed == set(), f"add to [tool.setuptools] packages: {sorted(found - listed)}"


def test_wheel_contains_schemas_and_definitions(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("regelwerk-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "engine/schemas/v1/common.json" in names
    assert "engine/schemas/v1/regelwerk.json" in names
    assert any(n.startswith("engine/definitions/standard/") and n.endswith(".yaml") for n in names)
    assert "engine/py.typed" in names

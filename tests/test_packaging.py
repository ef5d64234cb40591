"""The wheel installs exactly one importable name a host could collide with (``regelwerk``, plus the packs'
namespaced ``regelwerk_packs``), carries schemas and definitions, and every package directory is listed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"engine": "regelwerk", "plugins": "regelwerk_packs"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(out), str(ROOT)], check=True, capture_output=True)
    return next(out.glob("regelwerk-*.whl"))


def test_every_package_is_listed() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    found = set()
    for folder, name in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            if "migrations" in rel.parts:
                continue
            found.add(".".join((name, *rel.parts)))
    assert found - listed == set(), f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    assert {p.split(".")[0] for p in listed} == {"regelwerk", "regelwerk_packs"}


def test_wheel_has_one_top_level_name(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"regelwerk", "regelwerk_packs"}
    assert "regelwerk/schemas/v1/common.json" in names
    assert "regelwerk/schemas/v1/regelwerk.json" in names
    assert any(n.startswith("regelwerk/definitions/standard/") and n.endswith(".yaml") for n in names)
    assert "regelwerk/py.typed" in names
    assert "regelwerk/store/migrations/env.py" in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "regelwerk = regelwerk.cli:main" in text
    assert "engine" not in text.replace("regelwerk", "") and "plugins." not in text


HOST_WORKFLOW = """\
    apiVersion: regelwerk/v1
    kind: Workflow
    metadata: {name: leave}
    spec:
      states:
        - {id: requested, initial: true}
        - {id: approved, final: true}
      transitions:
        - {id: approve, from: requested, to: approved, permission: leave.approve}
"""

HOST_MAIN = """\
    import sys
    from pathlib import Path

    import engine.core          # the host's own packages, named as a new user would
    import plugins.hroffice
    import regelwerk
    import regelwerk.permissions  # noqa: F401
    from regelwerk.workflows.ports import RoleTable

    here = Path(__file__).parent
    compiled = regelwerk.compile_bundle(regelwerk.load_bundle(here / "defs"), regelwerk.load_registry())
    policy = RoleTable({"leave.start": ["hr"], "leave.approve": ["hr"]})
    eng = regelwerk.Engine(compiled, store=f"sqlite:///{here / 'host.sqlite'}", permissions=policy)
    inst = eng.start("leave", {}, actor=regelwerk.Actor("hr", ("hr",)))
    done = eng.fire(inst.id, "approve", regelwerk.Actor("hr", ("hr",)))
    eng.close()
    print(engine.core.NAME, plugins.hroffice.NAME, done.state, regelwerk.__file__.startswith(sys.prefix))
"""


@pytest.mark.slow
def test_host_with_its_own_engine_and_plugins_packages(tmp_path: Path, wheel: Path) -> None:
    """A host project with top-level ``engine`` and ``plugins`` packages installs the wheel into a fresh virtualenv
    and uses both its own modules and regelwerk (start and fire a workflow on SQLite)."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], check=True, capture_output=True,
                   timeout=600)
    host = tmp_path / "host"
    for package, module in (("engine", "core"), ("plugins", "hroffice")):
        (host / package).mkdir(parents=True)
        (host / package / "__init__.py").write_text("")
        (host / package / f"{module}.py").write_text(f"NAME = 'host-{package}'\n")
    (host / "defs").mkdir()
    (host / "defs" / "leave.yaml").write_text(textwrap.dedent(HOST_WORKFLOW))
    (host / "main.py").write_text(textwrap.dedent(HOST_MAIN))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run([str(python), "main.py"], check=False, cwd=host, capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["host-engine", "host-plugins", "approved", "True"]

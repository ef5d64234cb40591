"""The public face: ``__all__`` is pinned and ``import regelwerk`` stays light."""

from __future__ import annotations

import json
import subprocess
import sys

import regelwerk


def test_all_is_pinned() -> None:
    assert regelwerk.__all__ == sorted(regelwerk.__all__, key=lambda n: (not n.isupper(), n))
    assert set(regelwerk.__all__) == {
        "SYSTEM", "Actor", "CompiledBundle", "ConflictError", "DefinitionError", "Diagnostic", "Engine",
        "InvalidData", "PermissionDenied", "RegelwerkError", "Registry", "TransitionNotAllowed",
        "UnknownDefinition", "UnknownInstance", "compile_bundle", "load_bundle", "load_registry",
    }


def test_every_public_name_resolves() -> None:
    for name in regelwerk.__all__:
        assert getattr(regelwerk, name) is not None, name


def test_import_engine_is_light() -> None:
    code = (
        "import sys, threading, json; import regelwerk; "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('sqlalchemy', 'durable', 'transitions', 'croniter', 'jsonschema', 'alembic', 'click', 'yaml')); "
        "print(json.dumps({'heavy': heavy, 'threads': threading.active_count()}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    report = json.loads(out.stdout)
    assert report == {"heavy": [], "threads": 1}



def _pack_imports(root):  # type: ignore[no-untyped-def]
    """``file:line: name`` for every import of ``plugins`` and every string naming a ``plugins`` module
    (importlib, ``lazy("plugins.x:y")``) under ``root``."""
    import ast
    import re

    module_path = re.compile(r"^regelwerk_packs(\.[A-Za-z_][\w.]*)?(:\w+)?$")
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names = [node.value]
            found += [f"{path.relative_to(root).as_posix()}:{node.lineno}: {name}" for name in names
                      if module_path.match(name)]
    return sorted(found, key=lambda row: (row.split(":")[0], int(row.split(":")[1])))


def test_the_core_does_not_import_the_packs() -> None:
    """The HR packs reach the core only through the registry, like an outside plugin: nothing under engine/
    imports ``plugins`` or names a pack module (tables too: packs add them with ``Registry.add_table_module``)."""
    from pathlib import Path

    found = _pack_imports(Path(regelwerk.__file__).parent)
    assert found == [], "engine/ must not know the packs:\n" + "\n".join(found)


def test_the_pack_import_check_finds_static_and_string_imports(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "tables.py").write_text(
        'TABLE_MODULES = ["regelwerk_packs.x.tables"]\nOTHER = "regelwerk_packs.y"\n')
    (tmp_path / "a.py").write_text(
        '"""Docs may mention regelwerk_packs.recruitment."""\nimport regelwerk_packs.recruitment\n'
        'from regelwerk_packs import mijnloket\n'
        'import importlib\nimportlib.import_module("regelwerk_packs.recruitment.service")\n'
        'X = lazy("regelwerk_packs.x.y:run")\n')
    assert _pack_imports(tmp_path) == [
        "a.py:2: regelwerk_packs.recruitment", "a.py:3: regelwerk_packs", "a.py:5: regelwerk_packs.recruitment.service",
        "a.py:6: regelwerk_packs.x.y:run", "store/tables.py:1: regelwerk_packs.x.tables",
        "store/tables.py:2: regelwerk_packs.y"]


def test_the_core_names_no_pack_kind_or_table() -> None:
    """Nothing under engine/ names a kind, a table or a digest source that a pack registers (code, strings, docs,
    migrations):
    the packs plug in through the same extension points outside developers get."""
    import importlib
    import re
    from pathlib import Path

    import sqlalchemy as sa
    from regelwerk.registry import load_registry

    registry = load_registry()
    pack_kinds = {kind for kind, spec in registry.kinds.items() if spec.plugin != "core"}
    pack_tables = {value.name for module in registry.table_modules
                   for value in vars(importlib.import_module(module)).values() if isinstance(value, sa.Table)}
    pack_digest_sources = {name for name, spec in registry.digest_sources.items() if spec.plugin != "core"}
    assert pack_kinds and pack_tables and pack_digest_sources, "the check must have something to look for"
    names = re.compile(r"\b(" + "|".join(sorted(map(re.escape, pack_kinds | pack_tables | pack_digest_sources)))
                       + r")\b")
    root = Path(regelwerk.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for match in names.finditer(line):
                found.append(f"{rel}:{number}: {match.group(1)}")
    assert found == [], "engine/ must not name the packs' kinds or tables:\n" + "\n".join(found)


def test_the_core_names_no_pack_item_type() -> None:
    """The scheduled item types a pack names (its simulation part's ``item_words``: trajectories, conversation
    moments, feedback requests) appear in no string under engine/: the pack counts and names them itself."""
    import re
    from pathlib import Path

    from regelwerk.registry import load_registry

    item_types = {t for part in load_registry().simulation_parts.values() for t in part.item_words}
    assert {"trajectory", "moment", "feedback_request"} <= item_types, "the check must have something to look for"
    quoted = re.compile(r"""["'](""" + "|".join(sorted(map(re.escape, item_types))) + r""")["']""")
    root = Path(regelwerk.__file__).parent
    found = [f"{path.relative_to(root).as_posix()}:{number}: {match.group(1)}"
             for path in sorted(root.rglob("*.py"))
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             for match in quoted.finditer(line)]
    assert found == [], "engine/ must not name the packs' item types:\n" + "\n".join(found)

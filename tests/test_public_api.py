"""The public face: ``__all__`` is pinned and ``import engine`` stays light."""

from __future__ import annotations

import json
import subprocess
import sys

import engine


def test_all_is_pinned() -> None:
    assert engine.__all__ == sorted(engine.__all__, key=lambda n: (not n.isupper(), n))
    assert set(engine.__all__) == {
        "SYSTEM", "Actor", "CompiledBundle", "ConflictError", "DefinitionError", "Diagnostic", "Engine",
        "InvalidData", "PermissionDenied", "RegelwerkError", "Registry", "TransitionNotAllowed",
        "UnknownDefinition", "UnknownInstance", "compile_bundle", "load_bundle", "load_registry",
    }


def test_every_public_name_resolves() -> None:
    for name in engine.__all__:
        assert getattr(engine, name) is not None, name


def test_import_engine_is_light() -> None:
    code = (
        "import sys, threading, json; import engine; "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('sqlalchemy', 'durable', 'transitions', 'croniter', 'jsonschema', 'alembic', 'click', 'yaml')); "
        "print(json.dumps({'heavy': heavy, 'threads': threading.active_count()}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    report = json.loads(out.stdout)
    assert report == {"heavy": [], "threads": 1}

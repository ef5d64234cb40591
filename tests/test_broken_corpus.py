"""The corpus of broken definitions: every case must produce exactly its expected diagnostics.

Each directory under ``tests/broken/`` holds the broken file(s) and an ``expected.yaml``::

    description: what the case shows
    bundle: klant                       # optional: what to validate, relative to the case (default ".")
    limits: {max_file_bytes: 256}       # optional: lowered loader limits (regelwerk.source.Limits fields)
    diagnostics:
      - {code: RW002, file: checklist.yaml, line: 9, column: 7, pointer: ""}

Files are named relative to the case directory. The case is copied (without expected.yaml) into a
temporary directory and validated from there, so the expectations cannot see each other.
Regenerate a draft with ``python tests/test_broken_corpus.py CASE`` and review it by hand.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from _foundation import foundation_registry
from regelwerk.bundle import load_bundle
from regelwerk.compiler import validate_bundle
from regelwerk.registry import Registry
from regelwerk.source import Limits, load_text, to_plain


@pytest.fixture(scope="module")
def registry() -> Registry:
    """Core plus the example Checklist plugin (see tests/_foundation.py)."""
    return foundation_registry()

CORPUS = Path(__file__).resolve().parent / "broken"
CASES = sorted(p.parent for p in CORPUS.glob("*/expected.yaml"))
FIELDS = ("code", "file", "line", "column", "pointer")


def expected_of(case: Path) -> dict[str, Any]:
    docs, problems = load_text((case / "expected.yaml").read_text(encoding="utf-8"), "expected.yaml")
    assert problems == [] and len(docs) == 1, problems
    data: dict[str, Any] = to_plain(docs[0].data)
    return data


def actual_diagnostics(case: Path, registry: Registry, workdir: Path) -> list[dict[str, Any]]:
    """Validate a copy of the case from inside it; diagnostics as plain dicts of FIELDS (plus severity)."""
    spec = expected_of(case)
    copy = workdir / case.name
    shutil.copytree(case, copy, ignore=shutil.ignore_patterns("expected.yaml"))
    limits = Limits(**spec.get("limits", {}))
    previous = Path.cwd()
    os.chdir(copy)
    try:
        bases = {name: copy / where for name, where in spec.get("bases", {}).items()}
        problems = validate_bundle(load_bundle(spec.get("bundle", "."), limits, bases=bases), registry)
    finally:
        os.chdir(previous)
    return [{key: getattr(d, key) for key in FIELDS} | ({"severity": "warning"} if not d.is_error else {})
            for d in problems]


def test_the_corpus_is_not_empty() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=[str(c.relative_to(CORPUS)) for c in CASES])
def test_broken_case(case: Path, registry: Registry, tmp_path: Path) -> None:
    spec = expected_of(case)
    assert spec.get("description"), "every case says what it shows"
    assert spec["diagnostics"], "a broken case must expect at least one diagnostic"
    actual = actual_diagnostics(case, registry, tmp_path)
    assert actual == spec["diagnostics"]


def test_every_loading_code_is_exercised_by_the_corpus() -> None:
    seen = {d["code"] for case in CASES for d in expected_of(case)["diagnostics"]}
    wanted = {"RW001", "RW002", "RW003", "RW004", "RW005", "RW006", "RW007", "RW008", "RW010", "RW011",
              "RW100", "RW101", "RW102", "RW103", "RW104", "RW105", "RW106",
              "RW200", "RW201", "RW202", "RW203", "RW204", "RW205", "RW300", "RW301", "RW400", "RW401", "RW403"}
    assert wanted - seen == set()


def _draft(name: str) -> None:  # pragma: no cover - a maintenance helper, run by hand
    import tempfile

    sys.path.insert(0, str(CORPUS.parent.parent / "examples" / "plugin-checklist"))
    from regelwerk.registry import load_registry

    case = CORPUS / name
    with tempfile.TemporaryDirectory() as tmp:
        rows = actual_diagnostics(case, load_registry(), Path(tmp))
    spec = expected_of(case)
    out = [f"description: {json.dumps(spec['description'], ensure_ascii=False)}"]
    out += [f"{key}: {json.dumps(spec[key])}" for key in ("bundle", "bases", "limits") if key in spec]
    out.append("diagnostics:")
    out += ["  - {" + ", ".join(f"{k}: {yaml.safe_dump(v, default_style=None).strip().removesuffix('...').strip()}"
                                if k != "pointer" else f"{k}: {v!r}".replace("'", '"')
                                for k, v in row.items()) + "}" for row in rows]
    (case / "expected.yaml").write_text("\n".join(out) + "\n", encoding="utf-8")


if __name__ == "__main__":  # pragma: no cover
    for arg in sys.argv[1:]:
        _draft(arg)

"""Spreadsheet imports: one reader for CSV and XLSX, columns declared per import (``kind: Import``),
and the organisation import (afdelingen, functies, rollen, taken, medewerkers). See docs/imports.md.

Public names are imported lazily (``import regelwerk.imports`` loads neither SQLAlchemy nor openpyxl).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Column",
    "FileError",
    "ImportSpec",
    "OrganisationImport",
    "RowProblem",
    "import_organisation",
    "import_spec",
    "open_tables",
    "parse_date",
    "standard_imports",
]

_EXPORTS = {
    "Column": "regelwerk.imports.columns",
    "ImportSpec": "regelwerk.imports.columns",
    "FileError": "regelwerk.imports.reader",
    "RowProblem": "regelwerk.imports.reader",
    "open_tables": "regelwerk.imports.reader",
    "parse_date": "regelwerk.imports.values",
    "import_spec": "regelwerk.imports.specs",
    "standard_imports": "regelwerk.imports.specs",
    "OrganisationImport": "regelwerk.imports.organisation",
    "import_organisation": "regelwerk.imports.organisation",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'regelwerk.imports' has no attribute {name!r}")

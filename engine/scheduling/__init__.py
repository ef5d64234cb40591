"""The scheduler: the ``Schedule`` construct, employee facts, and ``tick`` (everything that is due, once).

Public names are imported lazily (``import regelwerk.scheduling`` loads neither SQLAlchemy nor croniter).
See docs/scheduling.md.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "EmployeeDirectory",
    "EmployeeFacts",
    "ItemSource",
    "Plan",
    "PlannedItem",
    "Schedule",
    "TickSummary",
    "compile_schedule",
    "import_employees",
    "next_fire",
    "occurrences",
    "preview",
    "start_item",
    "tick",
]

_EXPORTS = {
    "Schedule": "regelwerk.scheduling.schedule",
    "compile_schedule": "regelwerk.scheduling.schedule",
    "next_fire": "regelwerk.scheduling.schedule",
    "occurrences": "regelwerk.scheduling.schedule",
    "EmployeeDirectory": "regelwerk.scheduling.employees",
    "EmployeeFacts": "regelwerk.scheduling.employees",
    "import_employees": "regelwerk.scheduling.employees",
    "ItemSource": "regelwerk.scheduling.sources",
    "Plan": "regelwerk.scheduling.sources",
    "PlannedItem": "regelwerk.scheduling.sources",
    "TickSummary": "regelwerk.scheduling.tick",
    "tick": "regelwerk.scheduling.tick",
    "start_item": "regelwerk.scheduling.tick",
    "preview": "regelwerk.scheduling.preview",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'regelwerk.scheduling' has no attribute {name!r}")

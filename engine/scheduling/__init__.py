"""The scheduler: the ``Schedule`` construct, employee facts, and ``tick`` (everything that is due, once).

Public names are imported lazily (``import engine.scheduling`` loads neither SQLAlchemy nor croniter).
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
    "Schedule": "engine.scheduling.schedule",
    "compile_schedule": "engine.scheduling.schedule",
    "next_fire": "engine.scheduling.schedule",
    "occurrences": "engine.scheduling.schedule",
    "EmployeeDirectory": "engine.scheduling.employees",
    "EmployeeFacts": "engine.scheduling.employees",
    "import_employees": "engine.scheduling.employees",
    "ItemSource": "engine.scheduling.sources",
    "Plan": "engine.scheduling.sources",
    "PlannedItem": "engine.scheduling.sources",
    "TickSummary": "engine.scheduling.tick",
    "tick": "engine.scheduling.tick",
    "start_item": "engine.scheduling.tick",
    "preview": "engine.scheduling.preview",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'engine.scheduling' has no attribute {name!r}")

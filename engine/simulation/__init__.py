"""``regelwerk simulate``: play a customer's year forward against a real store (docs/simulation.md).

::

    from datetime import date
    from regelwerk.simulation import simulate

    result = simulate("examples/scholengroep-horizon", date(2026, 8, 1), date(2027, 7, 31))
    print("\\n".join(result.lines()))

Importing this package is light; the runtime is imported when :func:`simulate` runs.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from regelwerk.simulation.runner import Progress, SimulationResult
    from regelwerk.simulation.story import Story, load_story

__all__ = ["SimulationResult", "Story", "load_story", "simulate"]

_LAZY = {"SimulationResult": "regelwerk.simulation.runner", "Story": "regelwerk.simulation.story",
         "load_story": "regelwerk.simulation.story"}


def __getattr__(name: str) -> Any:
    """The public names that live in submodules, imported on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def simulate(path: str | Path, start: date, end: date, *, store: str | None = None, story: str | Path | None = None,
             progress: Progress | None = None, registry: Any = None, cwd: str | Path | None = None
             ) -> SimulationResult:
    """Simulate the customer directory ``path`` from ``start`` to ``end`` (see ``regelwerk.simulation.runner``)."""
    from regelwerk.simulation import runner

    return runner.simulate(path, start, end, store=store, story=story, progress=progress, registry=registry, cwd=cwd)

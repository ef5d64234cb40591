"""The configuration report: a customer's effective configuration as one static HTML page for sign-off.

``regelwerk report PATH -o DIR`` (``command.py``) compiles the bundle, compares it with the standard
it extends (``diff.py``), draws every workflow (``svg.py``) and development cycle (``timeline.py``)
as SVG in pure Python and writes ``DIR/index.html`` (``page.py``). See docs/report.md.
"""

from __future__ import annotations

__all__: list[str] = []

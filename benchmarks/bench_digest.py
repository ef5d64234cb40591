"""Benchmark: one digest run, managers x cases permission decisions (the cost a Digest adds to the tick it is due in).

    python benchmarks/bench_digest.py [--quick] [--managers N] [--team N]

A digest to role ``boss`` whose source lists one case per employee (``--managers`` x ``--team`` employees, each
reporting to one manager); the matrix lets a manager read his direct reports' cases (``scope: direct_reports``).
Every manager gets one mail with his team's cases: the run asks the permission port ``managers x cases`` times
(the digest filters each recipient's list by the policy's decision, not by a shortcut of its own). Prints the
decisions, mails and seconds of the first tick (SQLite), and of a second tick in the same period (nothing sent).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

MONDAY = datetime(2027, 3, 1, 6, 30, tzinfo=UTC)
#: (case id, employee) of every case the source lists
CASES: list[tuple[str, str]] = []


BUNDLE = """\
apiVersion: regelwerk/v1
kind: PermissionMatrix
metadata: {name: m}
spec:
  roles:
    - {id: boss, label: Leidinggevende}
    - {id: hr, label: HR}
  resources:
    - {id: case, label: Zaak, subject: employee, actions: [read]}
  grants:
    - {id: boss_team, roles: [boss], resource: case, actions: [read], scope: direct_reports}
    - {id: hr_all, roles: [hr], resource: case, actions: [read]}
---
apiVersion: regelwerk/v1
kind: MailContext
metadata: {name: overzicht}
spec:
  fields:
    - {path: recipient.name}
    - {path: counts.zaken}
    - {path: zaken, list: true}
    - {path: zaken.title}
    - {path: zaken.due}
---
apiVersion: regelwerk/v1
kind: Template
metadata: {name: overzicht}
spec:
  context: overzicht
  subject: "{{ counts.zaken }} zaken voor {{ recipient.name }}"
  body: |
    Beste {{ recipient.name }},
    {{ for z in zaken }}- {{ z.title }} (uiterlijk {{ z.due }})
    {{ end }}Groet
---
apiVersion: regelwerk/v1
kind: Digest
metadata: {name: week}
spec:
  schedule: {cron: "0 7 * * MON"}
  to: {role: ROLE}
  template: overzicht
  lists:
    zaken: {source: bench.cases, with: {}}
"""


def _cases(engine: Any, tx: Any, now: datetime, params: Mapping[str, Any]) -> Iterator[Any]:
    from regelwerk.registry import DigestCase

    for case_id, employee in CASES:
        yield DigestCase(case_id, "case", {"id": case_id, "employee": employee},
                         {"title": f"Zaak van {employee}", "due": "2027-03-05"})


class BenchPlugin:
    name = "bench"

    def register(self, registry: Any) -> None:
        from regelwerk.registry import DigestSourceSpec

        registry.add_digest_source(DigestSourceSpec("bench.cases", self.name, _cases,
                                                    fields={"title": "", "due": ""}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--managers", type=int, default=500)
    parser.add_argument("--team", type=int, default=10)
    args = parser.parse_args()
    managers, team = (50, 10) if args.quick else (args.managers, args.team)

    from regelwerk.bundle import load_bundle
    from regelwerk.compiler import compile_bundle
    from regelwerk.registry import load_registry
    from regelwerk.runtime import Engine
    from regelwerk.scheduling.employees import EmployeeDirectory

    registry = load_registry(extra=[BenchPlugin()])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "bundle"
        root.mkdir()
        (root / "all.yaml").write_text(BUNDLE.replace("ROLE", "boss"), encoding="utf-8")
        compiled = compile_bundle(load_bundle(root), registry)
        engine = Engine(compiled, store=f"sqlite:///{tmp}/store.sqlite", registry=registry, permissions="m",
                        clock=lambda: MONDAY)
        relations = engine.permissions.relationships  # type: ignore[attr-defined]
        people = []
        for m in range(managers):
            boss = f"m{m:05d}"
            relations.relate("has_role", boss, "boss", now=MONDAY - timedelta(days=30))
            people.append({"id": boss, "name": boss, "email": f"{boss}@example.nl"})
            for t in range(team):
                who = f"e{m:05d}-{t:03d}"
                relations.relate("reports_to", who, boss, now=MONDAY - timedelta(days=30))
                CASES.append((f"c-{who}", who))
        EmployeeDirectory(engine.store.engine).upsert(people, MONDAY)  # type: ignore[attr-defined]
        started = time.perf_counter()
        first = engine.tick(MONDAY).tasks["digest.week"]
        first_s = time.perf_counter() - started
        started = time.perf_counter()
        second = engine.tick(MONDAY + timedelta(hours=1)).tasks["digest.week"]
        second_s = time.perf_counter() - started
        engine.close()
    print("| managers | cases | decisions | mails | first tick s | second tick (same period) s |")
    print("|---:|---:|---:|---:|---:|---:|")
    print(f"| {managers:,} | {len(CASES):,} | {managers * len(CASES):,} | {first.get('sent', 0):,} | "
          f"{first_s:.2f} | {second_s:.2f} ({second}) |")


if __name__ == "__main__":
    main()

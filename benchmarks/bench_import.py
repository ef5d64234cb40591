"""Benchmark: `regelwerk import organisation` of a workbook with N employees vs reading it with openpyxl alone.

    python benchmarks/bench_import.py [--quick] [--employees N] [--pg-url URL]

One generated XLSX workbook (Afdelingen, Functies, Rollen, Taken, Medewerkers; N employees in 40 departments
with a reporting line of team leaders), then, each in its own process so peak memory (ru_maxrss) is its own:

- baseline: openpyxl `load_workbook(read_only=True)`, every row of every sheet with `iter_rows(values_only=True)`;
- regelwerk, reading only: the same file through `open_tables` + the declared columns (every cell converted);
- regelwerk, full import into a fresh SQLite file (read, check every reference and cycle, write units,
  employees and relations in one transaction);
- the same into PostgreSQL when REGELWERK_TEST_PG_URL (or --pg-url) is set.

Prints a markdown table: wall seconds, CPU seconds of the process (steadier on a shared machine; a database
server's own work is not in it), rows/s, peak RSS, and the ratios to the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def make_workbook(path: Path, employees: int) -> None:
    """A realistic organisation workbook, written with openpyxl's write-only mode."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    departments = [f"afd{n:02d}" for n in range(40)]
    sheet = book.create_sheet("Afdelingen")
    sheet.append(["Code", "Naam", "Valt onder", "Leidinggevende"])
    sheet.append(["org", "Organisatie", None, "m00000"])
    for n, dept in enumerate(departments):
        sheet.append([dept, f"Afdeling {n}", "org", f"m{n + 1:05d}"])
    sheet = book.create_sheet("Functies")
    sheet.append(["Code", "Naam", "Afdeling"])
    for fn in ("directeur", "teamleider", "medewerker", "specialist", "adviseur"):
        sheet.append([fn, fn.capitalize(), None])
    sheet = book.create_sheet("Rollen")
    sheet.append(["Code", "Naam", "Functie", "Rechtenniveau"])
    sheet.append(["roosteraar", "Roosteraar", "teamleider", "leidinggevende"])
    sheet.append(["mentor", "Mentor", "medewerker", None])
    sheet.append(["opleider", "Praktijkopleider", "specialist", None])
    sheet = book.create_sheet("Taken")
    sheet.append(["Code", "Naam"])
    sheet.append(["bhv", "BHV-er"])
    sheet.append(["or", "Lid OR"])
    sheet = book.create_sheet("Medewerkers")
    sheet.append(["Personeelsnummer", "Naam", "E-mailadres", "Datum in dienst", "Functie", "Afdeling",
                  "Leidinggevende", "Rollen", "Taken", "Rechtenniveau"])
    start = date(2000, 1, 1)
    sheet.append(["m00000", "Directeur", "m00000@example.nl", start, "directeur", "org", None, None, None,
                  "directie"])
    for n in range(1, len(departments) + 1):
        sheet.append([f"m{n:05d}", f"Teamleider {n}", f"m{n:05d}@example.nl", start + timedelta(days=n),
                      "teamleider", departments[n - 1], "m00000", "roosteraar", "bhv" if n % 3 else None, None])
    for n in range(len(departments) + 1, employees):
        dept = n % len(departments)
        function, role = (("medewerker", "mentor") if n % 7 else ("specialist", "opleider"))
        sheet.append([f"m{n:05d}", f"Medewerker {n}", f"m{n:05d}@example.nl", start + timedelta(days=n % 9000),
                      function, departments[dept], None, role if n % 5 == 0 else None,
                      "bhv; or" if n % 50 == 0 else None, "medewerker"])
    book.save(path)


BASELINE = """
import json, resource, sys, time
t = time.perf_counter()
from openpyxl import load_workbook
book = load_workbook(sys.argv[1], read_only=True, data_only=True)
rows = 0
for sheet in book.worksheets:
    for values in sheet.iter_rows(values_only=True):
        rows += 1
book.close()
print(json.dumps({"seconds": time.perf_counter() - t, "cpu": time.process_time(), "rows": rows,
                  "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""

READ = """
import json, resource, sys, time
t = time.perf_counter()
from regelwerk.imports.organisation import ENTITIES, OrganisationImport
from regelwerk.imports.specs import import_spec
run = OrganisationImport({e: import_spec(e) for e in ENTITIES})
run.read([sys.argv[1]])
assert not run.file_errors, run.file_errors
rows = sum(len(r) for r in run.rows.values())
print(json.dumps({"seconds": time.perf_counter() - t, "cpu": time.process_time(), "rows": rows,
                  "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""

IMPORT = """
import json, resource, sys, time
t = time.perf_counter()
import sqlalchemy as sa
from regelwerk.imports.organisation import import_organisation
engine = sa.create_engine(sys.argv[2])
result = import_organisation(engine, [sys.argv[1]])
assert result.ok, result.lines()[:5]
engine.dispose()
print(json.dumps({"seconds": time.perf_counter() - t, "cpu": time.process_time(),
                  "rows": sum(result.imported.values()),
                  "relations": result.relations_added,
                  "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def run(code: str, *args: str) -> dict[str, Any]:
    """One side in a fresh interpreter; its own time and peak RSS (KiB)."""
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(out.stderr)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def pg_schema_url(base: str) -> tuple[str, Any]:
    import sqlalchemy as sa

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return f"{base}{sep}options=-csearch_path%3D{schema}", drop


def main() -> int:
    """Generate the workbook, run every side, print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10,000 employees")
    parser.add_argument("--employees", type=int, default=None)
    parser.add_argument("--pg-url", default=os.environ.get("REGELWERK_TEST_PG_URL"))
    args = parser.parse_args()
    employees = args.employees or (10_000 if args.quick else 100_000)
    with tempfile.TemporaryDirectory() as tmp:
        book = Path(tmp) / "organisatie.xlsx"
        started = time.perf_counter()
        make_workbook(book, employees)
        print(f"workbook: {employees:,} employees, {book.stat().st_size / 1e6:.1f} MB, written in "
              f"{time.perf_counter() - started:.1f} s\n")
        sides = [("openpyxl read-only, every row (baseline)", run(BASELINE, str(book)))]
        sides.append(("regelwerk: read + declared columns (no store)", run(READ, str(book))))
        sides.append(("regelwerk import organisation, SQLite file",
                      run(IMPORT, str(book), f"sqlite:///{Path(tmp) / 'org.sqlite'}")))
        if args.pg_url:
            url, drop = pg_schema_url(args.pg_url)
            try:
                sides.append(("regelwerk import organisation, PostgreSQL", run(IMPORT, str(book), url)))
            finally:
                drop()
    base = sides[0][1]
    print("| side | wall s | CPU s (this process) | rows/s (wall) | peak RSS | wall vs openpyxl | CPU vs openpyxl "
          "| memory vs openpyxl |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, side in sides:
        print(f"| {name} | {side['seconds']:.2f} | {side['cpu']:.2f} | {side['rows'] / side['seconds']:,.0f} | "
              f"{side['rss'] / 1024:.0f} MB | {side['seconds'] / base['seconds']:.2f}x | "
              f"{side['cpu'] / base['cpu']:.2f}x | {side['rss'] / base['rss']:.2f}x |")
    relations = [s.get("relations") for _, s in sides if s.get("relations")]
    if relations:
        print(f"\n(the import writes {relations[0]:,} relations besides the units and employees)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

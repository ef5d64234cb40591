"""``regelwerk simulate`` at scale: one year for 10,000 employees and 2,000 candidates.

    python benchmarks/bench_simulate.py            # 10,000 employees, 2,000 candidates, one year
    python benchmarks/bench_simulate.py --quick    # 500 employees, 100 candidates, three months

Generates a customer directory (the standard bundle, employees, vacancies, candidates and a story of
status moves) into a temporary directory and simulates it on SQLite and, when
``REGELWERK_TEST_PG_URL`` is set, on PostgreSQL. Each run is its own process, so the peak RSS
(``ru_maxrss``) is that run's. Prints a markdown table (total time, time per simulated day, peak
memory, what was produced) and, per backend, the top 15 cumulative entries of a cProfile run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

STANDARD_BUNDLE = """apiVersion: regelwerk/v1
kind: Bundle
metadata: {name: bench-customer}
spec: {extends: standard}
"""
STATUS_PATH = ["screening", "interview_1", "interview_2", "offer", "hired"]


def generate(root: Path, employees: int, candidates: int, start: date, days: int, seed: int = 7) -> None:
    """A customer directory with ``employees`` people, ``candidates`` applications and a story of moves."""
    rnd = random.Random(seed)
    (root / "data").mkdir(parents=True)
    (root / "bundle.yaml").write_text(STANDARD_BUNDLE, encoding="utf-8")
    managers = max(employees // 25, 2)
    lines = ["id,name,hire_date,leaving_date,function,department,manager,roles,groups"]
    for i in range(employees):
        ident = f"e{i:05d}"
        manager = "" if i < managers // 10 + 1 else f"e{rnd.randrange(0, managers):05d}"
        if manager == ident:
            manager = "e00000"
        hired = start - timedelta(days=rnd.randrange(-days, 3650))
        leaving_day = max(start + timedelta(days=rnd.randrange(30, days)), hired + timedelta(days=30))
        leaving = leaving_day.isoformat() if rnd.random() < 0.08 else ""
        roles = "beheerder;medewerker" if i == 0 else ("leidinggevende;medewerker" if i < managers else "medewerker")
        lines.append(f"{ident},Medewerker {i},{hired.isoformat()},{leaving},functie-{i % 40},afdeling-{i % 60},"
                     f"{manager},{roles},")
    (root / "data" / "employees.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    vacancies = max(candidates // 20, 1)
    vlines = ["id,title,function,department,entity,manager,deadline,team,opened_on"]
    for v in range(vacancies):
        opened = start + timedelta(days=rnd.randrange(0, max(days - 60, 1)))
        vlines.append(f"v{v},Vacature {v},functie-{v % 40},afdeling-{v % 60},,e00001,"
                      f"{(opened + timedelta(days=60)).isoformat()},e00000;e00002,{opened.isoformat()}")
    (root / "data" / "vacancies.csv").write_text("\n".join(vlines) + "\n", encoding="utf-8")
    clines = ["id,vacancy,first_name,last_name,email,phone,applied_on,consent,consent_until"]
    story = ["apiVersion: regelwerk/v1", "kind: Story", "metadata: {name: bench-story}", "spec:", "  events:"]
    opened_on = {v: date.fromisoformat(vlines[v + 1].split(",")[-1]) for v in range(vacancies)}
    moves: list[tuple[date, str]] = []
    for c in range(candidates):
        v = rnd.randrange(vacancies)
        applied = opened_on[v] + timedelta(days=rnd.randrange(0, 30))
        consent = rnd.random() < 0.2
        clines.append(f"c{c},v{v},Kandidaat,Nummer {c},c{c}@example.nl,,{applied.isoformat()},"
                      f"{'ja' if consent else 'nee'},")
        day = applied
        for status in STATUS_PATH[:rnd.randrange(0, len(STATUS_PATH))]:
            day += timedelta(days=rnd.randrange(3, 15))
            moves.append((day, f"      move: {{candidate: c{c}, to: {status}, actor: e00000}}"))
        if rnd.random() < 0.6:
            day += timedelta(days=rnd.randrange(3, 15))
            moves.append((day, f"      move: {{candidate: c{c}, to: rejected, actor: e00000}}"))
    (root / "data" / "candidates.csv").write_text("\n".join(clines) + "\n", encoding="utf-8")
    for day, line in sorted(moves, key=lambda m: m[0]):
        story.append(f"    - on: {day.isoformat()}")
        story.append(line)
    (root / "story.yaml").write_text("\n".join(story) + "\n", encoding="utf-8")


def _one(path: str, url: str, start: date, end: date, profile: bool) -> dict[str, object]:
    """Simulate once in this process; time, peak RSS and (optionally) the profile's top 15."""
    import cProfile
    import io
    import pstats

    from regelwerk.simulation import simulate

    profiler = cProfile.Profile() if profile else None
    began = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    result = simulate(path, start, end, store=url)
    if profiler is not None:
        profiler.disable()
    seconds = time.perf_counter() - began
    top = ""
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(15)
        top = out.getvalue()
    s = result.summary
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "days": result.days, "rss_mb": rss_mb,
            "moments": s["moments"]["total"], "trajectories": s["trajectories"],
            "feedback": s["feedback_requests"], "mails": s["mails"]["total"],
            "deleted": s["retention"]["deleted"], "applied": s["events"]["applied"],
            "refused": s["events"]["refused"], "profile": top}


def _pg_schema_url(base: str) -> tuple[str, str]:
    import sqlalchemy as sa

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    engine.dispose()
    url = sa.make_url(base)
    return url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False), schema


def _drop_schema(base: str, schema: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="500 employees, 100 candidates, three months")
    parser.add_argument("--employees", type=int)
    parser.add_argument("--candidates", type=int)
    parser.add_argument("--days", type=int)
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile runs")
    parser.add_argument("--child", nargs=4, metavar=("PATH", "URL", "FROM", "TO"), help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        path, url, first, last = args.child
        print(json.dumps(_one(path, url, date.fromisoformat(first), date.fromisoformat(last), args.profile)))
        return
    employees = args.employees or (500 if args.quick else 10_000)
    candidates = args.candidates or (100 if args.quick else 2_000)
    days = args.days or (90 if args.quick else 365)
    start = date(2026, 1, 1)
    end = start + timedelta(days=days - 1)
    backends = ["sqlite"] + (["postgresql"] if os.environ.get("REGELWERK_TEST_PG_URL") else [])
    rows = []
    profiles = {}
    with tempfile.TemporaryDirectory() as tmp:
        customer = Path(tmp) / "customer"
        began = time.perf_counter()
        generate(customer, employees, candidates, start, days)
        print(f"generated {employees} employees, {candidates} candidates in {time.perf_counter() - began:.1f} s",
              file=sys.stderr)
        for backend in backends:
            for profiled in ([False] if args.no_profile else [False, True]):
                schema = ""
                if backend == "sqlite":
                    url = f"sqlite:///{Path(tmp) / f'{backend}-{profiled}.sqlite'}"
                else:
                    base = os.environ["REGELWERK_TEST_PG_URL"]
                    url, schema = _pg_schema_url(base)
                try:
                    command = [sys.executable, __file__, "--child", str(customer), url, start.isoformat(),
                               end.isoformat()] + (["--profile"] if profiled else [])
                    done = subprocess.run(command, check=False, capture_output=True, text=True)
                    if done.returncode:
                        sys.exit(f"{backend} run failed:\n{done.stderr[-3000:]}")
                finally:
                    if schema:
                        _drop_schema(os.environ["REGELWERK_TEST_PG_URL"], schema)
                data = json.loads(done.stdout.strip().splitlines()[-1])
                if profiled:
                    profiles[backend] = data["profile"]
                else:
                    rows.append((backend, data))
                print(f"{backend}{' (profiled)' if profiled else ''}: {data['seconds']:.1f} s", file=sys.stderr)
    print(f"\n### regelwerk simulate: {employees} employees, {candidates} candidates, {days} days\n")
    print("| store | total s | ms per day | peak RSS MB | trajectories | moments | feedback requests | mails in outbox "
          "| deleted (AVG) | story events applied / refused |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for backend, d in rows:
        print(f"| {backend} | {d['seconds']:.1f} | {1000 * d['seconds'] / max(d['days'], 1):.1f} | {d['rss_mb']:.0f} "
              f"| {d['trajectories']} | {d['moments']} | {d['feedback']} | {d['mails']} | {d['deleted']} "
              f"| {d['applied']} / {d['refused']} |")
    for backend, text in profiles.items():
        print(f"\n#### where the time goes ({backend}, cProfile, top 15 cumulative)\n")
        print("```")
        lines = [line for line in text.splitlines() if line.strip()]
        start_at = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
        print("\n".join(lines[start_at:start_at + 16]))
        print("```")


if __name__ == "__main__":
    main()

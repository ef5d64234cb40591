"""Benchmark: `regelwerk validate`, cold as a whole process, and on a generated bundle of 1,000 documents.

Run: ``python benchmarks/bench_validate.py [--quick]`` (prints a markdown table).

1. ``regelwerk validate definitions/standard examples/plugin-checklist/definitions`` as a fresh process,
   against ``python -c "import yaml, jsonschema, click"`` in the same run (target: at most 3x).
2. A generated bundle of 1,000 ``Checklist`` documents (the example plugin's kind; 5 tasks each with
   references and conditions), validated in-process and as a process (target: under 2 s).

The example plugin is made discoverable through a temporary ``*.dist-info`` on PYTHONPATH, so nothing
is installed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "plugin-checklist"


def plugin_env(tmp: Path) -> dict[str, str]:
    """An environment in which the example Checklist plugin is found through its entry point."""
    info = tmp / "site" / "regelwerk_checklist_bench-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: regelwerk-checklist-bench\nVersion: 0.1\n",
                                   encoding="utf-8")
    (info / "entry_points.txt").write_text("[regelwerk.plugins]\nchecklist = regelwerk_checklist:plugin\n",
                                           encoding="utf-8")
    env = dict(os.environ)
    # Measure an installed program as users run it: with bytecode caches (a fresh checkout compiles once).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp / "site"), str(EXAMPLE), env.get("PYTHONPATH", "")])
    return env


def generate_bundle(directory: Path, documents: int = 1000, per_file: int = 50) -> None:
    """Write ``documents`` Checklist documents, ``per_file`` to a file."""
    directory.mkdir(parents=True, exist_ok=True)
    for start in range(0, documents, per_file):
        parts = []
        for n in range(start, min(start + per_file, documents)):
            parts.append(
                "apiVersion: regelwerk/v1\nkind: Checklist\nmetadata:\n"
                f"  name: checklist-{n:04d}\n  description: Gegenereerde lijst {n}\n  labels: {{team: t{n % 7}}}\n"
                "spec:\n  tasks:\n"
                "    - id: contract\n      label: Contract getekend\n"
                "    - id: laptop\n      label: Laptop\n      depends_on: [contract]\n"
                "      when: {fn: has_laptop_budget, args: [{field: budget.laptop}]}\n"
                "    - id: intro\n      depends_on: [contract]\n"
                "      when:\n        all:\n          - {field: employee.hire_date, le: {now: {}}}\n"
                "          - {field: employee.hire_date, plus: P6W, ge: {now: {}}}\n"
                "    - id: badge\n      depends_on: [laptop, intro]\n"
                "      when: {any: [{field: employee.location, in: [Utrecht, Zwolle]}, "
                "{not: {field: employee.remote, eq: true}}]}\n"
                "    - id: done\n      depends_on: [badge]\n"
            )
        (directory / f"lists-{start // per_file:03d}.yaml").write_text("---\n".join(parts), encoding="utf-8")


def timed_process(cmd: list[str], env: dict[str, str], repeat: int) -> tuple[float, int]:
    """Median wall time of ``repeat`` runs of a process, and its exit code."""
    times = []
    code = 0
    for _ in range(repeat):
        started = time.perf_counter()
        done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, check=False)
        times.append(time.perf_counter() - started)
        code = done.returncode
    return statistics.median(times), code


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    """Run both measurements and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (< 20 s)")
    args = parser.parse_args()
    repeat = 3 if args.quick else 9
    regelwerk = [sys.executable, "-c", "import sys; from regelwerk.cli import main; main(sys.argv[1:])"]
    rows: list[tuple[str, str, str, str]] = []

    with tempfile.TemporaryDirectory() as raw:
        tmp = Path(raw)
        env = plugin_env(tmp)
        baseline, _ = timed_process([sys.executable, "-c", "import yaml, jsonschema, click"], env, repeat)
        targets = ["definitions/standard", "examples/plugin-checklist/definitions"]
        cold, code = timed_process([*regelwerk, "validate", *targets], env, repeat)
        rows.append(("`python -c \"import yaml, jsonschema, click\"` (baseline)", f"{baseline * 1000:.0f} ms",
                     "1.00x", ""))
        rows.append((f"`regelwerk validate {' '.join(targets)}` (cold process, exit {code})",
                     f"{cold * 1000:.0f} ms", f"{cold / baseline:.2f}x",
                     "ok (<= 3x)" if cold <= 3 * baseline else "OVER 3x target"))

        core_only = [sys.executable, "-c",
                     "import sys; import regelwerk.cli as cli; from regelwerk.registry import load_registry; "
                     "from regelwerk_checklist import plugin; "
                     "cli.registry = lambda: load_registry(extra=[plugin], use_entry_points=False); "
                     "cli.main(sys.argv[1:])"]
        foundation, code = timed_process([*core_only, "validate", targets[1]], env, repeat)
        rows.append((f"`regelwerk validate {targets[1]}` with core + example plugin only, no packs "
                     f"(cold process, exit {code})", f"{foundation * 1000:.0f} ms", f"{foundation / baseline:.2f}x",
                     "ok (<= 3x)" if foundation <= 3 * baseline else "OVER 3x target"))
        registry_cost = [sys.executable, "-c", "from regelwerk.registry import load_registry; load_registry()"]
        plugins, _ = timed_process(registry_cost, env, repeat)
        rows.append(("`load_registry()` with every installed plugin (cold process)", f"{plugins * 1000:.0f} ms",
                     f"{plugins / baseline:.2f}x", "(pack registration cost)"))

        bundle = tmp / "generated"
        generate_bundle(bundle)
        sys.path.insert(0, str(EXAMPLE))
        from regelwerk.bundle import load_bundle
        from regelwerk.compiler import validate_bundle
        from regelwerk.registry import load_registry
        from regelwerk.validation import SchemaSet
        from regelwerk_checklist import plugin as checklist

        registry = load_registry(extra=[checklist], use_entry_points=False)
        schemas = SchemaSet(registry)
        problems = validate_bundle(load_bundle(bundle), registry, schemas)
        assert not problems, problems[:3]
        inproc = timed(lambda: validate_bundle(load_bundle(bundle), registry, schemas), repeat)
        load_only = timed(lambda: load_bundle(bundle), repeat)
        rows.append(("1,000 documents: load only (in-process)", f"{load_only * 1000:.0f} ms",
                     f"{load_only / baseline:.2f}x", ""))
        rows.append(("1,000 documents: load + validate + compile (in-process)", f"{inproc * 1000:.0f} ms",
                     f"{inproc / baseline:.2f}x", "ok (< 2 s)" if inproc < 2 else "OVER 2 s target"))
        process, code = timed_process([*regelwerk, "validate", str(bundle)], env, max(1, repeat // 3))
        rows.append((f"1,000 documents: `regelwerk validate` (process, exit {code})", f"{process * 1000:.0f} ms",
                     f"{process / baseline:.2f}x", "ok (< 2 s)" if process < 2 else "OVER 2 s target"))

    print(f"Python {sys.version.split()[0]}, median of {repeat} run(s)\n")
    print("| measurement | time | vs baseline | target |")
    print("|---|---:|---:|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()

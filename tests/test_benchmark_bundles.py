"""The benchmarks' own definitions stay valid as the validator grows stricter (a benchmark that no longer
compiles measures nothing: bench_talent_windows used an undeclared employee attribute for a while)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))


def test_the_talent_windows_bundle_compiles(tmp_path: Path) -> None:
    import bench_talent_windows

    bench_talent_windows.write_bundle(tmp_path)
    compiled = bench_talent_windows.compiled_bundle(tmp_path)
    assert compiled.of_kind("DevelopmentCycle")


def test_the_workflow_benchmark_bundle_compiles(tmp_path: Path) -> None:
    import bench_workflow

    compiled, _registry = bench_workflow._compiled(tmp_path)
    assert compiled.of_kind("Workflow")

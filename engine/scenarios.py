"""Scenario tests: YAML files that consultants write beside their definitions.

A scenario names a bundle, fixes the clock, sets facts and runs steps with
expectations. Step types are an extension point (``StepSpec``): the core ships
``expect_diagnostics`` and ``set_facts``; the workflow, rules, permission,
scheduler and recruitment parts add theirs. ``regelwerk test`` and the project's
pytest suite run the same files through :func:`run_scenario_file`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from regelwerk.bundle import Bundle, env_bases, load_bundle
from regelwerk.compiler import CompiledBundle, compile_bundle
from regelwerk.conditions import to_temporal
from regelwerk.diagnostics import DefinitionError, Diagnostic, format_diagnostics
from regelwerk.registry import Registry, StepSpec
from regelwerk.source import SourceDocument, YMap, load_text, locate, read_source, to_plain

__all__ = [
    "ScenarioContext",
    "ScenarioResult",
    "StepFailure",
    "find_scenario_files",
    "junit_xml",
    "matches_subset",
    "parse_moment",
    "run_scenario_file",
    "run_scenarios",
    "scenario_schema",
]


class StepFailure(Exception):
    """A step's expectation did not hold (the message says what was expected and what happened)."""


def matches_subset(want: Any, got: Any) -> bool:
    """An expectation holds when every key it gives matches (extra keys in the result are fine); lists
    match item by item and must have the same length."""
    if isinstance(want, Mapping):
        return isinstance(got, Mapping) and all(k in got and matches_subset(v, got[k]) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(got, list) and len(want) == len(got) and all(
            matches_subset(w, g) for w, g in zip(want, got, strict=True))
    return bool(want == got)


def parse_moment(value: Any) -> datetime:
    """A scenario/CLI moment (date or date-time, ISO) as an aware datetime (UTC when no offset)."""
    temporal = to_temporal(value)
    if temporal is None:
        raise ValueError(f"not an ISO date or date-time: {value!r}")
    if isinstance(temporal, datetime):
        return temporal
    return datetime(temporal.year, temporal.month, temporal.day, tzinfo=UTC)


@dataclass
class ScenarioContext:
    """State shared by the steps of one scenario run."""

    file: Path
    registry: Registry
    bundle_path: Path
    now: datetime
    facts: dict[str, Any] = field(default_factory=dict)
    services: dict[str, Any] = field(default_factory=dict)
    workdir: Path | None = None
    _compiled: CompiledBundle | None = None
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    #: Named bases the scenario's bundles may extend (``spec.bases``, paths relative to the scenario file).
    bases: dict[str, Path] = field(default_factory=dict)

    def resolve(self, path: str) -> Path:
        """A path relative to the scenario file."""
        return (self.file.parent / path).resolve()

    def load(self, path: Path) -> Bundle:
        """Load a bundle of this scenario: the caller's named bases plus the scenario's own."""
        return load_bundle(path, bases={**env_bases(), **self.bases})

    @property
    def compiled(self) -> CompiledBundle:
        """The scenario's bundle, compiled once; a StepFailure lists the diagnostics if it does not compile."""
        if self._compiled is None:
            bundle = self.load(self.bundle_path)
            try:
                self._compiled = compile_bundle(bundle, self.registry)
            except DefinitionError as exc:
                raise StepFailure("the bundle does not compile:\n" + format_diagnostics(exc.diagnostics)) from None
        return self._compiled

    def service(self, name: str, factory: Callable[[ScenarioContext], Any]) -> Any:
        """A per-scenario object (engine, store...) created on first use."""
        if name not in self.services:
            self.services[name] = factory(self)
        return self.services[name]

    def close(self) -> None:
        """Run cleanups (close stores, stop servers) in reverse order."""
        while self.cleanups:
            self.cleanups.pop()()


@dataclass
class StepOutcome:
    """One step's result."""

    index: int
    kind: str
    line: int
    passed: bool
    message: str = ""


@dataclass
class ScenarioResult:
    """One scenario's result."""

    file: str
    name: str
    line: int
    steps: list[StepOutcome] = field(default_factory=list)
    error: str = ""
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        """True when no step failed and the scenario itself was well-formed."""
        return not self.error and all(s.passed for s in self.steps)

    def failures(self) -> list[str]:
        """Human-readable failures, each with file:line."""
        out = []
        if self.error:
            out.append(f"{self.file}:{self.line}: {self.name}: {self.error}")
        for step in self.steps:
            if not step.passed:
                out.append(f"{self.file}:{step.line}: {self.name}: step {step.index + 1} ({step.kind}): "
                           f"{step.message}")
        return out


def find_scenario_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Every YAML file under ``paths`` that holds a Scenario document, sorted."""
    found: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        root = path.resolve()
        # regular files only, and no link that leads out of the folder searched (a FIFO would block the read)
        candidates = [path] if path.is_file() else sorted(
            p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()
            and (not p.is_symlink() or root in p.resolve().parents))
        for candidate in candidates:
            try:
                with open(candidate, "rb") as handle:
                    head = handle.read(1 << 20)
            except OSError:
                continue
            if b"kind: Scenario" in head:
                found.add(candidate)
    return sorted(found)


def scenario_schema(registry: Registry) -> dict[str, Any]:
    """The JSON Schema of Scenario documents, with one entry per registered step type."""
    steps = sorted(registry.steps.values(), key=lambda s: s.name)
    step_variants = [
        {
            "type": "object",
            "required": [spec.name],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "description": "A label for this step."},
                "description": {"type": "string"},
                spec.name: dict(spec.schema) or {"description": spec.description},
            },
            "description": spec.description,
        }
        for spec in steps
    ]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://schemas.regelwerk.invalid/v1/scenario.json",
        "title": "regelwerk scenario",
        "description": "A scenario test for `regelwerk test`. Generated by `regelwerk schema Scenario`.",
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"$ref": "common.json#/$defs/apiVersion"},
            "kind": {"const": "Scenario"},
            "metadata": {"$ref": "common.json#/$defs/metadata"},
            "spec": {
                "type": "object",
                "required": ["steps"],
                "additionalProperties": False,
                "properties": {
                    "bundle": {"type": "string", "description": "The bundle under test, relative to this file "
                                                                "(default: this file's directory)."},
                    "bases": {"type": "object", "additionalProperties": {"type": "string"},
                              "description": "Bases the bundles may extend by name besides 'standard': name -> "
                                             "folder relative to this file."},
                    "now": {"$ref": "common.json#/$defs/dateTime", "description": "The fixed clock."},
                    "facts": {"type": "object", "description": "Initial facts (relationships, employees...)."},
                    "steps": {"type": "array", "items": {"anyOf": step_variants} if step_variants else {}},
                },
            },
        },
    }


def _scenario_documents(file: Path) -> tuple[list[SourceDocument], list[Diagnostic]]:
    display = os.path.relpath(file)
    text, problems = read_source(str(file), display)
    if text is None:
        return [], problems
    docs, more = load_text(text, display)
    return [d for d in docs if d.kind == "Scenario"], problems + more


def run_scenario_file(file: str | os.PathLike[str], registry: Registry) -> list[ScenarioResult]:
    """Run every scenario in one file."""
    path = Path(file)
    docs, problems = _scenario_documents(path)
    display = os.path.relpath(path)
    if problems and not docs:
        return [ScenarioResult(display, path.stem, problems[0].line,
                               error="cannot load:\n" + format_diagnostics(problems))]
    return [run_scenario(path, doc, registry) for doc in docs]


def _validate_scenario(doc: SourceDocument, registry: Registry) -> list[str]:
    from jsonschema import Draft202012Validator
    from referencing import Registry as RefRegistry
    from referencing import Resource
    from referencing.jsonschema import DRAFT202012
    from regelwerk.validation import SCHEMA_BASE, load_shipped_schema

    refs: RefRegistry[Any] = RefRegistry().with_resource(
        SCHEMA_BASE + "common.json", Resource.from_contents(load_shipped_schema("common.json"), DRAFT202012))
    schema = scenario_schema(registry)
    schema["$id"] = SCHEMA_BASE + "scenario.json"
    validator = Draft202012Validator(schema, registry=refs)
    messages = []
    steps = doc.data.get("spec", {}).get("steps") if isinstance(doc.data.get("spec"), dict) else None
    for index, step in enumerate(steps if isinstance(steps, list) else []):
        where = locate(doc.data, f"/spec/steps/{index}")
        kinds = [k for k in step if k not in ("name", "description")] if isinstance(step, dict) else []
        unknown = [k for k in kinds if k not in registry.steps]
        if len(kinds) != 1 or unknown:
            from regelwerk.diagnostics import did_you_mean

            hint = did_you_mean(unknown[0], registry.steps) if unknown else ""
            messages.append(f"{where.file}:{where.line}:{where.column}: a step needs exactly one known step type"
                            f"{' (unknown: ' + ', '.join(unknown) + ')' if unknown else ''}"
                            f"{'; ' + hint if hint else ''}; known: {', '.join(sorted(registry.steps))}"
                            f" [at /spec/steps/{index}]")
    if messages:
        return messages
    kinds_in_order = sorted(registry.steps)  # the order of the steps' anyOf (scenario_schema)
    for error in validator.iter_errors(doc.data):
        # a step names its type, so only that type's schema says what is wrong, not the anyOf's best guess (a
        # permission_table with a misplaced key was "'accept_user_invitation' is a required property")
        found = _own_step_errors(error, steps, kinds_in_order)
        if not found:
            best = error
            if error.context:
                from jsonschema.exceptions import best_match

                best = best_match(error.context) or error
            found = [best]
        for problem in found:
            pointer = "".join(f"/{p}" for p in problem.absolute_path)
            where = locate(doc.data, pointer)
            messages.append(f"{where.file}:{where.line}:{where.column}: {problem.message[:200]} "
                            f"[at {pointer or '/'}]")
    return messages


def _own_step_errors(error: Any, steps: Any, kinds_in_order: list[str]) -> list[Any]:
    """The errors of a step's own type among an anyOf failure at ``/spec/steps/N``, or []."""
    path = list(error.absolute_path)
    if error.validator != "anyOf" or len(path) != 3 or path[:2] != ["spec", "steps"] or not isinstance(steps, list):
        return []
    step = steps[path[2]] if isinstance(path[2], int) and path[2] < len(steps) else None
    kinds = [k for k in step if k not in ("name", "description")] if isinstance(step, Mapping) else []
    if len(kinds) != 1 or kinds[0] not in kinds_in_order:
        return []
    branch = kinds_in_order.index(kinds[0])
    own = [e for e in error.context or () if e.schema_path and e.schema_path[0] == branch]
    return sorted(own, key=lambda e: [str(p) for p in e.absolute_path])


def run_scenario(path: Path, doc: SourceDocument, registry: Registry) -> ScenarioResult:
    """Run one scenario document."""
    started = time.perf_counter()
    result = ScenarioResult(doc.file, doc.name or path.stem, doc.location.line)
    problems = _validate_scenario(doc, registry)
    if problems:
        result.error = "scenario does not fit its schema:\n  " + "\n  ".join(problems)
        return result
    spec = doc.data["spec"]
    try:
        now = parse_moment(spec.get("now", "2026-01-01T00:00:00+00:00"))
    except ValueError as exc:
        result.error = str(exc)
        return result
    bundle_path = (path.parent / spec.get("bundle", ".")).resolve()
    bases = {str(name): (path.parent / str(where)).resolve() for name, where in (spec.get("bases") or {}).items()}
    ctx = ScenarioContext(path.resolve(), registry, bundle_path, now, facts=to_plain(spec.get("facts") or {}),
                          bases=bases)
    try:
        for index, step in enumerate(spec["steps"]):
            kinds = [k for k in step if k not in ("name", "description")]
            kind = kinds[0]
            line = locate(spec["steps"], f"/{index}").line
            step_spec: StepSpec = registry.steps[kind]
            try:
                step_spec.run(ctx, to_plain(step[kind]), _StepInfo(index, kind, step, line))
            except StepFailure as exc:
                result.steps.append(StepOutcome(index, kind, line, False, str(exc)))
                break
            except Exception as exc:  # noqa: BLE001 - a crashing step is a failure with its type, not a crash
                from regelwerk.errors import RegelwerkError

                label = type(exc).__name__
                result.steps.append(StepOutcome(index, kind, line, False,
                                                f"unexpected {label}: {exc}" if not isinstance(exc, RegelwerkError)
                                                else f"{label}: {exc}"))
                break
            result.steps.append(StepOutcome(index, kind, line, True))
    finally:
        _collect_coverage(ctx)
        ctx.close()
        result.seconds = time.perf_counter() - started
    return result


def _collect_coverage(ctx: ScenarioContext) -> None:
    """With coverage on: count the bundle's items; read the workflow transitions and fired schedule moments from the
    scenario's store."""
    from regelwerk import coverage

    collector = coverage.current()
    if collector is None or ctx._compiled is None:
        return
    try:
        key = os.path.relpath(ctx.bundle_path)
    except ValueError:
        key = str(ctx.bundle_path)
    collector.add_bundle(key, ctx._compiled)
    engine = ctx.services.get("engine")
    store = getattr(engine, "store", None)
    if store is not None:
        collector.hits.update(coverage.workflow_hits(ctx._compiled, store))
    for target in (engine, ctx.services.get("schedule_store")):
        if target is not None:
            collector.hits.update(coverage.schedule_hits(ctx._compiled, target))


@dataclass(frozen=True)
class _StepInfo:
    index: int
    kind: str
    data: YMap
    line: int

    def pointer_line(self, pointer: str) -> int:
        """The line of a pointer inside this step."""
        return locate(self.data, pointer).line


def run_scenarios(paths: Iterable[str | os.PathLike[str]], registry: Registry) -> list[ScenarioResult]:
    """Run every scenario file under ``paths``."""
    results: list[ScenarioResult] = []
    for file in find_scenario_files(paths):
        results.extend(run_scenario_file(file, registry))
    return results


def junit_xml(results: Iterable[ScenarioResult]) -> str:
    """A JUnit XML report of scenario results (for CI systems)."""
    import xml.etree.ElementTree as ET  # imported when a report is asked for

    results = list(results)
    suite = ET.Element("testsuite", name="regelwerk", tests=str(len(results)),
                       failures=str(sum(not r.passed for r in results)),
                       time=f"{sum(r.seconds for r in results):.3f}")
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=r.file, name=r.name, time=f"{r.seconds:.3f}")
        if not r.passed:
            failure = ET.SubElement(case, "failure", message=(r.failures() or ["failed"])[0][:300])
            failure.text = "\n".join(r.failures())
    return ET.tostring(suite, encoding="unicode")


# --- core step types --------------------------------------------------------------------------


def _diag_matches(diag: Diagnostic, expected: Mapping[str, Any], base: Path) -> bool:
    for key in ("code", "line", "column", "pointer", "severity"):
        if key in expected:
            actual = diag.severity.value if key == "severity" else getattr(diag, key)
            if actual != expected[key]:
                return False
    if "file" in expected:
        wanted = (base / expected["file"]).resolve()
        if Path(diag.file).resolve() != wanted and not diag.file.endswith(str(expected["file"])):
            return False
    return not ("message" in expected and str(expected["message"]) not in diag.message)


def step_expect_diagnostics(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """Load a bundle that must fail (or warn) and compare its diagnostics with the expected ones."""
    target = ctx.resolve(args.get("bundle", ".")) if args.get("bundle") else ctx.bundle_path
    bundle = ctx.load(target)
    try:
        compiled = compile_bundle(bundle, ctx.registry)
        diagnostics = list(compiled.warnings)
    except DefinitionError as exc:
        diagnostics = list(exc.diagnostics)
    expected = args.get("diagnostics", [])
    exact = args.get("exactly", True)
    unmatched = list(diagnostics)
    missing = []
    for want in expected:
        match = next((d for d in unmatched if _diag_matches(d, want, ctx.file.parent)), None)
        if match is None:
            missing.append(want)
        else:
            unmatched.remove(match)
    problems = []
    if missing:
        problems.append("expected but not reported: " + "; ".join(str(m) for m in missing))
    if exact and unmatched:
        problems.append("reported but not expected:\n" + format_diagnostics(unmatched))
    if problems:
        raise StepFailure("\n".join(problems) + ("\nall reported:\n" + format_diagnostics(diagnostics)
                                                  if diagnostics else "\nnothing was reported"))


def step_set_facts(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """Merge facts into the scenario's facts (shallow, by top-level key)."""
    if not isinstance(args, dict):
        raise StepFailure("set_facts takes a mapping")
    ctx.facts.update(args)


def step_set_clock(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """Set the scenario clock to a moment (without firing anything)."""
    ctx.now = parse_moment(args)


def register_core_steps(registry: Registry, plugin: str) -> None:
    """The step types every scenario has."""
    diag_item = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "code": {"type": "string"}, "file": {"type": "string"}, "line": {"type": "integer"},
            "column": {"type": "integer"}, "pointer": {"type": "string"}, "message": {"type": "string"},
            "severity": {"enum": ["error", "warning"]},
        },
    }
    registry.add_step(StepSpec("expect_diagnostics", plugin, step_expect_diagnostics, {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "bundle": {"type": "string", "description": "The bundle that must fail, relative to the scenario."},
            "exactly": {"type": "boolean", "description": "Fail on diagnostics not listed (default true)."},
            "diagnostics": {"type": "array", "items": diag_item},
        },
    }, "a bundle that must fail (or warn), with the expected diagnostics"))
    registry.add_step(StepSpec("set_facts", plugin, step_set_facts, {"type": "object"},
                               "merge facts into the scenario"))
    registry.add_step(StepSpec("set_clock", plugin, step_set_clock, {"$ref": "common.json#/$defs/dateTime"},
                               "set the scenario clock"))


def iter_results_lines(results: list[ScenarioResult]) -> Iterator[str]:
    """Text lines of a test run: one per scenario, failures, then the summary."""
    for r in results:
        yield f"{'PASS' if r.passed else 'FAIL'} {r.file}::{r.name} ({r.seconds * 1000:.0f} ms)"
    failures = [f for r in results for f in r.failures()]
    if failures:
        yield ""
        yield "Failures:"
        yield from failures
    passed = sum(r.passed for r in results)
    yield ""
    yield f"scenarios: {passed} passed, {len(results) - passed} failed"

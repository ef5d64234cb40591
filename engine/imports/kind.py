"""The ``Import`` kind: declared spreadsheet columns, compiled into an :class:`ImportSpec`.

Diagnostic codes (documented in docs/imports.md):

- RW950 two columns (or a column and an extra attribute) answer to the same header.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from regelwerk.imports.columns import Column, ImportSpec, normalise
from regelwerk.registry import IdDecl, KindSpec, Registry, StepSpec

if TYPE_CHECKING:
    from regelwerk.compiler import CompileContext
    from regelwerk.scenarios import ScenarioContext
    from regelwerk.source import SourceDocument

__all__ = ["compile_import", "register", "step_import_organisation"]


def _column(item: Any, extra: bool) -> Column:
    return Column(id=str(item["id"]), label=str(item.get("label", "")), type=str(item.get("type", "text")),
                  required=bool(item.get("required", False)) and not extra,
                  aliases=tuple(str(a) for a in item.get("aliases", ())), max_length=int(item.get("max_length", 0)),
                  description=str(item.get("description", "")), extra=extra)


def compile_import(ctx: CompileContext, doc: SourceDocument) -> ImportSpec:
    """Compile an Import: every header (id, label, alias) must select exactly one column."""
    spec = doc.spec
    owners: dict[str, str] = {}
    columns: list[Column] = []
    extra: list[Column] = []
    for key, target, is_extra in (("columns", columns, False), ("extra_attributes", extra, True)):
        for index, item in enumerate(spec.get(key, ())):
            column = _column(item, is_extra)
            target.append(column)
            for name in dict.fromkeys(normalise(n) for n in column.names()):
                if name in owners and owners[name] != column.id:
                    ctx.report("RW950", f"header {name!r} would name both {owners[name]!r} and {column.id!r}",
                               f"/spec/{key}/{index}", hint="give each header to one column")
                owners.setdefault(name, column.id)
    return ImportSpec(doc.name, str(spec.get("label", doc.name)), tuple(columns), tuple(extra),
                      tuple(str(s) for s in spec.get("sheets", ())))


def step_import_organisation(ctx: ScenarioContext, args: Any, info: Any) -> None:
    """Import an organisation (``regelwerk import organisation``) into the scenario's store: ``{file | files,
    expect?: {departments|functions|roles|tasks|employees|relations: count}, expect_errors?: [text],
    skip_invalid?: bool, absent?: keep|end|report, expect_absent?: [id]}``. The files lie beside the scenario's
    folder; the import runs at the scenario's clock."""
    from regelwerk.imports.organisation import import_organisation
    from regelwerk.scenarios import StepFailure
    from regelwerk.scheduling.kind import _sa_engine, scenario_target

    names = [str(args["file"])] if "file" in args else [str(f) for f in args.get("files") or ()]
    if not names:
        raise StepFailure("import_organisation: give `file` or `files`")
    paths = []
    for name in names:
        path = ctx.resolve(name)
        if not path.is_relative_to(ctx.file.parent.resolve().parent):
            raise StepFailure(f"{name}: only files beside the scenario's folder can be imported")
        paths.append(path)
    result = import_organisation(_sa_engine(scenario_target(ctx)), paths, compiled=ctx.compiled,
                                 skip_invalid=bool(args.get("skip_invalid", False)), now=ctx.now,
                                 absent=str(args.get("absent", "keep")))
    ctx.services["schedule_imported"] = True
    errors = [str(e) for e in result.errors] + [f"row {r.row}: {'; '.join(r.errors)}" for r in result.rejected]
    wanted = [str(w) for w in args.get("expect_errors") or ()]
    missing = [w for w in wanted if not any(w in e for e in errors)]
    if missing or (errors and not wanted):
        raise StepFailure(f"import errors {errors}, expected {wanted}")
    counts = {**dict(result.imported), "relations": result.relations_added}
    wrong = [f"{what}: expected {n}, got {counts.get(what, 0)}" for what, n in dict(args.get("expect") or {}).items()
             if counts.get(what, 0) != n]
    if "expect_absent" in args:
        found = sorted(a.id for a in result.absent)
        if found != sorted(str(i) for i in args["expect_absent"]):
            wrong.append(f"absent: expected {sorted(args['expect_absent'])}, found {found}")
    if wrong:
        raise StepFailure("import_organisation: " + "; ".join(wrong))


def register(registry: Registry, plugin: str) -> None:
    """Register the Import kind, the ``import_organisation`` scenario step and the ``import organisation``
    command."""
    from regelwerk.validation import load_shipped_schema

    registry.add_kind(KindSpec(
        kind="Import", plugin=plugin, schema=load_shipped_schema("import.json"), compile=compile_import,
        ids=(IdDecl("/spec/columns/*/id", "column"), IdDecl("/spec/extra_attributes/*/id", "extra attribute")),
        description="the columns a spreadsheet import accepts (Dutch and English headers, types, extras)",
        schema_file="import.json",
    ))
    counts = {"type": "integer", "minimum": 0}
    registry.add_step(StepSpec("import_organisation", plugin, step_import_organisation, {
        "type": "object", "additionalProperties": False,
        "properties": {
            "file": {"type": "string", "description": "A workbook (all its sheets) or one CSV file."},
            "files": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                      "description": "CSV files named after what they hold (afdelingen.csv, ...)."},
            "skip_invalid": {"type": "boolean"},
            "absent": {"enum": ["keep", "end", "report"],
                       "description": "What happens to employees and units the store has and the files do not."},
            "expect_absent": {"type": "array", "items": {"type": "string"},
                              "description": "The ids the import finds absent (with absent: report or end)."},
            "expect": {"type": "object", "additionalProperties": False, "properties": {
                name: counts for name in ("departments", "functions", "roles", "tasks", "employees", "relations")}},
            "expect_errors": {"type": "array", "items": {"type": "string"}},
        },
        "oneOf": [{"required": ["file"]}, {"required": ["files"]}],
    }, "import afdelingen, functies, rollen, taken and medewerkers (a workbook or CSV files) into the store"))
    from regelwerk.imports.command import organisation_command

    group = registry.commands.get("import")
    if group is None:  # the scheduler's area adds the group with `import employees`; stand alone without it
        import click

        group = click.Group("import", help="Import data into a store.")
        registry.add_command(group)
    group.add_command(organisation_command)

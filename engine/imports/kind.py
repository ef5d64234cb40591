"""The ``Import`` kind: declared spreadsheet columns, compiled into an :class:`ImportSpec`.

Diagnostic codes (documented in docs/imports.md):

- RW950 two columns (or a column and an extra attribute) answer to the same header.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from regelwerk.imports.columns import Column, ImportSpec, normalise
from regelwerk.registry import IdDecl, KindSpec, Registry

if TYPE_CHECKING:
    from regelwerk.compiler import CompileContext
    from regelwerk.source import SourceDocument

__all__ = ["compile_import", "register"]


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


def register(registry: Registry, plugin: str) -> None:
    """Register the Import kind and the ``import organisation`` command."""
    from regelwerk.validation import load_shipped_schema

    registry.add_kind(KindSpec(
        kind="Import", plugin=plugin, schema=load_shipped_schema("import.json"), compile=compile_import,
        ids=(IdDecl("/spec/columns/*/id", "column"), IdDecl("/spec/extra_attributes/*/id", "extra attribute")),
        description="the columns a spreadsheet import accepts (Dutch and English headers, types, extras)",
        schema_file="import.json",
    ))
    from regelwerk.imports.command import organisation_command

    group = registry.commands.get("import")
    if group is None:  # the scheduler's area adds the group with `import employees`; stand alone without it
        import click

        group = click.Group("import", help="Import data into a store.")
        registry.add_command(group)
    group.add_command(organisation_command)

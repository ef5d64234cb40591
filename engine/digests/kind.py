"""The ``Digest`` kind: schema, references and compiler.

Diagnostic codes (docs/diagnostics.md):

- RW830 a list names a digest source no plugin registered.
- RW831 the digest's template shows a field the digest does not provide (a loop over a list it does not have, an
  entry field its source does not declare, or another field outside the loops).
- RW832 a digest's schedule is relative to a fact (``anchor``): a digest has one moment for everyone.
- RW833 a list's ``with:`` does not fit its source's parameters.
- RW834 ``to.role`` is not a role of any PermissionMatrix of the bundle.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from regelwerk.diagnostics import Diagnostic, did_you_mean
from regelwerk.digests.model import Digest, DigestList
from regelwerk.registry import KindSpec, RefDecl, Registry
from regelwerk.templates._syntax import Loop, Placeholder, TextTemplate

if TYPE_CHECKING:
    from regelwerk.compiler import CompileContext
    from regelwerk.source import SourceDocument

__all__ = ["DIGEST_FIELDS", "compile_digest", "register"]

#: The fields every digest gives its template besides its lists (``counts.<list>`` too: how many cases a list has).
DIGEST_FIELDS = ("digest.label", "period.date", "period.key", "recipient.id", "recipient.name")
#: The most cases one list shows (``limit``); ``counts.<list>`` still says how many there were.
DEFAULT_LIMIT = 200


def compile_digest(ctx: CompileContext, doc: SourceDocument) -> Digest | None:
    """Compile a Digest: its schedule, its lists' sources and parameters, its role and its template's fields."""
    from regelwerk.scheduling.schedule import compile_schedule

    spec = doc.spec
    ok = True
    schedule = compile_schedule(spec["schedule"], "/spec/schedule", ctx.report)
    if schedule is not None and schedule.form not in ("cron", "dates"):
        ctx.report("RW832", "a digest's schedule cannot be relative to a fact: it has one moment for everyone",
                   "/spec/schedule", 'use a cron expression ({cron: "0 7 * * MON"}) or fixed dates')
        ok = False
    sources = ctx.registry.digest_sources
    lists: list[DigestList] = []
    for name, item in spec["lists"].items():
        pointer = f"/spec/lists/{name}"
        source = sources.get(item["source"])
        if source is None:
            ctx.report("RW830", f"no digest source {item['source']!r} is registered", pointer + "/source",
                       did_you_mean(item["source"], sources) or (
                           "registered digest sources: " + ", ".join(sorted(sources)) if sources
                           else "no installed plugin registers a digest source"))
            ok = False
            continue
        params = dict(item.get("with") or {})
        if not _params_fit(ctx, source.params_schema, params, pointer + "/with", item["source"]):
            ok = False
        lists.append(DigestList(name, item["source"], params))
    to = spec["to"]
    if not _role_known(ctx, to["role"]):
        ok = False
    if not _template_fits(ctx, spec["template"], lists):
        ok = False
    if not ok or schedule is None:
        return None
    return Digest(doc.name, spec.get("label", doc.name), schedule, spec.get("once_per", "occurrence"), to["role"],
                  to.get("if_nobody", "refuse"), spec["template"], tuple(lists), int(spec.get("limit", DEFAULT_LIMIT)))


def _params_fit(ctx: CompileContext, schema: Mapping[str, Any], params: Mapping[str, Any], pointer: str,
                source: str) -> bool:
    from jsonschema import Draft202012Validator

    fits = True
    for error in sorted(Draft202012Validator(dict(schema)).iter_errors(dict(params)), key=lambda e: list(e.path)):
        where = pointer + "".join(f"/{p}" for p in error.path)
        keys = sorted((schema.get("properties") or {}).keys())
        ctx.report("RW833", f"'with' does not fit digest source {source!r}: {error.message}", where,
                   ("its parameters: " + ", ".join(keys)) if keys else f"{source} takes no parameters")
        fits = False
    return fits


def _role_known(ctx: CompileContext, role: str) -> bool:
    known: set[str] = set()
    for matrix in ctx.documents("PermissionMatrix"):
        spec = matrix.data.get("spec") if isinstance(matrix.data, Mapping) else None
        roles = spec.get("roles") if isinstance(spec, Mapping) else None
        for item in roles if isinstance(roles, list) else ():
            if isinstance(item, Mapping) and isinstance(item.get("id"), str):
                known.add(item["id"])
    if role in known:
        return True
    ctx.report("RW834", f"role {role!r} is not a role of any PermissionMatrix", "/spec/to/role",
               did_you_mean(role, known) or (f"roles: {', '.join(sorted(known)[:15])}" if known
                                             else "the bundle has no PermissionMatrix, so nobody holds a role"))
    return False


def _template_fits(ctx: CompileContext, name: str, lists: list[DigestList]) -> bool:
    """RW831 for every field the template shows that this digest does not provide, at the template's line."""
    from regelwerk.templates.kind import text_position

    template = ctx.compiled("Template", name)
    documents = [d for d in ctx.documents("Template") if d.name == name]
    if template is None or not documents:
        return True  # the template's own errors (or RW302) say what is wrong
    tdoc = documents[-1]
    fields = {part.name: ctx.registry.digest_sources[part.source].fields for part in lists}
    plain = set(DIGEST_FIELDS) | {f"counts.{part.name}" for part in lists}
    fits = True

    def problem(key: str, offset: int, message: str, hint: str) -> None:
        nonlocal fits
        file, line, column = text_position(tdoc.spec, key, tdoc.spec[key], offset)
        ctx.diagnostics.append(Diagnostic("RW831", message, file, line, column, f"/spec/{key}", hint))
        fits = False

    def check_plain(key: str, placeholder: Placeholder) -> None:
        if placeholder.path not in plain:
            problem(key, placeholder.offset, f"digest {ctx.doc.name if ctx.doc else ''!r} does not provide "
                    f"{placeholder.path!r} to template {name!r}",
                    did_you_mean(placeholder.path, plain) or "a digest provides: " + ", ".join(sorted(plain)))

    parsed: TextTemplate
    for key, parsed in (("subject", template.subject), ("body", template.body)):
        for segment in parsed.segments:
            if isinstance(segment, Placeholder):
                check_plain(key, segment)
            elif isinstance(segment, Loop):
                known = fields.get(segment.path)
                if known is None:
                    problem(key, segment.offset, f"the digest has no list {segment.path!r}",
                            did_you_mean(segment.path, fields) or "its lists: " + ", ".join(sorted(fields)))
                    continue
                for placeholder in segment.body:
                    if not isinstance(placeholder, Placeholder):
                        continue
                    if not placeholder.var:
                        check_plain(key, placeholder)
                    elif placeholder.path not in known:
                        problem(key, placeholder.offset, f"the cases of list {segment.path!r} have no field "
                                f"{placeholder.path!r}", did_you_mean(placeholder.path, known)
                                or "their fields: " + ", ".join(sorted(known)))
    return fits


_ONCE_PER = {"occurrence": "", "week": ", één keer per week (het eerste moment van de week)",
             "month": ", één keer per maand (het eerste moment van de maand)"}


def report_section(page: Any) -> str:
    """The report's section: per digest when it goes, to whom and what it lists (docs/report.md)."""
    from regelwerk.report.page import esc
    from regelwerk.report.schedules import describe_schedule

    parts = []
    for name, digest in page.of_kind("Digest").items():
        nobody = "overslaan" if digest.if_nobody == "skip" else "een incident van de tick"
        body = (f'<p class="desc">Gaat {esc(describe_schedule(digest.schedule))}{esc(_ONCE_PER[digest.once_per])} '
                f"naar iedereen met de rol <b>{esc(digest.role)}</b>, één mail per persoon met template "
                f"<b>{esc(digest.template)}</b>. Ieder ziet alleen de zaken die de rechten hem laten lezen; wie "
                f"niets heeft, krijgt geen mail. Heeft niemand de rol: {esc(nobody)}.</p>")
        rows = [(esc(part.name), esc(part.source),
                 esc(", ".join(f"{k}: {page.words.value(v)}" for k, v in sorted(part.params.items())) or "—"))
                for part in digest.lists]
        body += page.table(["Lijst", "Bron", "Instellingen"], rows)
        parts.append(page.item("Digest", name, digest.label, body))
    return "".join(parts)


def register(registry: Registry, plugin: str) -> None:
    """Register the Digest kind and its section of the report."""
    from regelwerk.registry import ReportSectionSpec
    from regelwerk.validation import load_shipped_schema

    registry.add_kind(KindSpec(
        kind="Digest", plugin=plugin, schema=load_shipped_schema("digest.json"), compile=compile_digest,
        refs=(RefDecl("/spec/template", kind="Template"),),
        description="one mail per recipient per period listing the cases they may read (a weekly overview)",
        schema_file="digest.json",
    ))
    registry.add_report_section(ReportSectionSpec(
        "overzichtsmails", plugin, "Overzichtsmails", report_section, kinds=("Digest",), order=97,
        glossary={"schedule": "het moment", "once_per": "hoe vaak", "to": "de ontvangers", "lists": "de lijsten",
                  "template": "de template", "limit": "het maximum per lijst"}))

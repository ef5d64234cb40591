"""The ``Template`` and ``MailContext`` kinds: schemas, ids, references and compilers.

Diagnostic codes (documented in docs/templates.md):

- RW900 template syntax error (reported at the line inside the YAML block).
- RW901 a template uses a field its context does not provide.
- RW902 a mail context cannot extend the one named (it has errors or extends this one).
- RW903 a loop over a field that is not a list, a list's field used outside its loop, or a loop in a subject.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from regelwerk.diagnostics import Diagnostic, did_you_mean
from regelwerk.registry import IdDecl, KindSpec, RefDecl, Registry
from regelwerk.source import YMap, locate
from regelwerk.templates._syntax import Loop, Placeholder, TextTemplate, parse_text
from regelwerk.templates.model import MailContext, MailField, Template

if TYPE_CHECKING:
    from regelwerk.compiler import CompileContext
    from regelwerk.source import SourceDocument

__all__ = ["compile_mail_context", "compile_template", "register", "text_position"]


def text_position(parent: Any, key: str, text: str, offset: int) -> tuple[str, int, int]:
    """File, line and column of ``offset`` inside the scalar ``parent[key]``.

    Multi-line values are block scalars (``|``): their text starts on the line after the
    indicator, indented (by convention) two columns deeper than the key. Single-line values
    start at the scalar itself.
    """
    value_loc = parent.value_locs.get(key) if isinstance(parent, YMap) else None
    key_loc = parent.key_locs.get(key) if isinstance(parent, YMap) else None
    if value_loc is None:
        return "", 0, 0
    before = text[:offset]
    line_in_text = before.count("\n")
    column_in_line = offset - (before.rfind("\n") + 1)
    if "\n" in text.rstrip("\n"):
        indent = (key_loc.column + 2) if key_loc is not None else 1
        return value_loc.file, value_loc.line + 1 + line_in_text, indent + column_in_line
    return value_loc.file, value_loc.line, value_loc.column + column_in_line


def _parse(ctx: CompileContext, spec: Any, key: str, pointer: str) -> TextTemplate:
    text = spec[key]
    parsed, problems = parse_text(text)
    for problem in problems:
        file, line, column = text_position(spec, key, text, problem.offset)
        if not file and ctx.doc is not None:
            where = locate(ctx.doc.data, pointer)
            file, line, column = where.file, where.line, where.column
        ctx.diagnostics.append(Diagnostic("RW900", f"template syntax error: {problem.message}", file, line, column,
                                          pointer, problem.hint))
    return parsed


def compile_mail_context(ctx: CompileContext, doc: SourceDocument) -> MailContext:
    """Compile a MailContext (its own fields plus those of the context it extends)."""
    spec = doc.spec
    fields: dict[str, MailField] = {}
    parent_name = spec.get("extends")
    if parent_name:
        parent = ctx.compiled("MailContext", parent_name)
        if parent is None and any(d.name == parent_name for d in ctx.documents("MailContext")):
            ctx.report("RW902", f"mail context {parent_name!r} cannot be used (it has errors or extends this one)",
                       "/spec/extends")
        if parent is not None:
            fields.update({f.path: f for f in parent.fields})
    for item in spec.get("fields", []):
        path = item["path"]
        fields[path] = MailField(path, item.get("label", ""), bool(item.get("optional", False)),
                                 bool(item.get("list", False)))
    return MailContext(doc.name, spec.get("label", doc.name), tuple(sorted(fields.values(), key=lambda f: f.path)))


def compile_template(ctx: CompileContext, doc: SourceDocument) -> Template:
    """Compile a Template: parse subject and body, check every field against the declared context."""
    spec = doc.spec
    subject = _parse(ctx, spec, "subject", "/spec/subject")
    body = _parse(ctx, spec, "body", "/spec/body")
    context: MailContext | None = ctx.compiled("MailContext", spec["context"])
    optional: set[str] = set()
    if context is not None:
        known = context.paths
        for key, parsed in (("subject", subject), ("body", body)):
            for placeholder in parsed.placeholders:
                declared = context.field(placeholder.path)
                if declared is None:
                    file, line, column = text_position(spec, key, spec[key], placeholder.offset)
                    hint = did_you_mean(placeholder.path, known) or ("fields of this context: " + ", ".join(known))
                    ctx.diagnostics.append(Diagnostic(
                        "RW901", f"field {placeholder.path!r} is not provided by mail context {context.name!r}",
                        file, line, column, f"/spec/{key}", hint))
                elif declared.optional:
                    optional.add(declared.path)
        _check_loops(ctx, spec, context, subject, body, optional)
    return Template(doc.name, spec.get("label", doc.name), spec["context"], spec.get("purpose", "general"),
                    subject, body, frozenset(optional))


def _loop_problem(ctx: CompileContext, spec: Any, key: str, offset: int, message: str, hint: str) -> None:
    file, line, column = text_position(spec, key, spec[key], offset)
    ctx.diagnostics.append(Diagnostic("RW903", message, file, line, column, f"/spec/{key}", hint))


def _check_loops(ctx: CompileContext, spec: Any, context: MailContext, subject: TextTemplate, body: TextTemplate,
                 optional: set[str]) -> None:
    """RW903: a loop runs over a field the context declares ``list: true``; a list (and its entries' fields) is
    used only inside a loop over it; a subject (one header line) has no loop."""
    lists = tuple(f.path for f in context.fields if f.list)
    for loop in subject.loops:
        _loop_problem(ctx, spec, "subject", loop.offset, "a subject cannot hold a loop (it is one line)",
                      "put the loop in the body")
    for loop in body.loops:
        declared = context.field(loop.path)
        if declared is None:
            if not loop.fields():  # else RW901 already said so (the loop's entry fields name it)
                _loop_problem(ctx, spec, "body", loop.offset, f"{loop.path!r} is not a field of mail context "
                              f"{context.name!r}", ("lists of this context: " + ", ".join(lists)) if lists else
                              f"declare it in mail context {context.name!r} with list: true")
            continue
        if not declared.list:
            hint = ("lists of this context: " + ", ".join(lists)) if lists else \
                f"declare it in mail context {context.name!r} with list: true"
            _loop_problem(ctx, spec, "body", loop.offset, f"{loop.path!r} is not a list of mail context "
                          f"{context.name!r}: a loop runs over a field declared list: true", hint)
        elif declared.optional:
            optional.add(declared.path)
    for key, parsed in (("subject", subject), ("body", body)):
        plain = [s for s in parsed.segments if not isinstance(s, (str, Loop))]
        plain += [p for loop in parsed.loops for p in loop.body if isinstance(p, Placeholder) and not p.var]
        for placeholder in plain:
            owner = next((name for name in lists if placeholder.path == name
                          or placeholder.path.startswith(name + ".")), None)
            if owner is not None:
                _loop_problem(ctx, spec, key, placeholder.offset,
                              f"{placeholder.path!r} is (a field of) the list {owner!r}: it is used only inside a "
                              "loop over it",
                              f"{{{{ for item in {owner} }}}} ... {{{{ item.field }}}} ... {{{{ end }}}}")


def register(registry: Registry, plugin: str) -> None:
    """Register the Template and MailContext kinds."""
    from regelwerk.validation import load_shipped_schema

    registry.add_kind(KindSpec(
        kind="MailContext", plugin=plugin, schema=load_shipped_schema("mailcontext.json"),
        compile=compile_mail_context, ids=(IdDecl("/spec/fields/*/path", "field"),),
        refs=(RefDecl("/spec/extends", kind="MailContext"),),
        description="the fields a kind of e-mail may use (candidate, vacancy, company, sender...)",
        schema_file="mailcontext.json",
    ))
    registry.add_kind(KindSpec(
        kind="Template", plugin=plugin, schema=load_shipped_schema("template.json"), compile=compile_template,
        refs=(RefDecl("/spec/context", kind="MailContext"),),
        description="an e-mail template (subject and body with {{ field }} placeholders)",
        schema_file="template.json",
    ))

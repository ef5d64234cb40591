"""Templates: the logic-less syntax, rendering, and load-time checks of fields against the context."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from regelwerk.bundle import load_bundle
from regelwerk.compiler import compile_bundle
from regelwerk.diagnostics import DefinitionError
from regelwerk.templates import Placeholder, TemplateRenderError, parse_text

ROOT = Path(__file__).resolve().parent.parent
STANDARD = ROOT / "definitions" / "standard" / "recruitment"

CONTEXT = """\
apiVersion: regelwerk/v1
kind: MailContext
metadata: {name: mini}
spec:
  fields:
    - {path: candidate.first_name}
    - {path: vacancy.title}
    - {path: sender.signature, optional: true}
"""


def test_parse_splits_literals_and_placeholders() -> None:
    parsed, problems = parse_text("Beste {{ candidate.first_name }}, over {{vacancy.title}}.")
    assert problems == []
    assert parsed.segments == ("Beste ", Placeholder("candidate.first_name", 6), ", over ",
                               Placeholder("vacancy.title", 39), ".")
    assert parsed.fields() == ("candidate.first_name", "vacancy.title")


@pytest.mark.parametrize(("text", "fragment"), [
    ("Hallo {{ naam", "not closed"),
    ("Hallo {% if x %}ja{% endif %}", "logic-less"),
    ("{{ candidate.name | upper }}", "not a field path"),
    ("{{ candidate.name() }}", "not a field path"),
    ("{{ x[0] }}", "not a field path"),
    ("{{ }}", "not a field path"),
    ("klaar }}", "without a matching"),
    ("{# commentaar #}", "logic-less"),
])
def test_parse_rejects_anything_but_paths(text: str, fragment: str) -> None:
    _, problems = parse_text(text)
    assert problems and fragment in problems[0].message


def _bundle(tmp_path: Path, template: str) -> Path:
    (tmp_path / "context.yaml").write_text(CONTEXT, encoding="utf-8")
    (tmp_path / "template.yaml").write_text(template, encoding="utf-8")
    return tmp_path


def _compile(path: Path, registry):  # type: ignore[no-untyped-def]
    return compile_bundle(load_bundle(path), registry)


def test_unknown_field_is_a_diagnostic_at_its_line(tmp_path: Path, registry) -> None:  # type: ignore[no-untyped-def]
    path = _bundle(tmp_path, """\
apiVersion: regelwerk/v1
kind: Template
metadata: {name: t}
spec:
  context: mini
  subject: "Over {{ vacancy.title }}"
  body: |
    Beste {{ candidate.first_name }},

    Je salaris wordt {{ offer.salary }}.
""")
    with pytest.raises(DefinitionError) as caught:
        _compile(path, registry)
    [diag] = caught.value.diagnostics
    assert diag.code == "RW901"
    assert "offer.salary" in diag.message and diag.file.endswith("template.yaml")
    assert (diag.line, diag.column) == (10, 22)


def test_syntax_error_is_reported_at_the_yaml_line(tmp_path: Path, registry) -> None:  # type: ignore[no-untyped-def]
    path = _bundle(tmp_path, """\
apiVersion: regelwerk/v1
kind: Template
metadata: {name: t}
spec:
  context: mini
  subject: Over {{ vacancy.title
  body: |
    regel een
    {% for x in y %}
""")
    with pytest.raises(DefinitionError) as caught:
        _compile(path, registry)
    found = sorted((d.code, d.line) for d in caught.value.diagnostics)
    assert found == [("RW900", 6), ("RW900", 9)]


def test_unknown_context_is_a_dangling_reference(tmp_path: Path, registry) -> None:  # type: ignore[no-untyped-def]
    path = _bundle(tmp_path, """\
apiVersion: regelwerk/v1
kind: Template
metadata: {name: t}
spec: {context: minni, subject: x, body: y}
""")
    with pytest.raises(DefinitionError) as caught:
        _compile(path, registry)
    [diag] = caught.value.diagnostics
    assert diag.code == "RW302" and "mini" in diag.hint


def test_render_fills_formats_and_refuses_blanks(tmp_path: Path, registry) -> None:  # type: ignore[no-untyped-def]
    path = _bundle(tmp_path, """\
apiVersion: regelwerk/v1
kind: Template
metadata: {name: t}
spec:
  context: mini
  subject: "{{ vacancy.title }}"
  body: "Beste {{ candidate.first_name }}.{{ sender.signature }}"
""")
    template = _compile(path, registry).get("Template", "t")
    mail = template.render({"candidate": {"first_name": "Anna"}, "vacancy": {"title": "Kok\r\nBcc: x@evil"}})
    assert mail.body == "Beste Anna."
    assert mail.subject == "Kok Bcc: x@evil"  # no header injection: line breaks flattened
    with pytest.raises(TemplateRenderError) as caught:
        template.render({"candidate": {"first_name": ""}, "vacancy": {"title": "Kok"}})
    assert caught.value.missing == ("candidate.first_name",)


def test_a_value_a_mail_cannot_show_is_a_render_refusal_naming_the_field(tmp_path: Path, registry) -> None:  # type: ignore[no-untyped-def]
    """An object (or a list holding one) where the mail shows text was a bare ``TypeError`` out of the render, which
    the runtime took for the action's failure; now the refusal names each such field beside the missing ones."""
    path = _bundle(tmp_path, """\
apiVersion: regelwerk/v1
kind: Template
metadata: {name: t}
spec:
  context: mini
  subject: "{{ vacancy.title }}"
  body: "Beste {{ candidate.first_name }}.{{ sender.signature }}"
""")
    template = _compile(path, registry).get("Template", "t")
    with pytest.raises(TemplateRenderError) as caught:
        template.render({"candidate": {"first_name": {"x": 1}}, "vacancy": {"title": ["Kok", {"y": 2}]},
                         "sender": {"signature": ""}})
    assert caught.value.unusable == (("candidate.first_name", "an object"),
                                     ("vacancy.title", "a list holding an object"))
    assert caught.value.missing == () and "candidate.first_name holds an object" in str(caught.value)
    assert [e["field"] for e in caught.value.errors] == ["candidate.first_name", "vacancy.title"]


def test_render_never_reaches_attributes(tmp_path: Path, registry) -> None:  # type: ignore[no-untyped-def]
    path = _bundle(tmp_path, """\
apiVersion: regelwerk/v1
kind: Template
metadata: {name: t}
spec: {context: mini, subject: x, body: "{{ vacancy.title }}"}
""")
    template = _compile(path, registry).get("Template", "t")

    class Sneaky:
        title = "secret"

    with pytest.raises(TemplateRenderError):
        template.render({"vacancy": Sneaky()})


def test_dates_render_dutch(tmp_path: Path, registry) -> None:  # type: ignore[no-untyped-def]
    path = _bundle(tmp_path, """\
apiVersion: regelwerk/v1
kind: Template
metadata: {name: t}
spec: {context: mini, subject: x, body: "{{ vacancy.title }}"}
""")
    template = _compile(path, registry).get("Template", "t")
    assert template.render({"vacancy": {"title": date(2026, 3, 9)}}).body == "09-03-2026"


def test_standard_templates_compile(registry) -> None:  # type: ignore[no-untyped-def]
    compiled = compile_bundle(load_bundle(STANDARD), registry)
    names = set(compiled.of_kind("Template"))
    assert {"ontvangstbevestiging", "uitnodiging-interview", "afwijzing", "algemeen"} <= names
    consent = compiled.get("MailContext", "consent_mail")
    assert "candidate.first_name" in consent.paths and "consent.until" in consent.paths

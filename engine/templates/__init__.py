"""E-mail templates: logic-less ``{{ field.path }}`` text over declared mail contexts.

The ``Template`` kind names its ``MailContext``; every placeholder is checked against the
context's declared fields when the bundle compiles, so a missing field is a diagnostic at
the template's line, never a blank in a sent mail. See docs/templates.md.
"""

from __future__ import annotations

from regelwerk.templates._syntax import Placeholder, SyntaxProblem, TextTemplate, format_value, parse_text
from regelwerk.templates.model import MailContext, MailField, RenderedMail, Template, TemplateRenderError

__all__ = [
    "MailContext",
    "MailField",
    "Placeholder",
    "RenderedMail",
    "SyntaxProblem",
    "Template",
    "TemplateRenderError",
    "TextTemplate",
    "format_value",
    "parse_text",
]

"""Definitions in Dutch words for the report an HR manager signs: values, durations, conditions, schedules,
rights, and a sentence per difference from the standard.

Nothing here prints a JSON pointer or raw JSON: those stay in the consultant's folded detail (page.py).
Packs add the Dutch names of their fields through ``ReportSectionSpec.glossary``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from regelwerk.conditions import AllOf, AnyOf, Call, Compare, Const, FieldRef, Literal, NotOf, NowRef, parse_duration
from regelwerk.permissions.render import SCOPE_LABELS
from regelwerk.report._text import dutch_date, human_duration

__all__ = ["CORE_GLOSSARY", "Words", "sentence_for"]

_DURATION = re.compile(r"^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

#: Dutch names of the core's fields (a list key names its items: ``states`` -> "status").
#: A value with ``{new}``/``{old}`` is the whole sentence after the subject.
CORE_GLOSSARY: Mapping[str, str] = {
    "label": "de naam", "description": "de omschrijving", "states": "status", "transitions": "overgang",
    "groups": "statusgroep", "group": "de statusgroep", "from": "van", "to": "naar",
    "internal": "blijft in de status (intern)",
    "initial": "de beginstatus", "final": "eindstatus", "permission": "het benodigde recht",
    "guard": "de voorwaarde", "when": "de voorwaarde", "condition": "de voorwaarde", "after": "termijn",
    "duration": "de termijn", "event": "de gebeurtenis", "actions": "de acties",
    "on_enter": "de acties bij binnenkomst",
    "on_exit": "de acties bij vertrek", "roles": "rol", "grants": "toekenning", "denies": "weigering",
    "rights": "extra recht", "resources": "onderdeel", "scope": "het bereik", "rows": "regel", "inputs": "invoer",
    "outputs": "uitkomst", "hit_policy": "de beslisregel", "rules": "regel", "priority": "de prioriteit",
    "then": "de uitkomst", "with": "de instellingen", "archive": "archiefstatus", "resource_type": "het soort gegeven",
    "cron": "het rooster", "anchor": "het ankerpunt", "plus": "de termijn erna", "minus": "de termijn ervoor",
    "at": "het tijdstip", "dates": "de data", "inherits": "erft van", "users": "gebruiker",
    "arises": "valt {new} in plaats van {old}", "reason": "de reden", "except_roles": "de uitgezonderde rollen",
    "except_scope": "de uitzondering", "name": "de naam", "address": "het adres", "phone": "het telefoonnummer",
    "website": "de website", "signature": "de ondertekening", "of": "van", "field_groups": "de veldgroepen",
    "actions_labels": "de namen van de handelingen", "valid_from": "geldig vanaf", "valid_to": "geldig tot en met",
    "calendar": "de werkjaarkalender", "year": "jaar", "user_rights": "toegekend extra recht", "user": "gebruiker",
    "right": "recht", "feedback_rounds": "feedbackronde",
    "kind:Schedule": "Planning", "kind:Calculation": "Berekening", "kind:Workflow": "Workflow",
    "kind:DecisionTable": "Beslistabel", "kind:RuleSet": "Regelset", "kind:PermissionMatrix": "Rechtenmatrix",
    # values of the core's enumerations ("=value")
    "=manual": "handmatig", "=automatic": "automatisch", "=none": "geen", "=allow": "toestaan", "=deny": "weigeren",
    "=self": "de medewerker zelf", "=manager": "de leidinggevende", "=first": "de eerste passende regel",
    "=unique": "precies één passende regel", "=collect": "alle passende regels", "=any": "een passende regel",
    "=organisation": "de hele organisatie", "=department": "de afdeling", "=own": "eigen",
    "=direct_reports": "directe medewerkers", "=all_reports": "de hele lijn eronder",
}

_OPS = {"eq": "is", "ne": "is niet", "lt": "is kleiner dan", "le": "is ten hoogste", "gt": "is groter dan",
        "ge": "is ten minste", "in": "is een van", "not_in": "is geen van", "contains": "bevat",
        "matches": "past bij het patroon", "exists": "is ingevuld"}
_FACTS = {"actor.id": "de gebruiker", "actor": "de gebruiker", "actor.roles": "de rollen van de gebruiker",
          "actor.role": "de rol van de gebruiker", "employee.hire_date": "de datum in dienst",
          "employee.groups": "de groepen van de medewerker", "now": "nu"}
_OWNERS = {"actor": "de gebruiker", "employee": "de medewerker", "candidate": "de kandidaat",
           "vacancy": "de vacature", "resource": "het gegeven"}
_CODE_WORDS = {"and": "en", "or": "of", "not": "niet", "now": "nu", "True": "ja", "False": "nee", "None": "niets",
               "true": "altijd", "false": "nooit", "is": "is", "anything": "alles"}
ANCHORS = {
    "employee.hire_date": "de datum in dienst", "employee.leaving_date": "de datum uit dienst",
    "employee.birth_date": "de geboortedatum", "work_year.start": "het begin van het werkjaar",
    "work_year.middle": "het midden van het werkjaar", "work_year.end": "het einde van het werkjaar",
}
_SCOPES = SCOPE_LABELS


def _yes_no(value: bool) -> str:
    return "ja" if value else "nee"


@dataclass
class Words:
    """Renders definition values in Dutch, using the labels the bundle defines (states, rights, fields)."""

    functions: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)  # ids (states, rights, roles...) -> labels
    glossary: Mapping[str, str] = field(default_factory=lambda: dict(CORE_GLOSSARY))

    def label(self, ident: Any) -> str:
        """The label of an id the bundle defines, else the id."""
        return self.labels.get(str(ident), str(ident))

    def field_name(self, key: str) -> str:
        """A fact path in words: ``actor.id`` -> "de gebruiker", ``employee.hire_date`` -> "datum in dienst van de
        medewerker", ``data.amount`` -> "amount" (the field's own name: ids elsewhere may share it)."""
        if key in _FACTS:
            return _FACTS[key]
        declared = self.labels.get(f"fact:{key}")  # the label a Facts document gives the attribute
        if declared:
            return declared
        head, _, rest = key.partition(".")
        last = rest.split(".")[-1] if rest else head
        word = self.glossary_noun(last) if last in self.glossary else last.replace("_", " ")
        owner = _OWNERS.get(head)
        return f"{word} van {owner}" if owner and rest else word

    def value(self, value: Any, key: str = "") -> str:
        """Any plain definition value in words."""
        if value is None:
            return "niets"
        if isinstance(value, bool):
            return _yes_no(value)
        if isinstance(value, (int, float)):
            return f"{value:g}" if isinstance(value, float) else str(value)
        if isinstance(value, str):
            if _DURATION.match(value):
                duration = parse_duration(value)
                return human_duration(duration) if duration is not None else value
            if _DATE.match(value):
                from datetime import date

                try:
                    return dutch_date(date.fromisoformat(value))
                except ValueError:
                    return value
            if key in ("scope", "except_scope"):
                return _SCOPES.get(value, value)
            if f"={value}" in self.glossary:
                return self.glossary[f"={value}"]
            return self.label(value)
        if isinstance(value, Mapping):
            if "anchor" in value or "cron" in value or "dates" in value:
                return self.schedule(value)
            if key in ("guard", "when", "condition") or set(value) & {"all", "any", "not", "field", "fn"}:
                return self.condition(value)
            if "id" in value:
                return f"‘{value.get('label') or self.label(value['id'])}’"
            if "label" in value and isinstance(value["label"], str):
                return f"‘{value['label']}’"
            parts = [f"{self.glossary_noun(k)} {self.value(v, k)}" for k, v in value.items() if k != "description"]
            return ", ".join(parts) or "leeg"
        if isinstance(value, Sequence):
            items = [self.value(v, key) for v in value]
            if not items:
                return "geen"
            return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " en " + items[-1]
        return str(value)

    def glossary_noun(self, key: str) -> str:
        """The Dutch name of a field (without a sentence template)."""
        word = self.glossary.get(key, "")
        return key.replace("_", " ") if not word or "{" in word else word

    def schedule(self, data: Mapping[str, Any]) -> str:
        """``{anchor: work_year.end, minus: P3M}`` -> "3 maanden voor het einde van het werkjaar"."""
        if "cron" in data:
            return f"volgens het rooster {data['cron']}"
        if "dates" in data:
            return "op " + self.value(list(data["dates"]))
        anchor = str(data.get("anchor", ""))
        where = ANCHORS.get(anchor, self.field_name(anchor))
        text = f"op {where}"
        for key, word in (("plus", "na"), ("minus", "voor")):
            if isinstance(data.get(key), str):
                text = f"{self.value(data[key])} {word} {where}"
        if isinstance(data.get("repeat"), str):
            text += f", daarna elke {self.value(data['repeat'])}"
        return text

    def condition(self, data: Any) -> str:
        """A condition (plain data or compiled) in words: "bedrag is ten hoogste 50 of bon is ja"."""
        node = getattr(data, "model", None)
        if node is None:
            from regelwerk.conditions import compile_condition

            compiled, problems = compile_condition(data, "", self.functions)
            if problems:
                return "een voorwaarde"
            node = compiled.model
        return self._node(node, top=True)

    def _operand(self, operand: Any) -> str:
        if isinstance(operand, Literal):
            return self.value(operand.value)
        shift = getattr(operand, "shift", None)
        if isinstance(operand, NowRef):
            base = "nu"
        elif isinstance(operand, FieldRef):
            base = self.field_name(".".join(operand.path))
        else:
            return str(operand)
        if shift is not None:
            return f"{base} {'plus' if shift.sign > 0 else 'min'} {human_duration(shift.duration)}"
        return base

    def _node(self, node: Any, top: bool = False) -> str:
        if isinstance(node, Const):
            return "altijd" if node.value else "nooit"
        if isinstance(node, (AllOf, AnyOf)):
            joiner = " en " if isinstance(node, AllOf) else " of "
            text = joiner.join(self._node(i) for i in node.items)
            return text if top or len(node.items) < 2 else f"({text})"
        if isinstance(node, NotOf):
            return f"niet {self._node(node.item)}"
        if isinstance(node, Call):
            return f"{node.name.replace('_', ' ')} ({', '.join(self._operand(a) for a in node.args)})"
        if isinstance(node, Compare):
            op = _OPS.get(node.op, node.op)
            if node.op == "exists":
                filled = getattr(node.right, "value", True)
                return f"{self._operand(node.left)} {'is ingevuld' if filled else 'is leeg'}"
            return f"{self._operand(node.left)} {op} {self._operand(node.right)}"
        from regelwerk.conditions import describe

        return self.code(describe(node))  # a node type this renderer does not know yet: its short form in words

    def code(self, text: str) -> str:
        """A condition's short code form (``completed_on gt now - P12M``) word by word in Dutch."""
        def token(match: re.Match[str]) -> str:
            word = match.group(0)
            if word in _OPS:
                return _OPS[word]
            if word in _CODE_WORDS:
                return _CODE_WORDS[word]
            if _DURATION.match(word):
                return self.value(word)
            if "." in word or "_" in word:
                return self.field_name(word)
            return word

        return re.sub(r"[A-Za-z_][\w.]*", token, text.replace("(", "").replace(")", ""))


def sentence_for(words: Words, subject: str, key: str, list_key: str, change: str, old: Any, new: Any) -> str:
    """One difference as a Dutch sentence: subject, field, the customer's value and the standard's.

    ``key`` is the changed field (``""`` for a whole list item), ``list_key`` the list the item is in.
    """
    if not key:  # a whole item of a keyed list
        noun = words.glossary_noun(list_key) if list_key else "onderdeel"
        item = new if change == "added" else old
        name = words.value(item)
        if change == "added":
            return f"{subject}: nieuwe {noun} {name}."
        if change == "removed":
            return f"{subject}: {noun} {name} vervalt."
        return f"{subject}: de volgorde van de {noun}en is gewijzigd."
    template = words.glossary.get(key, "")
    if change == "changed" and "{new}" in template:
        old_words, new_words = words.value(old, key), words.value(new, key)
        old_words = _common_tail(new_words, old_words)
        return f"{subject} " + template.format(new=new_words, old=old_words) + "."
    noun = words.glossary_noun(key)
    if not noun.startswith(("de ", "het ", "een ")):  # a list's item noun or an unknown field: name it plainly
        if change == "added":
            return f"{subject}, {noun}: {words.value(new, key)} (de standaard heeft dit niet)."
        if change == "removed":
            return f"{subject}, {noun}: vervalt (in de standaard: {words.value(old, key)})."
        return f"{subject}, {noun}: {words.value(new, key)} in plaats van {words.value(old, key)}."
    if change == "added":
        return f"{subject}: {noun} is nu {words.value(new, key)} (de standaard heeft dit niet)."
    if change == "removed":
        return f"{subject}: {noun} vervalt (in de standaard: {words.value(old, key)})."
    return f"{subject}: {noun} is {words.value(new, key)} in plaats van {words.value(old, key)}."


def _common_tail(new: str, old: str) -> str:
    """"1 maand voor het einde van het werkjaar" after "3 maanden voor het einde van het werkjaar" reads as
    "1 maand": the shared ending is said once."""
    new_words, old_words = new.split(), old.split()
    shared = 0
    while shared < min(len(new_words), len(old_words)) - 1 and new_words[-1 - shared] == old_words[-1 - shared]:
        shared += 1
    # only an amount differs ("3 maanden voor ..." / "1 maand voor ..."): say the shared ending once
    for j in range(len(old_words) - shared, len(old_words)):
        if old_words[j] in ("na", "voor", "vóór"):
            rest = " ".join(old_words[:j])
            return rest if any(c.isdigit() for c in rest) else old
    return old

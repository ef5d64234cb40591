"""Compilers of the talent kinds (schemas in schemas/v1/, models in regelwerk_packs.talent.model).

Diagnostic codes (RW8xx, see docs/packs/talent.md): RW810 work year does not fit the
calendar, RW811 moment/feedback round mismatch, RW812 unknown workflow, RW813 matrix cell
problems, RW814 more than one TalentMatrix (one choice per organisation), RW815 role
without competencies, RW816 feedback invitee sets and visibility, RW817 a moment for a role no
work year of its cycle links, RW818 a moment's window (missing, ends before it opens, outside
the work year, combined with a due date or lead time). Schedule codes
RW801-RW804 come from regelwerk.scheduling.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import date
from typing import Any

from regelwerk.compiler import content_hash
from regelwerk.conditions import Duration, parse_duration
from regelwerk.diagnostics import did_you_mean
from regelwerk.scheduling.schedule import Schedule, compile_schedule
from regelwerk.source import SourceDocument, to_plain
from regelwerk_packs.talent.model import (
    DEFAULT_CONVERSATION_WORKFLOW,
    DEFAULT_FEEDBACK_WORKFLOW,
    Competency,
    CompetencyProfile,
    ConversationMoment,
    CyclePolicies,
    DevelopmentCycle,
    FeedbackRound,
    InviteeSet,
    MomentWindow,
    TalentMatrix,
    TalentRole,
    WorkYearCalendar,
    WorkYearSpec,
)

__all__ = [
    "compile_calendar",
    "compile_competency",
    "compile_cycle",
    "compile_feedback_round",
    "compile_matrix",
    "compile_profile",
    "compile_role",
    "placement_table_name",
    "placement_table_spec",
]


def _schedule(ctx: Any, data: Any, pointer: str) -> Schedule | None:
    return compile_schedule(data, pointer, ctx.report)


#: Spec keys that only serve the recruitment questionnaire: leaving them out of a role's content
#: version means editing applicants' questions does not put running trajectories behind.
_QUESTIONNAIRE_KEYS = {"TalentCompetency": ("questions",), "TalentCompetencyProfile": ("departments",)}


def _doc_data(ctx: Any, kind: str, name: str) -> Any:
    for doc in ctx.documents(kind):
        if doc.name == name:
            data = to_plain(doc.data)
            spec = data.get("spec") if isinstance(data, dict) else None
            if isinstance(spec, dict):
                for key in _QUESTIONNAIRE_KEYS.get(kind, ()):
                    spec.pop(key, None)
            return data
    return None


def compile_calendar(ctx: Any, doc: SourceDocument) -> WorkYearCalendar:
    """A WorkYearCalendar."""
    spec = doc.spec
    start = 1 if spec["type"] == "calendar" else int(spec.get("start_month", 9))
    if spec["type"] == "calendar" and spec.get("start_month", 1) != 1:
        ctx.report("RW810", "calendar years start in January", "/spec/start_month",
                   "use type: school for years that start in another month")
    if spec["type"] == "school" and start == 1:
        ctx.report("RW810", "a school year starting in January is a calendar year", "/spec/start_month",
                   "use type: calendar")
    return WorkYearCalendar(doc.name, spec["type"], start, str(spec.get("label", doc.name)))


def compile_competency(ctx: Any, doc: SourceDocument) -> Competency:
    """A TalentCompetency."""
    spec = doc.spec
    return Competency(doc.name, spec["label"], spec["type"], {int(k): v for k, v in sorted(spec["scores"].items())},
                      str(spec.get("description", "")), str(spec.get("esco_uri", "")),
                      tuple(spec.get("questions", ())))


def compile_profile(ctx: Any, doc: SourceDocument) -> CompetencyProfile:
    """A TalentCompetencyProfile."""
    return CompetencyProfile(doc.name, doc.spec["label"], tuple(doc.spec["competencies"]),
                             tuple(doc.spec.get("departments", ())))


def compile_role(ctx: Any, doc: SourceDocument) -> TalentRole:
    """A TalentRole with its competencies resolved (profile first, then its own) and a content version."""
    spec = doc.spec
    competencies: list[str] = []
    profile = spec.get("profile")
    used: list[Any] = [to_plain(doc.data)]
    if profile:
        compiled = ctx.compiled("TalentCompetencyProfile", profile)
        if compiled is not None:
            competencies.extend(compiled.competencies)
            used.append(_doc_data(ctx, "TalentCompetencyProfile", profile))
    competencies.extend(c for c in spec.get("competencies", []) if c not in competencies)
    for name in competencies:
        used.append(_doc_data(ctx, "TalentCompetency", name))
    if spec["origin"] == "function" and not spec.get("functions"):
        ctx.report("RW815", "a role generated from functions needs 'functions'", "/spec/origin",
                   "list the function codes, or use origin: manual")
    return TalentRole(doc.name, spec["label"], spec["origin"], tuple(spec.get("functions", [])),
                      bool(spec.get("blocked", False)), profile, tuple(competencies), content_hash(used))


def _invitee_sets(ctx: Any, entries: Any) -> tuple[InviteeSet, ...]:
    out = []
    for i, entry in enumerate(entries):
        if isinstance(entry, str):
            out.append(InviteeSet(entry))
            continue
        where = f"/spec/invite/{i}"
        minimum, maximum = int(entry.get("min", 0)), entry.get("max")
        if maximum is not None and int(maximum) < minimum:
            ctx.report("RW816", f"invitee set {entry['set']!r}: max {maximum} is below min {minimum}", where, "")
        if entry["set"] == "role" and not entry.get("role"):
            ctx.report("RW816", "an invitee set of a role names the 'role'", where, "add role: <TalentRole name>")
        out.append(InviteeSet(entry["set"], str(entry.get("same", "department")), str(entry.get("role", "")),
                              str(entry.get("fact", "feedback_peers")), minimum,
                              None if maximum is None else int(maximum)))
    names = [s.name for s in out]
    for name in sorted({n for n in names if names.count(n) > 1}):
        ctx.report("RW816", f"invitee set {name!r} is listed twice", "/spec/invite", "merge them into one set")
    return tuple(out)


def _duration(ctx: Any, text: Any, pointer: str) -> Duration | None:
    if text is None:
        return None
    found = parse_duration(str(text))
    if found is None:
        ctx.report("RW804", f"{text!r} is not an ISO 8601 duration", pointer, "e.g. P3W, P1M, P10D")
    return found


def compile_feedback_round(ctx: Any, doc: SourceDocument) -> FeedbackRound | None:
    """A FeedbackRound."""
    spec = doc.spec
    timing = spec["timing"]
    arises = _schedule(ctx, spec["arises"], "/spec/arises") if "arises" in spec else None
    if timing == "before_moment" and not spec.get("moment"):
        ctx.report("RW811", "a round before a moment names the 'moment'", "/spec/timing", "")
    if timing == "fixed" and "arises" not in spec:
        ctx.report("RW811", "a fixed round needs 'arises' (a schedule)", "/spec/timing", "")
    if timing != "fixed" and "arises" in spec:
        ctx.report("RW811", "'arises' only applies to timing: fixed", "/spec/arises", "")
    if "days_ahead" in spec and "appears_before" in spec:
        ctx.report("RW811", "say 'appears_before' or 'days_ahead', not both", "/spec/days_ahead", "")
    workflow = str(spec.get("request_workflow", DEFAULT_FEEDBACK_WORKFLOW))
    _check_workflow(ctx, workflow, "/spec/request_workflow")
    reminder_workflow = spec.get("reminder_workflow")
    if reminder_workflow:
        _check_workflow(ctx, str(reminder_workflow), "/spec/reminder_workflow")
    invite = _invitee_sets(ctx, spec["invite"])
    sets = {s.name for s in invite} | {"on_demand"}
    visibility: dict[str, tuple[str, ...]] = {}
    for name, readers in (spec.get("visibility") or {}).items():
        if name not in sets:
            ctx.report("RW816", f"visibility for {name!r}, which is not an invitee set of this round",
                       f"/spec/visibility/{name}", "known: " + ", ".join(sorted(sets)))
        visibility[str(name)] = tuple(readers)
    reminders = tuple(d for i, r in enumerate(spec.get("reminders", []))
                      if (d := _duration(ctx, r, f"/spec/reminders/{i}")) is not None)
    return FeedbackRound(doc.name, spec["label"], timing, spec.get("moment"), int(spec.get("days_ahead", 14)), arises,
                         invite, tuple(dict(q) for q in spec.get("questions", [])), workflow,
                         str(spec.get("start", "automatic")),
                         appears_before=_duration(ctx, spec.get("appears_before"), "/spec/appears_before"),
                         reminders=reminders,
                         answer_within=_duration(ctx, spec.get("answer_within"), "/spec/answer_within"),
                         visibility=visibility, reminder_workflow=str(reminder_workflow) if reminder_workflow else None)


def _check_workflow(ctx: Any, name: str, pointer: str) -> None:
    if "Workflow" not in ctx.registry.kinds:
        return  # the workflow runtime is not installed: nothing to check against
    if not any(d.name == name for d in ctx.documents("Workflow")):
        known = sorted(d.name for d in ctx.documents("Workflow"))
        ctx.report("RW812", f"workflow {name!r} does not exist", pointer,
                   "known: " + ", ".join(known) if known else "add the talent pack's standard workflows")


def compile_cycle(ctx: Any, doc: SourceDocument) -> DevelopmentCycle | None:
    """A DevelopmentCycle: work years, roles (resolved), moments and feedback rounds."""
    spec = doc.spec
    calendar = ctx.compiled("WorkYearCalendar", spec["calendar"])
    if calendar is None:
        return None
    used: list[Any] = [to_plain(doc.data), _doc_data(ctx, "WorkYearCalendar", spec["calendar"])]
    roles: dict[str, TalentRole] = {}
    default_roles = tuple(spec.get("roles", []))
    years: list[WorkYearSpec] = []
    for i, entry in enumerate(spec["work_years"]):
        ident = entry.get("year") or entry.get("from")
        year = calendar.parse(str(ident))
        if year is None:
            ctx.report("RW810", f"work year {ident!r} does not fit calendar {calendar.name!r} ({calendar.type})",
                       f"/spec/work_years/{i}/{'year' if 'year' in entry else 'from'}",
                       "calendar years look like 2026, school years like 2026-2027")
            continue
        role_names = tuple(entry.get("roles", default_roles))
        if not role_names:
            ctx.report("RW815", "no roles are linked to this work year", f"/spec/work_years/{i}",
                       "add roles here or at spec.roles")
        for name in role_names:
            role = ctx.compiled("TalentRole", name)
            if role is not None:
                roles[name] = role
                used.append(role.version)
        years.append(WorkYearSpec(year if "year" in entry else None, year if "from" in entry else None, role_names))
    rounds: dict[str, FeedbackRound] = {}
    for i, name in enumerate(spec.get("feedback_rounds", [])):
        fround = ctx.compiled("FeedbackRound", name)
        if fround is not None:
            rounds[name] = fround
            used.append(_doc_data(ctx, "FeedbackRound", name))
            if fround.timing == "before_moment" and fround.moment not in {m["id"] for m in spec["moments"]}:
                ctx.report("RW811", f"feedback round {name!r} prepares moment {fround.moment!r}, which this cycle "
                           "does not have", f"/spec/feedback_rounds/{i}", "")
    moments: list[ConversationMoment] = []
    linked: dict[str, FeedbackRound] = dict(rounds)
    linked_roles = list(dict.fromkeys(name for y in years for name in y.roles))
    for i, moment in enumerate(spec["moments"]):
        for j, name in enumerate(moment.get("roles", [])):
            if name not in linked_roles:
                ctx.report("RW817", f"moment {moment['id']!r} is for role {name!r}, which no work year of this cycle "
                           "links: it would never arise for it", f"/spec/moments/{i}/roles/{j}",
                           did_you_mean(str(name), linked_roles) or "roles of the work years: "
                           + (", ".join(linked_roles) or "none"))
        window: MomentWindow | None = None
        if "window" in moment:
            arises, window = _window(ctx, moment, f"/spec/moments/{i}", years, calendar)
        elif "arises" in moment:
            arises = _schedule(ctx, moment["arises"], f"/spec/moments/{i}/arises")
        else:
            ctx.report("RW818", f"moment {moment['id']!r} says neither when it is due ('arises') nor when it is "
                       "open ('window')", f"/spec/moments/{i}",
                       "add arises: {anchor: ...} or window: {from: ..., until: ...}")
            arises = None
        workflow = str(moment.get("workflow", DEFAULT_CONVERSATION_WORKFLOW))
        _check_workflow(ctx, workflow, f"/spec/moments/{i}/workflow")
        fname = moment.get("feedback_round")
        if fname:
            fround = ctx.compiled("FeedbackRound", fname)
            if fround is not None:
                linked[fname] = fround
                used.append(_doc_data(ctx, "FeedbackRound", fname))
        if arises is None:
            continue
        lead = _duration(ctx, moment.get("appears_before"), f"/spec/moments/{i}/appears_before")
        condition = ctx.condition(moment["when"], f"/spec/moments/{i}/when") if "when" in moment else None
        leaving = str(moment.get("after_leaving", "default"))
        moments.append(ConversationMoment(
            moment["id"], moment["label"], moment["dossier_item_type"],
            str(moment.get("creation_profile", moment["dossier_item_type"])), arises,
            str(moment.get("start", "automatic")), workflow, str(moment.get("before_hire", "skip")),
            "cancel" if leaving == "skip" else leaving, fname, lead, condition,
            tuple(dict.fromkeys(str(r) for r in moment.get("roles", []))), window,
            bool(moment.get("once_per_person", False))))
    plan_ahead: Duration = parse_duration(str(spec.get("plan_ahead", "P1M"))) or Duration(months=1, text="P1M")
    when = ctx.condition(spec["when"], "/spec/when") if "when" in spec else None
    policy = spec.get("policies") or {}
    transfer = policy.get("transfer") or {}
    policies = CyclePolicies(hire_year=str(policy.get("hire_year", "hire")),
                             leaving=str(policy.get("leaving", "cancel")),
                             transfer=str(transfer.get("policy", "close_and_open")),
                             transfer_fact=str(transfer.get("fact", "role_since")))
    return DevelopmentCycle(
        name=doc.name, label=spec["label"], calendar=calendar, groups=tuple(spec.get("groups", [])), when=when,
        plan_ahead=plan_ahead, work_years=tuple(years), moments=tuple(moments), roles=roles,
        feedback_rounds=tuple(rounds[k] for k in sorted(rounds)), version=content_hash(used),
        rounds_by_name=linked, appears_before=_duration(ctx, spec.get("appears_before"), "/spec/appears_before"),
        policies=policies,
    )


#: the options of a window that apply to both of its days (the time it opens and is due, and the rest)
_WINDOW_OPTIONS = ("at", "timezone", "catch_up", "grace")


def _window(ctx: Any, moment: Mapping[str, Any], where: str, years: list[WorkYearSpec],
            calendar: WorkYearCalendar) -> tuple[Schedule | None, MomentWindow | None]:
    """A moment's ``window``: its last day compiled as the moment's ``arises`` (the due date), its first day as
    the schedule it appears on; checked (RW818) where it can be without an employee: both days from the work
    year, or both from the same fact."""
    data = moment["window"]
    for key in ("arises", "appears_before"):
        if key in moment:
            ctx.report("RW818", f"moment {moment['id']!r} has a window, which says when it is open and due: "
                       f"'{key}' cannot be combined with it", f"{where}/{key}",
                       f"leave out '{key}' (the window opens on 'from' and is due on 'until')")
    options = {k: data[k] for k in _WINDOW_OPTIONS if k in data}

    def report(code: str, message: str, pointer: str, hint: str = "") -> None:
        # an option's problem belongs to the window's own key, not to the day it was compiled with
        tail = pointer.rsplit("/", 1)[-1]
        ctx.report(code, message, f"{where}/window/{tail}" if tail in options else pointer, hint)

    opens = compile_schedule({**data["from"], **options}, f"{where}/window/from", report)
    until = compile_schedule({**data["until"], **options}, f"{where}/window/until", report)
    if opens is None or until is None:
        return None, None
    problem = _window_problem(opens, until, years, calendar)
    if problem is not None:
        pointer, message = problem
        ctx.report("RW818", f"moment {moment['id']!r}: {message}", f"{where}/window/{pointer}",
                   "a window is open from its 'from' day up to and including its 'until' day, inside the work year")
        return None, None
    return until, MomentWindow(opens)


def _window_problem(opens: Schedule, until: Schedule, years: list[WorkYearSpec],
                    calendar: WorkYearCalendar) -> tuple[str, str] | None:
    """What is wrong with a window that can be seen without an employee: ``(key, message)`` or None."""
    window = MomentWindow(opens)

    def last_day(facts: Mapping[str, Any]) -> date | None:
        return MomentWindow(until).first_day(facts)

    if opens.anchor[0] == "work_year" and until.anchor[0] == "work_year":
        # the first work years of each entry (four of them: a leap year among them) show month-end clipping too
        checked = [y for spec in years for first in (spec.year or spec.from_year,) if first is not None
                   for y in [calendar.year(first.start.year + k) for k in range(4 if spec.from_year else 1)]]
        for year in checked:
            start, end = window.first_day({"work_year": year.facts()}), last_day({"work_year": year.facts()})
            if start is None or end is None:
                continue
            if end < start:
                return "until", (f"the window ends on {end.isoformat()}, before it opens on {start.isoformat()} "
                                 f"(work year {year.id})")
            for key, day in (("from", start), ("until", end)):
                if not year.contains(day):
                    return key, (f"the window {'opens' if key == 'from' else 'ends'} on {day.isoformat()}, outside "
                                 f"work year {year.id} ({year.start.isoformat()} to {year.end.isoformat()})")
    elif opens.anchor == until.anchor:
        # the same fact: the order of the two days shows on any value of it (month ends and 29 February included)
        for base in (date(2024, 1, 31), date(2024, 2, 29), date(2025, 6, 15), date(2025, 12, 31)):
            value: Any = base
            for part in reversed(opens.anchor):
                value = {part: value}
            start, end = window.first_day(value), last_day(value)
            if start is not None and end is not None and end < start:
                return "until", (f"the window ends before it opens ({'.'.join(opens.anchor)} {base.isoformat()}: "
                                 f"from {start.isoformat()} until {end.isoformat()})")
    return None


def compile_matrix(ctx: Any, doc: SourceDocument) -> TalentMatrix | None:
    """A TalentMatrix: every cell maps to a known profile; one matrix per organisation.

    The placement itself is a core ``DecisionTable`` (``<name>-placement``, emitted), so the generic
    decision runtime decides and explains it (``regelwerk decide``, scenario step ``decide``).
    """
    spec = doc.spec
    errors: list[str] = []

    def report(code: str, message: str, pointer: str, hint: str) -> None:
        errors.append(code)
        ctx.report(code, message, pointer, hint)

    others = [d for d in ctx.documents("TalentMatrix") if d.name != doc.name]
    if others and doc.name > min(d.name for d in others):
        report("RW814", f"more than one TalentMatrix ({', '.join(sorted([doc.name] + [d.name for d in others]))})"
               "; the matrix is one choice per organisation", "/metadata/name",
               "keep one (an overlay can replace the standard with merge: replace)")

    def levels(axis: str) -> tuple[tuple[str, str, float | None], ...]:
        return tuple((lv["id"], lv["label"], lv.get("min_score")) for lv in spec[axis])
    perf, pot = levels("performance"), levels("potential")
    profiles = {p["id"]: p["label"] for p in spec["profiles"]}
    cells: dict[tuple[str, str], tuple[str, str]] = {}
    perf_ids, pot_ids = [p[0] for p in perf], [p[0] for p in pot]
    for i, cell in enumerate(spec["cells"]):
        where = f"/spec/cells/{i}"
        for axis, ids in (("performance", perf_ids), ("potential", pot_ids)):
            if cell[axis] not in ids:
                report("RW813", f"{axis} level {cell[axis]!r} is not defined", f"{where}/{axis}",
                       "known: " + ", ".join(ids))
        if cell["profile"] not in profiles:
            report("RW813", f"profile {cell['profile']!r} is not defined", f"{where}/profile",
                   "known: " + ", ".join(sorted(profiles)))
        key = (cell["performance"], cell["potential"])
        if key in cells:
            report("RW813", f"cell {key[0]} x {key[1]} is mapped twice", where, "")
        cells[key] = (cell["profile"], str(cell.get("label", "")))
    missing = [f"{a} x {b}" for a in perf_ids for b in pot_ids if (a, b) not in cells]
    if missing:
        report("RW813", f"cells without a profile: {', '.join(missing)}", "/spec/cells",
               "map every performance x potential combination")
    expected = {"HR3P": 5, "9-GRID": 9}[spec["model"]]
    used = len(set(p for p, _ in cells.values()))
    if used != expected:
        ctx.warn("RW813", f"{spec['model']} usually has {expected} profiles; this matrix uses {used}", "/spec/profiles")
    if errors:
        return None
    label = str(spec.get("label", doc.name))
    from regelwerk.decisions.compile import build_decision_table

    table_name = placement_table_name(doc.name)
    table = build_decision_table(ctx, table_name, placement_table_spec(label, perf, pot, profiles, cells))
    if table is None:
        return None
    ctx.emit("DecisionTable", table_name, table, content_hash(to_plain(doc.data)))
    return TalentMatrix(doc.name, spec["model"], perf, pot, profiles, cells, label, table)


def placement_table_name(matrix: str) -> str:
    """The core DecisionTable a TalentMatrix compiles into: ``<matrix>-placement``."""
    return f"{matrix}-placement"


def _score_ranges(levels: tuple[tuple[str, str, float | None], ...]) -> dict[str, dict[str, float]]:
    """Each level's score range as a decision-table entry: from its ``min_score`` up to the next level's.

    A level without ``min_score`` starts at any score; a level followed by one without ``min_score``
    has no score range (only its id selects it), exactly as the levels read low to high.
    """
    out: dict[str, dict[str, float]] = {}
    for i, (level, _, minimum) in enumerate(levels):
        later = [m for _, _, m in levels[i + 1:]]
        higher = [m for m in later if m is not None]
        if len(higher) < len(later):
            continue
        entry: dict[str, float] = {}
        if minimum is not None:
            entry["ge"] = minimum
        upper = min(higher, default=None)
        if upper is not None:
            if minimum is not None and upper <= minimum:
                continue  # a higher level starts at or below this one: no score selects it
            entry["lt"] = upper
        out[level] = entry or {"ge": -sys.float_info.max}
    return out


def placement_table_spec(label: str, perf: tuple[tuple[str, str, float | None], ...],
                         pot: tuple[tuple[str, str, float | None], ...], profiles: Mapping[str, str],
                         cells: Mapping[tuple[str, str], tuple[str, str]]) -> dict[str, Any]:
    """The DecisionTable spec of a matrix: performance x potential (level ids or scores) -> cell -> profile.

    Every cell gives up to four UNIQUE rows, one per way of naming its levels: both ids (row id
    ``<performance>/<potential>``), a performance score (``...:performance-score``), a potential
    score (``...:potential-score``), both scores (``...:scores``).
    """
    ranges = {"performance": _score_ranges(perf), "potential": _score_ranges(pot)}
    rows = []
    for (p, q), (profile, cell_label) in cells.items():
        cell = f"{p}/{q}"
        forms: list[tuple[str, Any, Any]] = [("", p, q)]
        if p in ranges["performance"]:
            forms.append((":performance-score", ranges["performance"][p], q))
        if q in ranges["potential"]:
            forms.append((":potential-score", p, ranges["potential"][q]))
        if p in ranges["performance"] and q in ranges["potential"]:
            forms.append((":scores", ranges["performance"][p], ranges["potential"][q]))
        for suffix, when_p, when_q in forms:
            rows.append({"id": cell + suffix, "description": cell_label or profiles[profile],
                         "when": {"performance": when_p, "potential": when_q},
                         "then": {"cell": cell, "performance": p, "potential": q, "profile": profile}})
    return {
        "label": f"{label}: plaatsing",
        "description": "Prestatie x potentieel (niveau of score 1-5) -> vak -> profiel.",
        "hitPolicy": "UNIQUE",
        "inputs": [{"id": "performance", "label": "Prestatie", "type": "any"},
                   {"id": "potential", "label": "Potentieel", "type": "any"}],
        "outputs": [{"id": "cell", "label": "Vak"},
                    {"id": "performance", "label": "Prestatieniveau", "values": [lv[0] for lv in perf]},
                    {"id": "potential", "label": "Potentieelniveau", "values": [lv[0] for lv in pot]},
                    {"id": "profile", "label": "Profiel", "values": list(profiles)}],
        "rows": rows,
    }

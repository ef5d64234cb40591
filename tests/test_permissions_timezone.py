"""Validity dates count in the organisation's time zone (issue 12): both edges, both DST seasons.

Consent ``until`` and ``from``, per-user rights' ``valid_to`` (relations and the matrix's ``user_rights``),
and day-based invitation validity are evaluated in the bundle's ``timezone`` (default Europe/Amsterdam),
the end date inclusive to its last second, whatever time zone the caller's ``now`` carries.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from regelwerk.actors import Actor
from regelwerk.bundle import load_bundle
from regelwerk.compiler import compile_bundle
from regelwerk.diagnostics import DefinitionError
from regelwerk.permissions import MemoryRelationships
from regelwerk.registry import load_registry

AMS = ZoneInfo("Europe/Amsterdam")
NEW_YORK = ZoneInfo("America/New_York")
SECOND = timedelta(seconds=1)

# (season, valid_from, valid_to, first instant (UTC), first instant after (UTC))
WINDOWS = [
    ("winter", date(2026, 1, 5), date(2026, 2, 27), datetime(2026, 1, 4, 23, tzinfo=UTC),
     datetime(2026, 2, 27, 23, tzinfo=UTC)),
    ("summer", date(2026, 4, 6), date(2026, 7, 31), datetime(2026, 4, 5, 22, tzinfo=UTC),
     datetime(2026, 7, 31, 22, tzinfo=UTC)),
    # across the changes: starts in winter time, ends in summer time, and the other way round
    ("into summer", date(2026, 3, 1), date(2026, 3, 31), datetime(2026, 2, 28, 23, tzinfo=UTC),
     datetime(2026, 3, 31, 22, tzinfo=UTC)),
    ("into winter", date(2026, 10, 1), date(2026, 10, 31), datetime(2026, 9, 30, 22, tzinfo=UTC),
     datetime(2026, 10, 31, 23, tzinfo=UTC)),
]


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryRelationships()
        return
    from regelwerk.permissions.sql import SqlRelationships

    rel = SqlRelationships(sqlite_url, create=True)
    yield rel
    rel.close()


def _views(moment: datetime) -> list[datetime]:
    """One instant as the caller might carry it: UTC, Amsterdam, New York, naive UTC."""
    return [moment, moment.astimezone(AMS), moment.astimezone(NEW_YORK), moment.replace(tzinfo=None)]


@pytest.mark.parametrize(("season", "start", "end", "first", "after"), WINDOWS, ids=[w[0] for w in WINDOWS])
def test_consent_and_rights_edges(store: Any, season: str, start: date, end: date, first: datetime,
                                  after: datetime) -> None:
    store.relate("consent", "pim", "mo", valid_from=start, valid_to=end, by="pim")
    store.relate("has_right", "mo", "extra", valid_from=start, valid_to=end)
    cases = [(first - SECOND, False), (first, True), (after - SECOND, True), (after, False)]
    for moment, expected in cases:
        for now in _views(moment):
            assert (store.consent_link("pim", ["mo"], now) is not None) is expected, (season, now)
            assert (store.rights_of("mo", now) == ("extra",)) is expected, (season, now)
    reloaded = store.relations("consent")[0]
    assert reloaded.why_inactive(after).startswith("ended on") and reloaded.why_inactive(after - SECOND) == ""


def _bundle(tmp_path: Path, timezone: str | None) -> Any:
    (tmp_path / "b").mkdir()
    manifest = "apiVersion: regelwerk/v1\nkind: Bundle\nmetadata: {name: tz}\nspec: {}\n"
    if timezone is not None:
        manifest = manifest.replace("spec: {}", f"spec: {{timezone: {timezone}}}")
    (tmp_path / "b" / "bundle.yaml").write_text(manifest, encoding="utf-8")
    (tmp_path / "b" / "m.yaml").write_text(textwrap.dedent("""\
        apiVersion: regelwerk/v1
        kind: PermissionMatrix
        metadata: {name: m}
        spec:
          roles: [{id: r}]
          resources: [{id: doc, actions: [read]}]
          rights:
            - id: reader
              grants: [{id: reader_read, resource: doc, actions: [read]}]
          user_rights:
            - {user: ann, right: reader, valid_from: "2026-03-01", valid_to: "2026-03-31"}
        """), encoding="utf-8")
    return compile_bundle(load_bundle(tmp_path / "b"), load_registry(use_entry_points=False))


def test_user_rights_in_the_bundle_time_zone(tmp_path: Path) -> None:
    compiled = _bundle(tmp_path, None)
    assert compiled.timezone == "Europe/Amsterdam"
    matrix = compiled.get("PermissionMatrix", "m")
    ann = Actor("ann")

    def allowed(now: datetime) -> bool:
        fast = matrix.decide(ann, "read", "doc", {}, None, now).allowed
        assert matrix.decide(ann, "read", "doc", {}, None, now, explain=True).allowed is fast
        return bool(fast)

    for now in _views(datetime(2026, 3, 31, 21, 59, 59, tzinfo=UTC)):
        assert allowed(now)
    for now in _views(datetime(2026, 3, 31, 22, tzinfo=UTC)):
        assert not allowed(now)
    assert not allowed(datetime(2026, 2, 28, 22, 59, 59, tzinfo=UTC))
    assert allowed(datetime(2026, 2, 28, 23, tzinfo=UTC))


def test_a_bundle_declares_its_own_time_zone(tmp_path: Path) -> None:
    compiled = _bundle(tmp_path, "America/New_York")
    assert compiled.timezone == "America/New_York"
    matrix = compiled.get("PermissionMatrix", "m")
    # 31 March ends at 04:00 UTC on 1 April in New York (EDT, UTC-4)
    assert matrix.decide(Actor("ann"), "read", "doc", {}, None, datetime(2026, 4, 1, 3, 59, 59, tzinfo=UTC)).allowed
    assert not matrix.decide(Actor("ann"), "read", "doc", {}, None, datetime(2026, 4, 1, 4, tzinfo=UTC)).allowed


def test_an_unknown_time_zone_is_a_diagnostic(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError) as caught:
        _bundle(tmp_path, "Europe/Atlantis")
    problem = caught.value.diagnostics[0]
    assert problem.code == "RW202" and problem.pointer == "/spec/timezone" and problem.line == 4


def test_day_based_invitations_count_calendar_days_in_the_zone() -> None:
    from regelwerk.permissions.invitations import InvitationExpired, MemoryInvitations

    # invited on Saturday 24 October 2026 at 12:00 (summer time); P2D ends on Monday 26 October 12:00 winter
    # time: 49 hours later, because the clocks went back on Sunday
    store = MemoryInvitations("P2D", timezone="Europe/Amsterdam")
    sent = datetime(2026, 10, 24, 12, tzinfo=AMS)
    invitation = store.invite("a@example.org", "user", "acc", "admin", sent)
    assert invitation.expires_at == datetime(2026, 10, 26, 11, tzinfo=UTC)
    assert invitation.expires_at - sent == timedelta(hours=49)
    later = store.invite("b@example.org", "user", "acc", "admin", sent)
    assert later.token is not None and store.accept(later.token, datetime(2026, 10, 26, 10, 59, 59, tzinfo=UTC))
    with pytest.raises(InvitationExpired):
        assert invitation.token is not None
        store.accept(invitation.token, datetime(2026, 10, 26, 11, tzinfo=UTC))
    # hour-based validity is exact hours, whatever the clocks do
    hours = MemoryInvitations("PT48H", timezone="Europe/Amsterdam").invite("c@x.nl", "user", "acc", "a", sent)
    assert hours.expires_at - sent == timedelta(hours=48)

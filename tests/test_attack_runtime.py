"""Attacks on the workflow runtime through event payloads (issue 12, "facts come from the store").

A transition without a ``permission`` (a timer's event, a signature guarded by ``actor.id eq data.subject``)
must not let a person's payload rewrite the fields that say whom the instance is about: otherwise a stranger
signs a colleague's training agreement by sending ``{"subject": "<himself>"}``, or takes over a colleague's
VOG case through its reminder event.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from regelwerk.actors import Actor
from regelwerk.bundle import load_bundle
from regelwerk.compiler import CompiledBundle, compile_bundle
from regelwerk.errors import PermissionDenied, TransitionNotAllowed
from regelwerk.registry import Registry, load_registry
from regelwerk.runtime import Engine

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HANNA = Actor("hanna", ("beheerder",))
PIET = Actor("piet", ("medewerker",))
EVA = Actor("eva", ("medewerker",))
STRANGER = Actor("x", ())


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry()


@pytest.fixture(scope="module")
def horizon(registry: Registry) -> CompiledBundle:
    return compile_bundle(load_bundle(ROOT / "examples" / "scholengroep-horizon"), registry)


@pytest.fixture(params=["memory", "sqlite"])
def engine(request: Any, horizon: CompiledBundle, registry: Registry, sqlite_url: str) -> Any:
    url = "memory://" if request.param == "memory" else sqlite_url
    eng = Engine(horizon, store=url, registry=registry, clock=lambda: NOW, permissions="step2hr")
    yield eng
    eng.close()


def _unchanged_refusal(engine: Any, instance_id: str, call: Any) -> PermissionDenied:
    before = engine.get(instance_id)
    with pytest.raises(PermissionDenied) as caught:
        call()
    after = engine.get(instance_id)
    assert (after.state, after.version, dict(after.data)) == (before.state, before.version, dict(before.data))
    return caught.value


def test_a_payload_cannot_rewrite_the_subject_through_an_unguarded_transition(engine: Any) -> None:
    engine.start("training_agreement", {"subject": "eva", "training": "VCA", "costs": 400}, HANNA, "oo1")
    for who in (PIET, STRANGER):
        exc = _unchanged_refusal(engine, "oo1", lambda w=who: engine.fire("oo1", "sign_employee", w,
                                                                           {"subject": w.id}))
        assert exc.explanation["by"] == "guarded-change" and exc.explanation["changed_fields"] == ["subject"]
    # explain and available_events say the same, and the refusals were audited once each
    why = engine.explain("oo1", "sign_employee", PIET, {"subject": "piet"})
    assert why["allowed"] is False
    assert len([a for a in engine.audit("oo1") if "denied" in a.action]) == 2
    # eva signs her own agreement; a payload that changes nothing a scope reads is fine
    assert engine.fire("oo1", "sign_employee", EVA, {"subject": "eva"}).state == "signed_by_employee"


def test_a_stranger_cannot_take_over_a_vog_case_through_its_reminder(engine: Any) -> None:
    po = Actor("p1", ("po_adviseur",))
    engine.start("vog", {"subject": "eva", "first_name": "Eva", "email": "eva@horizon.nl", "school": "De Wissel",
                         "start_date": "2026-04-01"}, po, "v1")
    _unchanged_refusal(engine, "v1", lambda: engine.fire("v1", "remind", STRANGER, {"subject": "x"}))
    # the event itself is the timer's alone (system_only): no person fires it, with or without a payload
    _unchanged_refusal(engine, "v1", lambda: engine.fire("v1", "remind", STRANGER))
    assert engine.get("v1").data["subject"] == "eva"


def test_a_payload_cannot_pass_a_who_guard_by_renaming_the_subject(engine: Any) -> None:
    """'Nobody signs both sides' is the guard ``actor.id ne data.subject`` on sign_employer; the beheerder may
    sign for any employer, so both permission decisions allow: the guard must read the stored subject."""
    engine.start("training_agreement", {"subject": "hanna", "training": "VCA", "costs": 400}, HANNA, "oo3")
    assert engine.fire("oo3", "sign_employee", HANNA).state == "signed_by_employee"
    before = engine.get("oo3")
    for payload in (None, {"subject": "nobody"}, {"subject": "piet"}):
        with pytest.raises(TransitionNotAllowed) as caught:
            engine.fire("oo3", "sign_employer", HANNA, payload)
        assert "actor.id ne data.subject" in str(caught.value)
    after = engine.get("oo3")
    assert (after.state, after.version, after.data) == (before.state, before.version, before.data)
    assert engine.explain("oo3", "sign_employer", HANNA, {"subject": "nobody"})["allowed"] is False
    # another beheerder signs for the employer, and may correct a field no scope reads while doing so
    other = Actor("henk", ("beheerder",))
    assert engine.fire("oo3", "sign_employer", other, {"training": "VCA-VOL"}).state == "active"


@pytest.mark.parametrize("item", [{"event": "submit"}, {"instance": "v1"}, 5, None, ("v1",), "v1"])
def test_a_malformed_fire_batch_item_is_a_typed_usage_error(engine: Any, item: Any) -> None:
    """fire_batch raised a bare KeyError or TypeError for an item without 'instance' or 'event'."""
    from regelwerk.errors import UsageError

    po = Actor("p1", ("po_adviseur",))
    engine.start("vog", {"subject": "eva", "first_name": "Eva", "email": "eva@horizon.nl", "school": "De Wissel",
                         "start_date": "2026-04-01"}, po, "v1")
    with pytest.raises(UsageError) as caught:
        engine.fire_batch([(  "v1", "submit", EVA), item])
    assert caught.value.batch_index == 1  # type: ignore[attr-defined]
    assert engine.get("v1").state == "requested"  # nothing of the batch was applied

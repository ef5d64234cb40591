"""Tenants in one store (issue 16): deployments switch atomically, broken uploads change nothing, instances stay
pinned, keys are hashed and revocable; on PostgreSQL row-level security stops a tenant-bound transaction from
reading or writing another tenant's rows, whatever SQL it sends."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from _tenancy_pg import tenant_schema
from regelwerk.errors import PermissionDenied, UsageError
from regelwerk.tenancy.hub import DeploymentRejected, TenantHub, read_bundle_dir

FIXTURE = Path(__file__).parent / "fixtures" / "tenancy"
MANAGER = {"id": "m1", "roles": ["leidinggevende"]}
EMPLOYEE = {"id": "e1", "roles": ["medewerker"]}


def bundle_files() -> dict[str, str]:
    """The test tenant's bundle as an upload."""
    return read_bundle_dir(FIXTURE)


def changed_files() -> dict[str, str]:
    """Version 2: the reminder gets a state ``parked`` (and its old states stay)."""
    files = bundle_files()
    files["reminder.yaml"] = files["reminder.yaml"].replace(
        "    - {id: closed, label: Gesloten, final: true}",
        "    - {id: closed, label: Gesloten, final: true}\n    - {id: parked, label: Geparkeerd}")
    files["reminder.yaml"] = files["reminder.yaml"].replace(
        "  transitions:\n", "  transitions:\n    - {id: park, label: Parkeren, from: waiting, to: parked}\n")
    return files


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[TenantHub]:
    """A SQLite hub (one file per tenant) with tenants a and b on the test bundle."""
    with TenantHub(str(tmp_path / "data"), cache_seconds=0.0) as h:
        for tenant in ("a", "b"):
            h.create_tenant(tenant)
            h.deploy(tenant, bundle_files(), matrix="service")
        yield h


def test_each_sqlite_tenant_has_its_own_file(hub: TenantHub, tmp_path: Path) -> None:
    hub.engine("a").start("reminder", {}, actor=EMPLOYEE, instance_id="r1")
    hub.engine("b").start("reminder", {}, actor=EMPLOYEE, instance_id="r1")
    hub.engine("b").start("reminder", {}, actor=EMPLOYEE, instance_id="r2")
    assert sorted(p.name for p in (tmp_path / "data" / "tenants").glob("*.sqlite")) == ["a.sqlite", "b.sqlite"]
    assert [i.id for i in hub.engine("a").instances()] == ["r1"]
    assert [i.id for i in hub.engine("b").instances()] == ["r1", "r2"]


def test_tenant_ids_are_checked_and_unique(hub: TenantHub) -> None:
    with pytest.raises(UsageError):
        hub.create_tenant("../etc")
    with pytest.raises(UsageError):  # "$" matched before the line break: a file "acme\n.sqlite" (found by attack)
        hub.create_tenant("acme\n")
    with pytest.raises(UsageError):
        hub.create_tenant("a")


def test_broken_upload_changes_nothing_and_returns_every_diagnostic(hub: TenantHub) -> None:
    before = hub.tenant("a")["active_version"]
    broken = bundle_files()
    broken["reminder.yaml"] = broken["reminder.yaml"].replace("label: Gesloten", "labl: Gesloten").replace(
        "label: Wacht", "lable: Wacht")
    with pytest.raises(DeploymentRejected) as caught:
        hub.deploy("a", broken, matrix="service")
    found = {(d["code"], d["file"]) for d in caught.value.diagnostics}
    assert ("RW104", "reminder.yaml") in found  # the misspelt key, at the uploaded file's relative path
    assert len(caught.value.diagnostics) >= 2
    assert all(d["line"] > 0 for d in caught.value.diagnostics if d["file"] == "reminder.yaml")
    assert hub.tenant("a")["active_version"] == before
    assert [d["version"] for d in hub.deployments("a")] == [before]
    hub.engine("a").start("reminder", {}, actor=EMPLOYEE)  # the old version still serves


def test_bad_paths_and_unknown_matrix_are_rejected(hub: TenantHub) -> None:
    with pytest.raises(DeploymentRejected, match="acceptable"):
        hub.deploy("a", {"../escape.yaml": "x: 1"})
    with pytest.raises(DeploymentRejected, match="PermissionMatrix"):
        hub.deploy("a", bundle_files(), matrix="nope")


@pytest.mark.parametrize("extra", [{"x.yaml": "a: 1", "x.yaml/y.yaml": "b: 2"}, {"x.yaml\n": "a: 1"},
                                   {"./reminder.yaml": "a: 1"}, {"sub//x.yaml": "a: 1"}, {"sub/": "a: 1"}])
def test_an_upload_whose_paths_clash_or_are_not_canonical_is_rejected_and_writes_nothing(
        hub: TenantHub, extra: dict[str, str]) -> None:
    """Found by attack: a file that is also another file's folder (``x.yaml`` and ``x.yaml/y.yaml``) was a 500
    ``FileExistsError`` with a half-written copy left in the hub's folder; ``x.yaml\\n`` passed the path check (``$``
    matches before a final line break) and ``./reminder.yaml`` beside ``reminder.yaml`` were two keys for one file."""
    before = hub.tenant("a")["active_version"]
    work = hub._work / "a"
    folders = sorted(p.name for p in work.iterdir())
    with pytest.raises(DeploymentRejected) as caught:
        hub.deploy("a", {**bundle_files(), **extra}, matrix="service")
    [problem] = caught.value.diagnostics
    assert problem["code"] == "RW001" and problem["file"] in extra, problem
    assert hub.tenant("a")["active_version"] == before
    assert sorted(p.name for p in work.iterdir()) == folders


WARNS = """apiVersion: regelwerk/v1
kind: Workflow
metadata: {name: probe-wf}
spec:
  resource_type: probe
  states:
    - {id: a, initial: true}
    - {id: b, final: true}
  transitions:
    - {id: go, from: a, to: b}
"""


def test_a_tenant_never_hears_of_another_tenant_that_uploaded_the_same_files(hub: TenantHub) -> None:
    """Tenants with identical uploads share the compiled bundle; its warnings were made relative to the asking
    tenant's folder, so tenant b's answer named the folder of the tenant that compiled it first
    (``../../tmp/regelwerk-hub-x/acme-zorg/<version>/extra.yaml``): who else runs this very bundle, and a server
    path."""
    files = {**bundle_files(), "extra.yaml": WARNS}
    hub.create_tenant("acme-zorg")
    _version, compiled, first = hub.compile_files("acme-zorg", files)
    assert compiled is not None and first and {d["file"] for d in first} == {"extra.yaml"}
    _version, shared, second = hub.compile_files("b", files)
    assert shared is compiled and second == first
    assert "acme-zorg" not in repr(second) and str(hub._work) not in repr(second)


def test_a_diagnostic_names_no_folder_of_the_server() -> None:
    """A file of the shipped standard base is ``standard/<path>``, any other file outside the upload its name."""
    from regelwerk.bundle import shipped_standard
    from regelwerk.diagnostics import Diagnostic
    from regelwerk.tenancy.hub import _diag_dict

    standard = shipped_standard() / "workflows" / "declaration.yaml"
    assert _diag_dict(Diagnostic("RW519", "m", str(standard), 1, 1, ""), "/srv/up")["file"] == \
        "standard/workflows/declaration.yaml"
    assert _diag_dict(Diagnostic("RW519", "m", "/srv/other/tenant/x.yaml", 1, 1, ""), "/srv/up")["file"] == "x.yaml"
    assert _diag_dict(Diagnostic("RW519", "m", "/srv/up/sub/x.yaml", 1, 1, ""), "/srv/up")["file"] == "sub/x.yaml"


def test_new_version_switches_and_running_instances_stay_pinned(hub: TenantHub) -> None:
    engine = hub.engine("a")
    old = engine.start("reminder", {}, actor=EMPLOYEE, instance_id="old")
    result = hub.deploy("a", changed_files(), matrix="service")
    assert result["version"] != old.definition_version
    new_engine = hub.engine("a")
    assert new_engine is not engine
    fresh = new_engine.start("reminder", {}, actor=EMPLOYEE, instance_id="new")
    assert fresh.definition_version == new_engine.current_version("reminder") != old.definition_version
    assert result["version"] == hub.tenant("a")["active_version"]
    assert new_engine.get("old").definition_version == old.definition_version
    assert new_engine.fire("new", "park", actor=EMPLOYEE).state == "parked"
    with pytest.raises(Exception, match="park"):
        new_engine.fire("old", "park", actor=EMPLOYEE)  # pinned: v1 has no 'park'
    plan = new_engine.migrate_plan("reminder")
    assert [(i.instance_id, i.action) for i in plan] == [("old", "keep")]
    assert [i.applied for i in new_engine.migrate_apply("reminder")] == [True]
    assert new_engine.fire("old", "park", actor=EMPLOYEE).state == "parked"
    assert [d["active"] for d in hub.deployments("a")] == [True, False]


def test_permissions_deny_by_default_through_the_tenants_matrix(hub: TenantHub) -> None:
    runtime = hub.runtime("a")
    engine = runtime.engine
    engine.start("reminder", {}, actor=EMPLOYEE, instance_id="r")
    with pytest.raises(PermissionDenied):
        engine.fire("r", "close", actor=EMPLOYEE)
    assert runtime.audit.flush() == 0  # the refused fire's audit row was written inside its unit of work, once
    assert [(a.action, a.detail["action"]) for a in engine.audit()
            if a.action.endswith("denied")] == [("permission.denied", "close")]
    assert engine.fire("r", "close", actor=MANAGER).state == "closed"
    for resource in ("x", "y", "z"):  # a batch of questions: each denial once, a row each, with actor and time
        assert not runtime.port(None).check(EMPLOYEE, "close", "reminder", {"id": resource}).allowed
    assert runtime.audit.flush() == 3
    rows = [a for a in engine.audit() if a.action == "permission.denied"][1:]
    assert [(a.actor, a.detail["resource_id"]) for a in rows] == [(EMPLOYEE["id"], r) for r in ("x", "y", "z")]
    assert all(a.at is not None for a in rows)
    assert runtime.audit.flush() == 0  # written once


def test_keys_are_hashed_rotatable_and_revocable(hub: TenantHub, tmp_path: Path) -> None:
    key, key_id = hub.issue_key("a", "host app")
    principal = hub.authenticate(key)
    assert principal is not None and principal.tenant == "a" and not principal.admin
    control = sa.create_engine(f"sqlite:///{tmp_path / 'data' / 'control.sqlite'}")
    with control.connect() as conn:
        stored = conn.execute(sa.text("select * from rw_api_keys")).mappings().all()
    control.dispose()
    assert not any(key.split("_", 2)[2] in str(dict(row)) for row in stored)  # the secret is never stored
    assert hub.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    new_key, _ = hub.issue_key("a", "rotated")
    assert hub.revoke_key(key_id, "b") is False  # another tenant cannot revoke it
    assert hub.revoke_key(key_id, "a") is True
    assert hub.authenticate(key) is None
    assert hub.authenticate(new_key) is not None
    admin, _ = hub.issue_key(None, "ops")
    assert hub.authenticate(admin) is not None and hub.authenticate(admin).admin  # type: ignore[union-attr]


def test_a_second_process_sees_the_switch_within_the_cache_time(hub: TenantHub, tmp_path: Path) -> None:
    with TenantHub(str(tmp_path / "data"), cache_seconds=60) as other:
        first = other.runtime("a").version
        hub.deploy("a", changed_files(), matrix="service")
        assert other.runtime("a").version == first  # cached
        other.cache_seconds = 0.0  # the cache time has passed
        assert other.runtime("a").version == hub.tenant("a")["active_version"] != first


# --- PostgreSQL: row-level security ---------------------------------------------------------------


@pytest.fixture
def pg_tenants(pg_server_url: str) -> Iterator[tuple[str, str]]:
    """(owner URL, app URL) of a fresh schema under row-level security."""
    with tenant_schema(pg_server_url) as urls:
        yield urls


@pytest.mark.postgres
def test_row_level_security_stops_direct_sql_across_tenants(pg_tenants: tuple[str, str]) -> None:
    _owner, app = pg_tenants
    with TenantHub(app, cache_seconds=0.0) as hub:
        for tenant in ("a", "b"):
            hub.create_tenant(tenant)
            hub.deploy(tenant, bundle_files(), matrix="service")
            hub.engine(tenant).start("reminder", {"owner": tenant}, actor=EMPLOYEE, instance_id="same-id")
        assert hub.engine("a").get("same-id").data == {"owner": "a"}
        assert hub.engine("b").get("same-id").data == {"owner": "b"}
        from regelwerk.errors import ConflictError

        with pytest.raises(ConflictError) as taken:  # within one tenant the id is taken
            hub.engine("a").start("reminder", {"owner": "a2"}, actor=EMPLOYEE, instance_id="same-id")
        assert (taken.value.current_version, taken.value.current_state) == (1, hub.engine("a").get("same-id").state)
    engine = sa.create_engine(app)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("select set_config('regelwerk.tenant', 'a', true)"))
            rows = conn.execute(sa.text("select tenant, id from rw_instances")).all()
            assert rows == [("a", "same-id")]
            assert conn.execute(sa.text("select count(*) from rw_history where tenant = 'b'")).scalar() == 0
            assert conn.execute(sa.text("select count(*) from rw_deployments")).scalar() == 1
            changed = conn.execute(sa.text("update rw_instances set state = 'hacked' where tenant = 'b'"))
            assert changed.rowcount == 0
            assert conn.execute(sa.text("delete from rw_timers where tenant = 'b'")).rowcount == 0
        with pytest.raises(sa.exc.ProgrammingError, match="row-level security"), engine.begin() as conn:
            conn.execute(sa.text("select set_config('regelwerk.tenant', 'a', true)"))
            conn.execute(sa.text("insert into rw_audit (tenant, at, actor, action, detail) "
                                 "values ('b', now(), 'x', 'forged', '{}')"))
        with pytest.raises(sa.exc.ProgrammingError, match="row-level security"), engine.begin() as conn:
            conn.execute(sa.text("select set_config('regelwerk.tenant', 'a', true)"))
            conn.execute(sa.text("update rw_instances set tenant = 'b'"))
        with engine.begin() as conn:  # no tenant: nothing visible, nothing insertable
            assert conn.execute(sa.text("select count(*) from rw_instances")).scalar() == 0
        with pytest.raises(sa.exc.DBAPIError), engine.begin() as conn:
            conn.execute(sa.text("insert into rw_audit (at, actor, action, detail) values (now(), 'x', 'y', '{}')"))
        with pytest.raises(sa.exc.ProgrammingError), engine.begin() as conn:  # the role cannot switch it off
            conn.execute(sa.text("alter table rw_instances disable row level security"))
        with engine.begin() as conn:
            conn.execute(sa.text("select set_config('regelwerk.tenant', 'b', true)"))
            assert conn.execute(sa.text("select state from rw_instances")).scalars().all() == ["waiting"]
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_the_hub_refuses_a_database_without_row_level_security(pg_tenants: tuple[str, str]) -> None:
    owner, app = pg_tenants
    engine = sa.create_engine(owner)
    with engine.begin() as conn:
        conn.execute(sa.text("alter table rw_outbox no force row level security"))
    engine.dispose()
    with pytest.raises(UsageError, match="rw_outbox"):
        TenantHub(app)


def test_relationship_facts_added_in_one_process_reach_another(hub: TenantHub, tmp_path: Path) -> None:
    question = ({"id": "m9", "roles": ["leidinggevende"]}, "read", "note", {"author": "e9"})
    with TenantHub(str(tmp_path / "data"), cache_seconds=0.0) as other:
        assert not other.runtime("a").port(None).check(*question).allowed
        hub.runtime("a").port(None).relationships.relate("reports_to", "e9", "m9")
        assert other.runtime("a").port(None).check(*question).allowed
        hub.runtime("a").port(None).relationships.unrelate("reports_to", "e9", "m9", at=datetime.now(UTC))
        assert not other.runtime("a").port(None).check(*question).allowed
        assert not other.runtime("b").port(None).check(*question).allowed

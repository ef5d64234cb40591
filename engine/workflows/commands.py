"""CLI commands: ``regelwerk instance``, ``render``, ``db``, ``migrate`` and ``incidents`` (through the registry)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from regelwerk.registry import Registry

__all__ = ["register"]

DEFAULT_STORE = "sqlite:///regelwerk.sqlite"


def _emit(data: Any, fmt: str = "json") -> None:
    from regelwerk.cli import echo_result

    echo_result(data, fmt)


def _actor(value: str, roles: Sequence[str]) -> Any:
    from regelwerk.actors import Actor
    from regelwerk.cli import fail

    try:
        actor = Actor.of(json.loads(value)) if value.strip().startswith("{") else Actor.of(value)
    except (json.JSONDecodeError, RecursionError) as exc:  # an internal error (exit 3) before: found by attack
        fail(f"--actor is neither an id nor a JSON object: {str(exc)[:200]}", 2)
    return Actor(actor.id, tuple(actor.roles) + tuple(roles), actor.attributes) if roles else actor


def _json_object(text: str | None) -> dict[str, Any]:
    from regelwerk.cli import fail

    if not text:
        return {}
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:  # nested too deep: an internal error (exit 3) before
        fail(f"--data is not JSON: {str(exc)[:200]}", 2)
    if not isinstance(data, dict):
        fail("--data must be a JSON object", 2)
    return data


def _policy(compiled: Any, matrix: str | None) -> str | None:
    """The bundle's matrix named ``matrix``; without a name the bundle's only matrix, else none (refuses)."""
    from regelwerk.cli import fail

    names = sorted(compiled.of_kind("PermissionMatrix"))
    if matrix is None:
        return names[0] if len(names) == 1 else None
    if matrix not in names:
        fail(f"--matrix {matrix!r}: the bundle has no such PermissionMatrix; known: {', '.join(names) or 'none'}", 2)
    return matrix


@contextmanager
def _engine(path: str, store: str, matrix: str | None = None) -> Iterator[Any]:
    """An engine for the CLI; runtime refusals print as JSON and exit 1 (usage errors exit 2).

    Permissions come from the bundle's PermissionMatrix ``matrix`` (see :func:`_policy`); with none every
    permission-guarded start and event is refused, with the explanation.
    """
    from regelwerk.cli import load_compiled, registry
    from regelwerk.errors import RegelwerkError, UsageError
    from regelwerk.runtime import Engine

    compiled = load_compiled(path)
    engine = Engine(compiled, store=store, registry=registry(), permissions=_policy(compiled, matrix))
    try:
        yield engine
    except RegelwerkError as exc:
        _emit(exc.to_dict())
        sys.exit(2 if isinstance(exc, UsageError) else 1)
    finally:
        engine.close()


def _commands() -> list[Any]:
    import click

    store_option = click.option("--store", default=DEFAULT_STORE, show_default=True, help="Store URL.")
    actor_option = click.option("--actor", default="system", show_default=True,
                                help="Actor id, or a JSON object {id, roles, ...}.")
    role_option = click.option("--role", "roles", multiple=True, help="A role of the actor (repeatable).")
    path_argument = click.argument("path", type=click.Path(exists=True))
    from regelwerk.cli import format_option

    fmt_option = format_option(default="json")
    matrix_option = click.option("--matrix", default=None,
                                 help="The bundle's PermissionMatrix that decides (default: its only one; "
                                      "without one every permission-guarded start and event is refused).")

    @click.group("instance")
    def instance() -> None:
        """Workflow instances in a store: start, fire, show, history."""

    @instance.command("start")
    @store_option
    @path_argument
    @click.argument("workflow")
    @click.option("--data", default=None, help="Instance data as a JSON object.")
    @actor_option
    @role_option
    @click.option("--id", "instance_id", default=None, help="The instance id (default: generated).")
    @matrix_option
    @fmt_option
    def start(store: str, path: str, workflow: str, data: str | None, actor: str, roles: Sequence[str],
              instance_id: str | None, matrix: str | None, fmt: str) -> None:
        """Start an instance of WORKFLOW from the bundle at PATH (needs the workflow's start permission)."""
        with _engine(path, store, matrix) as engine:
            _emit(engine.start(workflow, _json_object(data), _actor(actor, roles), instance_id).to_dict(), fmt)

    @instance.command("fire")
    @store_option
    @path_argument
    @click.argument("instance_id")
    @click.argument("event")
    @click.option("--data", default=None, help="Event data (merged into the instance data) as JSON.")
    @actor_option
    @role_option
    @click.option("--expected-version", type=int, default=None, help="Refuse if the instance changed since.")
    @matrix_option
    @fmt_option
    def fire(store: str, path: str, instance_id: str, event: str, data: str | None, actor: str,
             roles: Sequence[str], expected_version: int | None, matrix: str | None, fmt: str) -> None:
        """Fire EVENT on INSTANCE_ID (decided by the bundle's permission matrix)."""
        with _engine(path, store, matrix) as engine:
            _emit(engine.fire(instance_id, event, _actor(actor, roles), _json_object(data) or None,
                              expected_version).to_dict(), fmt)

    @instance.command("show")
    @store_option
    @path_argument
    @click.argument("instance_id")
    @actor_option
    @role_option
    @matrix_option
    @fmt_option
    def show(store: str, path: str, instance_id: str, actor: str, roles: Sequence[str], matrix: str | None,
             fmt: str) -> None:
        """Show an instance and the events ACTOR may fire now (with reasons for the others)."""
        with _engine(path, store, matrix) as engine:
            record = engine.get(instance_id)
            _emit({**record.to_dict(),
                   "events": [o.to_dict() for o in engine.available_events(instance_id, _actor(actor, roles))],
                   "timers": [{"event": t.event, "due_at": t.due_at.isoformat(), "status": t.status}
                              for t in engine.timers(instance_id)]}, fmt)

    @instance.command("history")
    @store_option
    @path_argument
    @click.argument("instance_id")
    @fmt_option
    def history(store: str, path: str, instance_id: str, fmt: str) -> None:
        """Every state change of an instance."""
        with _engine(path, store) as engine:
            _emit([h.to_dict() for h in engine.history(instance_id)], fmt)

    @click.group("render")
    def render_group() -> None:
        """Diagrams of definitions."""

    @render_group.command("workflow")
    @click.argument("path")
    @click.argument("name")
    @click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True)
    def render_workflow(path: str, name: str, fmt: str) -> None:
        """Print the diagram of workflow NAME from the bundle at PATH."""
        from regelwerk.cli import load_definition, path_then_name
        from regelwerk.workflows.render import render

        path, name = path_then_name(path, name, "render workflow")
        model = load_definition(path, "Workflow", name)
        click.echo(render(model, fmt), nl=False)

    @click.group("db")
    def db() -> None:
        """Database schema management (Alembic migrations shipped in the package)."""

    @db.command("upgrade")
    @click.argument("url")
    @click.option("--revision", default="heads", show_default=True,
                  help="Target revision; 'heads' is the core's and every installed pack's latest.")
    @format_option()
    def upgrade(url: str, revision: str, fmt: str) -> None:
        """Bring the regelwerk tables of the database at URL to REVISION."""
        from regelwerk.store.sql import upgrade as run_upgrade

        run_upgrade(url, revision)
        if fmt == "json":
            _emit({"store": url, "revision": revision})
        else:
            click.echo(f"{url}: upgraded to {revision}", err=True)

    def _mapping(items: Sequence[str]) -> dict[str, str]:
        from regelwerk.cli import fail

        out = {}
        for item in items:
            if "=" not in item:
                fail(f"--map takes OLD=NEW, got {item!r}", 2)
            old, new = item.split("=", 1)
            out[old.strip()] = new.strip()
        return out

    @click.group("migrate")
    def migrate() -> None:
        """Move running instances to the current definition version (explicit, audited)."""

    map_option = click.option("--map", "maps", multiple=True, help="A state mapping OLD=NEW (repeatable).")
    workflow_option = click.option("--workflow", default=None, help="Only this workflow.")

    @migrate.command("plan")
    @store_option
    @path_argument
    @workflow_option
    @map_option
    @fmt_option
    def plan(store: str, path: str, workflow: str | None, maps: Sequence[str], fmt: str) -> None:
        """List instances on older versions and what apply would do; exit 1 if any is blocked."""
        with _engine(path, store) as engine:
            items = engine.migrate_plan(workflow, _mapping(maps))
            _emit([i.to_dict() for i in items], fmt)
        sys.exit(1 if any(i.problems for i in items) else 0)

    @migrate.command("apply")
    @store_option
    @path_argument
    @workflow_option
    @map_option
    @actor_option
    @fmt_option
    def apply(store: str, path: str, workflow: str | None, maps: Sequence[str], actor: str, fmt: str) -> None:
        """Move the instances that fit (blocked ones stay); exit 1 if any was blocked."""
        with _engine(path, store) as engine:
            items = engine.migrate_apply(workflow, _mapping(maps), _actor(actor, ()))
            _emit([i.to_dict() for i in items], fmt)
        sys.exit(1 if any(i.problems for i in items) else 0)

    @click.group("incidents")
    def incidents() -> None:
        """Failures of actions, timers and tick tasks: list them, retry after a fix, or resolve by hand."""

    text_option = format_option()

    def _show(rows: Sequence[Any], fmt: str) -> None:
        if fmt == "json":
            _emit([r.to_dict() for r in rows])
            return
        if not rows:
            click.echo("no incidents")
        for r in rows:
            retry = f"next retry {r.next_retry_at.isoformat()}" if r.next_retry_at else "waits for a person"
            click.echo(f"#{r.id} {r.status} {r.instance_id or '-'} {r.event}: {r.error_type}: {r.message} "
                       f"(attempts {r.attempts}; {retry}; last {r.last_at.isoformat()})")

    @contextmanager
    def _incident_store(url: str) -> Iterator[Any]:
        from regelwerk.cli import fail
        from regelwerk.errors import RegelwerkError
        from regelwerk.store import open_store

        store = open_store(url)
        try:
            yield store
        except RegelwerkError as exc:
            fail(str(exc), 1)
        finally:
            store.close()

    @incidents.command("list")
    @store_option
    @click.option("--status", type=click.Choice(["open", "resolved", "all"]), default="open", show_default=True)
    @click.option("--instance", "instance_id", default=None, help="Only this instance's incidents.")
    @text_option
    def incidents_list(store: str, status: str, instance_id: str | None, fmt: str) -> None:
        """List incidents, oldest first."""
        from regelwerk.workflows.incidents import list_incidents

        with _incident_store(store) as opened:
            _show(list_incidents(opened, None if status == "all" else status, instance_id), fmt)

    @incidents.command("retry")
    @store_option
    @click.argument("incident_id", type=int)
    @click.option("--bundle", "path", required=True, type=click.Path(exists=True),
                  help="The bundle the instance runs (to fire its event again).")
    @actor_option
    @matrix_option
    @text_option
    def incidents_retry(store: str, incident_id: int, path: str, actor: str, matrix: str | None, fmt: str) -> None:
        """Try the failed work of INCIDENT_ID again now (a fire's incident fires its event again as --actor, whose
        own permission in the bundle's matrix decides that fire); exit 1 if it failed again. The command is the
        operator's, who reaches the store itself: whether --actor may retry incidents is not asked (the Python API
        and the service ask the policy)."""
        with _engine(path, store, matrix) as engine:
            after = engine.incident_service.retry_incident(incident_id, _actor(actor, ()))
            _show([after], fmt)
        sys.exit(0 if after.status == "resolved" else 1)

    @incidents.command("resolve")
    @store_option
    @click.argument("incident_id", type=int)
    @click.option("--note", default="", help="Why it is closed (kept with the incident and in the audit).")
    @actor_option
    @text_option
    def incidents_resolve(store: str, incident_id: int, note: str, actor: str, fmt: str) -> None:
        """Close INCIDENT_ID by hand (its work is not retried); audited."""
        from datetime import UTC, datetime

        from regelwerk.workflows.incidents import resolve_incident

        with _incident_store(store) as opened:
            done = resolve_incident(opened, incident_id, _actor(actor, ()), datetime.now(UTC), note)
        if fmt == "json":
            _emit(done.to_dict())
        else:
            _show([done], fmt)

    commands: list[Callable[..., Any]] = [instance, render_group, db, migrate, incidents]
    return commands


def register(registry: Registry, plugin: str) -> None:
    """Contribute the commands to the ``regelwerk`` CLI."""
    for command in _commands():
        registry.add_command(command)

"""CLI: ``regelwerk serve``, ``regelwerk worker`` and ``regelwerk tenants`` (the service needs the ``service``
extra: ``pip install 'regelwerk[service]'``)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import click
from regelwerk.cli import echo_result, format_option
from regelwerk.registry import Registry

__all__ = ["register"]

DEFAULT_DATA = "regelwerk-data"


def _hub(data: str | None, database: str | None, cache_seconds: float = 1.0,
         plugin_time_limit: float | None = None) -> Any:
    from regelwerk.errors import UsageError
    from regelwerk.tenancy.hub import TenantHub

    if data and database:
        raise click.UsageError("give --data (SQLite) or --database (PostgreSQL), not both")
    try:
        return TenantHub(database or data or DEFAULT_DATA, cache_seconds=cache_seconds,
                         plugin_time_limit=plugin_time_limit)
    except UsageError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


def _location_options(func: Any) -> Any:
    func = click.option("--database", envvar="REGELWERK_DATABASE", default=None,
                        help="PostgreSQL URL of the application role (not the tables' owner).")(func)
    return click.option("--data", envvar="REGELWERK_DATA", default=None, type=click.Path(file_okay=False),
                        help=f"SQLite directory: control.sqlite + one file per tenant (default {DEFAULT_DATA}).")(func)


def _bootstrap(hub: Any, bundle: str, tenant: str | None, matrix: str) -> None:
    """One-command default: the bundle's tenant, its deployment, and keys printed once."""
    from regelwerk.tenancy.hub import DeploymentRejected, read_bundle_dir

    tenant_id = tenant or re.sub(r"[^a-z0-9-]+", "-", Path(bundle).resolve().name.lower()).strip("-")[:63] or "default"
    if tenant_id not in {t["id"] for t in hub.tenants()}:
        hub.create_tenant(tenant_id, Path(bundle).name)
    try:
        result = hub.deploy(tenant_id, read_bundle_dir(bundle), matrix, actor="regelwerk serve")
    except DeploymentRejected as exc:
        for d in exc.diagnostics:
            click.echo(f"{d['file']}:{d['line']}:{d['column']}: {d['code']}: {d['message']}", err=True)
        sys.exit(1)
    click.echo(f"tenant {tenant_id}: version {result['version']} active (matrix {result['matrix'] or 'none'})")
    if not [k for k in hub.keys(None) if not k["revoked"]]:
        admin, _ = hub.issue_key(None, "bootstrap admin")
        click.echo(f"admin key (shown once, keep it): {admin}")
    if not [k for k in hub.keys(tenant_id) if not k["revoked"]]:
        key, _ = hub.issue_key(tenant_id, "bootstrap")
        click.echo(f"API key of tenant {tenant_id} (shown once, keep it): {key}")


@click.command("serve")
@click.argument("bundle", required=False, type=click.Path(exists=True, file_okay=False))
@_location_options
@click.option("--tenant", default=None, help="Tenant id for BUNDLE (default: the folder's name).")
@click.option("--matrix", default="", help="The PermissionMatrix guarding BUNDLE's workflows.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--cache-seconds", default=1.0, show_default=True, type=float,
              help="How long a process trusts its view of keys and active versions.")
@click.option("--threads", default=40, show_default=True, type=int, help="Worker threads for requests.")
@click.option("--max-body-bytes", default=32 * 1024 * 1024, show_default=True, type=click.IntRange(min=1024),
              help="Refuse larger request bodies (413) before reading them.")
def serve_command(bundle: str | None, data: str | None, database: str | None, tenant: str | None, matrix: str,
                  host: str, port: int, cache_seconds: float, threads: int, max_body_bytes: int) -> None:
    """Run the HTTP/JSON API (OpenAPI at /docs); with BUNDLE, deploy it as one tenant and print its key once."""
    try:
        import uvicorn
        from regelwerk.service.app import create_app
    except ImportError as exc:
        click.echo(f"error: the service needs its extra: pip install 'regelwerk[service]' ({exc})", err=True)
        sys.exit(2)
    hub = _hub(data, database, cache_seconds)
    if bundle:
        _bootstrap(hub, bundle, tenant, matrix)
    app = create_app(hub, threads, max_body_bytes)
    click.echo(f"regelwerk serving on http://{host}:{port} (OpenAPI: /openapi.json, docs: /docs)", err=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        hub.close()


@click.command("worker")
@_location_options
@click.option("--interval", default=60.0, show_default=True, type=float, help="Seconds between a tenant's ticks.")
@click.option("--poll", default=1.0, show_default=True, type=float, help="Seconds to wait when nothing is due.")
@click.option("--once", is_flag=True, help="Tick every due tenant once and exit.")
@click.option("--name", default=None, help="This worker's name in rw_tenant_ticks (default host:pid).")
@click.option("--plugin-time-limit", "plugin_time_limit", default=None, type=click.FloatRange(min=0, min_open=True),
              help="Seconds one call of plugin code (action, guard, tick task, item source) may run before it is "
                   "failed as its work's incident (default: no limit).")
@format_option(default="json")
def worker_command(data: str | None, database: str | None, interval: float, poll: float, once: bool,
                   name: str | None, plugin_time_limit: float | None, fmt: str) -> None:
    """Tick every tenant's due work; run several against one PostgreSQL (SIGTERM: finish the tenant, then stop)."""
    from regelwerk.tenancy.worker import Worker

    hub = _hub(data, database, plugin_time_limit=plugin_time_limit)
    worker = Worker(hub, interval=interval, poll=poll, name=name,
                    log=lambda line: click.echo(line, err=True))
    worker.install_signal_handlers()
    try:
        done = worker.run(once=once)
    finally:
        hub.close()
    echo_result({"worker": worker.name, "ticked": done}, fmt, json.dumps)


@click.group("tenants")
def tenants_group() -> None:
    """Tenants, their keys and the database (the service's control plane)."""


@tenants_group.command("upgrade")
@click.argument("owner_url")
@click.option("--app-role", default=None, help="Grant this role (the service's login) access to every table.")
@format_option()
def tenants_upgrade(owner_url: str, app_role: str | None, fmt: str) -> None:
    """Create or upgrade every table, and on PostgreSQL enforce tenant isolation with row-level security."""
    from regelwerk.tenancy.hub import upgrade_all

    changed = upgrade_all(owner_url, app_role)
    echo_result({"upgraded": True, "protected_tables": [str(c) for c in changed]}, fmt,
                lambda d: f"upgraded; row-level security added to {len(d['protected_tables'])} table(s)")


@tenants_group.command("create")
@click.argument("tenant")
@_location_options
@click.option("--name", default="")
@format_option()
def tenants_create(tenant: str, data: str | None, database: str | None, name: str, fmt: str) -> None:
    """Add a tenant and print its first API key (once)."""
    from regelwerk.errors import UsageError

    hub = _hub(data, database)
    try:
        hub.create_tenant(tenant, name)
        key, _ = hub.issue_key(tenant, "first")
    except UsageError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    finally:
        hub.close()
    echo_result({"tenant": tenant, "key": key}, fmt, lambda d: str(d["key"]))


@tenants_group.command("admin-key")
@_location_options
@click.option("--label", default="")
@format_option()
def tenants_admin_key(data: str | None, database: str | None, label: str, fmt: str) -> None:
    """Issue an admin key (tenant management, /metrics) and print it once."""
    hub = _hub(data, database)
    try:
        key, _ = hub.issue_key(None, label)
    finally:
        hub.close()
    echo_result({"key": key}, fmt, lambda d: str(d["key"]))


@tenants_group.command("list")
@_location_options
@format_option(default="json")
def tenants_list(data: str | None, database: str | None, fmt: str) -> None:
    """Every tenant with its active version."""
    hub = _hub(data, database)
    try:
        echo_result(hub.tenants(), fmt)
    finally:
        hub.close()


@tenants_group.command("migrate")
@click.argument("tenant")
@click.argument("step", type=click.Choice(["plan", "apply"]))
@_location_options
@click.option("--workflow", default=None)
@click.option("--map", "pairs", multiple=True, metavar="OLD=NEW", help="Map an old state to a new one.")
@format_option(default="json")
def tenants_migrate(tenant: str, step: str, data: str | None, database: str | None, workflow: str | None,
                    pairs: tuple[str, ...], fmt: str) -> None:
    """Plan or apply moving a tenant's instances to its active version."""
    mapping = dict(p.split("=", 1) for p in pairs)
    hub = _hub(data, database)
    try:
        engine = hub.engine(tenant)
        items = engine.migrate_plan(workflow, mapping) if step == "plan" else engine.migrate_apply(workflow, mapping)
    finally:
        hub.close()
    echo_result([i.to_dict() for i in items], fmt)


@click.command("openapi")
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False), help="Write to a file.")
def openapi_command(output: str | None) -> None:
    """Print the service's OpenAPI document (shipped as docs/openapi.json)."""
    from regelwerk.service.app import openapi_document

    text = json.dumps(openapi_document(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


def register(registry: Registry, plugin: str) -> None:
    """Add ``serve``, ``worker``, ``tenants`` and ``openapi``."""
    for command in (serve_command, worker_command, tenants_group, openapi_command):
        registry.add_command(command)

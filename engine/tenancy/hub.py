"""``TenantHub``: one store for many customers: tenants, their API keys, their deployed bundle versions, and
one running ``Engine`` per tenant on the tenant's active version.

Two layouts:

- **SQLite** (a directory): ``control.sqlite`` holds the control plane, every tenant has its own file
  ``tenants/<tenant>.sqlite`` (isolation by file).
- **PostgreSQL** (a URL of the application role): one database; every tenant-owned row carries its tenant and
  row-level security makes a transaction bound to one tenant unable to see or write another's rows
  (:mod:`regelwerk.tenancy.rls`). The hub refuses to start when a tenant-owned table is not protected.

Deploying is validate -> compile -> store -> switch: the new version is compiled before anything is written, and
the switch of ``rw_tenants.active_version`` is one committed update; until then the old version serves. A broken
upload writes nothing and raises :class:`DeploymentRejected` with every diagnostic. Instances stay pinned to the
definition version they started under (the engine keeps every version it ran in ``rw_definitions``).

Other processes notice a switch (and a revoked key) within ``cache_seconds`` (default one second).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from regelwerk.bundle import shipped_standard
from regelwerk.diagnostics import Diagnostic
from regelwerk.errors import RegelwerkError, UsageError
from regelwerk.registry import Registry
from regelwerk.tenancy.keys import new_key, parse_key, secret_matches
from regelwerk.tenancy.tables import rw_api_keys, rw_deployments, rw_tenant_ticks, rw_tenants

__all__ = ["DeploymentRejected", "Principal", "TenantHub", "TenantRuntime", "UnknownTenant"]

TENANT_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_PATH_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_FILES = 500
MAX_FILE_BYTES = 1_000_000
MAX_TOTAL_BYTES = 10_000_000


class UnknownTenant(RegelwerkError):
    """No tenant with this id."""

    code = "unknown_tenant"

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        super().__init__(f"no tenant {tenant!r}")

    def to_dict(self) -> dict[str, Any]:
        """Include the tenant id."""
        return {**super().to_dict(), "tenant": self.tenant}


class DeploymentRejected(RegelwerkError):
    """A bundle upload that does not validate or compile: nothing was stored or switched."""

    code = "definition_error"

    def __init__(self, diagnostics: list[dict[str, Any]]) -> None:
        self.diagnostics = diagnostics
        errors = [d for d in diagnostics if d.get("severity") == "error"]
        first = errors[0] if errors else {"message": "invalid bundle"}
        super().__init__(f"the bundle has {len(errors)} error(s); first: {first.get('message')}")

    def to_dict(self) -> dict[str, Any]:
        """Include every diagnostic (file, line, column, code, pointer, hint)."""
        return {**super().to_dict(), "diagnostics": self.diagnostics}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a presented API key is: an admin key (``tenant`` None) or a tenant's key."""

    key_id: str
    tenant: str | None

    @property
    def admin(self) -> bool:
        """True for an admin key."""
        return self.tenant is None


class DeferredAudit:
    """The service's audit sink for denied decisions: every denial is one row, written once.

    A denial inside the engine's unit of work (a refused start or fire) joins that unit (no second write
    transaction beside the first, which on SQLite would wait for its own lock). A denial outside one (``can``,
    ``can/batch``) is kept per thread until :meth:`flush`, which the service calls after the request's
    decisions, in one transaction with one executemany.
    """

    def __init__(self, store: Any) -> None:
        self._local = threading.local()
        self._store = store
        engine = getattr(store, "engine", None)
        dialect = getattr(getattr(engine, "dialect", None), "name", "")
        self._serial: threading.Lock | None = threading.Lock() if dialect == "sqlite" else None

    def sink(self, record: Mapping[str, Any]) -> None:
        """The port's ``audit``: inside the engine's unit of work (a refused start or fire) the row joins that
        unit as its refusal (written exactly once, also when the unit rolls back); otherwise (``can``, a batch)
        it is kept for :meth:`flush`."""
        from regelwerk.store.records import AuditEntry
        from regelwerk.store.unit import current_unit

        unit = current_unit(self._store)
        if unit is not None:
            unit.refuse(AuditEntry(at=record["at"], actor=record["actor"], action=record["action"],
                                   instance_id=record.get("instance_id"), detail=record["detail"]))
            return
        pending: list[Mapping[str, Any]] | None = getattr(self._local, "pending", None)
        if pending is None:
            pending = self._local.pending = []
        pending.append(record)

    def flush(self) -> int:
        """Write this thread's kept records in one transaction; how many decisions were written.

        Every denial is its own ``permission.denied`` row with its actor and time, as the port writes it (a batch
        of questions gives one row per denied question, inserted with one executemany). On SQLite the writes of
        the service's threads take turns on a process lock instead of waiting on the file lock.
        """
        from regelwerk.store.records import AuditEntry

        pending: list[Mapping[str, Any]] = getattr(self._local, "pending", None) or []
        if not pending:
            return 0
        self._local.pending = []
        entries = [AuditEntry(at=r["at"], actor=r["actor"], action=r["action"], instance_id=r.get("instance_id"),
                              detail=r["detail"]) for r in pending]
        if self._serial is not None:
            with self._serial, self._store.transaction() as tx:
                tx.add_audits(entries)
        else:
            with self._store.transaction() as tx:
                tx.add_audits(entries)
        return len(entries)


@dataclass(slots=True)
class TenantRuntime:
    """A tenant's running version: the compiled bundle, its engine and its permission port."""

    tenant: str
    version: str
    compiled: Any
    engine: Any
    matrix: str
    permissions: Any
    audit: DeferredAudit
    checked: float = field(default=0.0)
    ports: dict[str, Any] = field(default_factory=dict)
    relations_seen: tuple[Any, ...] = ()

    def refresh_relations(self) -> bool:
        """Reload the relationship facts when another process changed them (True when reloaded).

        The index lives in this process's memory; a cheap signature of ``rw_relations`` (rows, newest id,
        withdrawals) read on the cache interval tells whether anyone added or withdrew a fact since.
        """
        relationships = getattr(self.permissions, "relationships", None)
        if relationships is None:
            return False
        from regelwerk.permissions.tables import rw_relations

        r = rw_relations.c
        with relationships.engine.connect() as conn:
            seen = tuple(conn.execute(sa.select(sa.func.count(), sa.func.max(r.id), sa.func.count(r.withdrawn_at),
                                                sa.func.max(r.withdrawn_at))).one())
        if seen == self.relations_seen:
            return False
        first = not self.relations_seen
        self.relations_seen = seen
        if not first:
            relationships.refresh()
        return not first

    def port(self, matrix: str | None) -> Any:
        """The permission port of ``matrix`` (None: the deployment's), sharing the tenant's relationship facts."""
        if not matrix or matrix == self.matrix:
            if not self.matrix:
                raise UsageError("the tenant's bundle has no PermissionMatrix: every permission is denied")
            return self.permissions
        found = self.ports.get(matrix)
        if found is None:
            from regelwerk.permissions.adapter import MatrixPermissions

            found = MatrixPermissions(self.compiled, self.permissions.relationships, matrix, audit=self.audit.sink,
                                      audit_reads=True)
            self.ports[matrix] = found
        return found


def _diag_dict(diagnostic: Diagnostic, root: str) -> dict[str, Any]:
    """A diagnostic as the API shows it: its file relative to the upload ``root`` (the folder the bundle was
    compiled from), a shipped base's file as ``<base>/<path>`` (``standard/...``), any other file by its name alone:
    no answer names a folder of the server (another tenant's upload among them)."""
    data = dict(diagnostic.to_dict())
    name = str(data.get("file") or "")
    if name:
        # diagnostics name files relative to the working directory where that is short: resolve either form
        where = (Path(name) if os.path.isabs(name) else Path.cwd() / name).resolve()
        data["file"] = where.name
        for base, folder in (("", Path(root)), ("standard/", shipped_standard())):
            with contextlib.suppress(ValueError):
                data["file"] = base + where.relative_to(folder.resolve()).as_posix()
                break
    return data


def bundle_version(files: Mapping[str, str]) -> str:
    """The content hash of an upload (sorted paths and texts)."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.encode() + b"\0" + files[path].encode() + b"\0")
    return digest.hexdigest()[:16]


def check_files(files: Mapping[str, str]) -> list[dict[str, Any]]:
    """Problems with the upload itself (paths, sizes), as diagnostics."""
    problems: list[dict[str, Any]] = []

    def problem(path: str, message: str) -> None:
        problems.append({"code": "RW001", "severity": "error", "message": message, "file": path, "line": 0,
                         "column": 0, "pointer": "", "hint": "relative paths like 'workflows/x.yaml', text files"})

    if not files:
        problem("", "the upload holds no files")
    if len(files) > MAX_FILES:
        problem("", f"too many files ({len(files)} > {MAX_FILES})")
    total = 0
    # every folder the paths name: a path that is also another's folder cannot be written (found by attack:
    # {"x.yaml": ..., "x.yaml/y.yaml": ...} was a 500 FileExistsError, its half-written copy left on disk)
    folders = {"/".join(path.split("/")[:end]) for path in files for end in range(1, path.count("/") + 1)}
    for path, text in files.items():
        parts = path.split("/")
        # each part by itself (fullmatch: "x.yaml\n" is no name), so the path is its own canonical form: "./x"
        # and "a//b" (two keys for one file, which of them is written?) are refused
        if not path or not all(_PATH_PART.fullmatch(p) for p in parts):
            problem(path, f"not an acceptable file path: {path!r}")
            continue
        if path in folders:
            problem(path, f"{path!r} is a file and the folder of another file of the upload")
            continue
        if not isinstance(text, str):
            problem(path, "file content must be text")
            continue
        size = len(text.encode())
        total += size
        if size > MAX_FILE_BYTES:
            problem(path, f"file too large ({size} bytes > {MAX_FILE_BYTES})")
    if total > MAX_TOTAL_BYTES:
        problem("", f"upload too large ({total} bytes > {MAX_TOTAL_BYTES})")
    return problems


def read_bundle_dir(path: str | Path) -> dict[str, str]:
    """Every text file of a bundle directory as ``{relative path: text}`` (for uploads)."""
    root = Path(path)
    out: dict[str, str] = {}
    for item in sorted(root.rglob("*")):
        rel = item.relative_to(root).as_posix()
        if item.is_file() and not any(p.startswith(".") for p in item.relative_to(root).parts):
            try:
                out[rel] = item.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
    return out


class TenantHub:
    """Tenants, keys, deployments and one engine per tenant (see the module docstring)."""

    def __init__(self, location: str, registry: Registry | None = None, cache_seconds: float = 1.0,
                 clock: Callable[[], datetime] | None = None, plugin_time_limit: float | None = None) -> None:
        from regelwerk.registry import load_registry
        from regelwerk.store.sql import create_sa_engine

        self.registry = registry if registry is not None else load_registry()
        self.cache_seconds = cache_seconds
        #: the tenants' engines' limit for one call of plugin code (``Engine.plugin_time_limit``)
        self.plugin_time_limit = plugin_time_limit
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.postgres = location.startswith("postgresql")
        self.location = location
        self._lock = threading.RLock()
        self._runtimes: dict[str, TenantRuntime] = {}
        #: version -> (compiled bundle, the folder it was compiled from), shared by tenants with identical uploads
        self._compiled: dict[str, tuple[Any, str]] = {}
        self._stores: dict[str, Any] = {}
        self._keys: dict[str, tuple[Principal | None, float]] = {}
        self._work = Path(tempfile.mkdtemp(prefix="regelwerk-hub-"))
        if self.postgres:
            from regelwerk.tenancy.rls import bind_tenants, unprotected_tables

            self.root = bind_tenants(create_sa_engine(location, pool_size=10, max_overflow=20))
            with self.root.connect() as conn:
                missing = unprotected_tables(conn)
            if missing:
                self.root.dispose()
                raise UsageError("tenant-owned tables without row-level security: " + ", ".join(missing),
                                 hint="run 'regelwerk tenants upgrade OWNER_URL' as the tables' owner")
            self.data_dir: Path | None = None
        else:
            self.data_dir = Path(location)
            (self.data_dir / "tenants").mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{self.data_dir / 'control.sqlite'}"
            upgrade_control(url)
            self.root = create_sa_engine(url)

    # --- connections --------------------------------------------------------------------------

    def _control(self, tenant: str | None = None) -> sa.Engine:
        """The control plane's engine (on PostgreSQL bound to ``tenant`` for its tenant-owned rows)."""
        if tenant is not None and self.postgres:
            from regelwerk.tenancy.rls import tenant_engine

            return tenant_engine(self.root, tenant)
        return self.root

    def store(self, tenant: str) -> Any:
        """The tenant's store (its own SQLite file, or the shared PostgreSQL bound to the tenant)."""
        with self._lock:
            found = self._stores.get(tenant)
            if found is not None:
                return found
            from regelwerk.store.sql import SqlStore

            if self.postgres:
                from regelwerk.tenancy.rls import tenant_engine

                store = SqlStore(self.location, create_tables=False, engine=tenant_engine(self.root, tenant))
            else:
                assert self.data_dir is not None
                store = SqlStore(f"sqlite:///{self.data_dir / 'tenants' / (tenant + '.sqlite')}")
            self._stores[tenant] = store
            return store

    # --- tenants ------------------------------------------------------------------------------

    def create_tenant(self, tenant: str, name: str = "") -> dict[str, Any]:
        """Add a tenant (``UsageError`` when the id is taken or not ``[a-z0-9-]``)."""
        if not TENANT_ID.fullmatch(tenant):  # fullmatch: "$" also matches before a final line break
            raise UsageError(f"not a tenant id: {tenant!r}", hint="lower-case letters, digits and '-', 1-63 chars")
        now = self.clock()
        try:
            with self._control().begin() as conn:
                conn.execute(rw_tenants.insert(), {"id": tenant, "name": name or tenant, "active_version": None,
                                                   "created_at": now})
        except sa.exc.IntegrityError as exc:
            raise UsageError(f"tenant {tenant!r} exists") from exc
        return {"id": tenant, "name": name or tenant, "active_version": None, "created_at": now.isoformat()}

    def tenant(self, tenant: str) -> dict[str, Any]:
        """One tenant (``UnknownTenant``)."""
        with self._control().connect() as conn:
            row = conn.execute(sa.select(rw_tenants).where(rw_tenants.c.id == tenant)).mappings().first()
        if row is None:
            raise UnknownTenant(tenant)
        return {"id": row["id"], "name": row["name"], "active_version": row["active_version"],
                "created_at": row["created_at"].isoformat()}

    def ping(self) -> None:
        """One round trip to the control plane (health checks)."""
        with self._control().connect() as conn:
            conn.execute(sa.select(1))

    def tenants(self) -> list[dict[str, Any]]:
        """Every tenant, by id."""
        with self._control().connect() as conn:
            rows = conn.execute(sa.select(rw_tenants).order_by(rw_tenants.c.id)).mappings().all()
        return [{"id": r["id"], "name": r["name"], "active_version": r["active_version"]} for r in rows]

    # --- keys ---------------------------------------------------------------------------------

    def issue_key(self, tenant: str | None, label: str = "") -> tuple[str, str]:
        """A new key for ``tenant`` (None: an admin key): ``(plaintext, key id)``; only the hash is stored."""
        if tenant is not None:
            self.tenant(tenant)
        plaintext, key_id, secret_hash = new_key()
        with self._control().begin() as conn:
            conn.execute(rw_api_keys.insert(), {"id": key_id, "tenant": tenant, "secret_hash": secret_hash,
                                                "label": label, "created_at": self.clock(), "revoked_at": None})
        return plaintext, key_id

    def keys(self, tenant: str | None) -> list[dict[str, Any]]:
        """The keys of a tenant (or the admin keys), without secrets."""
        k = rw_api_keys.c
        where = k.tenant.is_(None) if tenant is None else k.tenant == tenant
        with self._control().connect() as conn:
            rows = conn.execute(sa.select(k.id, k.label, k.created_at, k.revoked_at).where(where)
                                .order_by(k.created_at)).mappings().all()
        return [{"id": r["id"], "label": r["label"], "created_at": r["created_at"].isoformat(),
                 "revoked": r["revoked_at"] is not None} for r in rows]

    def revoke_key(self, key_id: str, tenant: str | None) -> bool:
        """Revoke a key of ``tenant`` (None: an admin key); False when there is no such live key."""
        k = rw_api_keys.c
        where = k.tenant.is_(None) if tenant is None else k.tenant == tenant
        with self._control().begin() as conn:
            result = conn.execute(rw_api_keys.update().where(k.id == key_id, where, k.revoked_at.is_(None))
                                  .values(revoked_at=self.clock()))
        with self._lock:
            self._keys = {text: entry for text, entry in self._keys.items()
                          if entry[0] is None or entry[0].key_id != key_id}
        return bool(result.rowcount)

    def cached_principal(self, presented: str) -> tuple[bool, Principal | None]:
        """``(True, principal)`` when this process's answer for the key is fresh; ``(False, None)`` otherwise
        (no I/O: the service's event loop asks this first and only goes to a thread for a lookup)."""
        cached = self._keys.get(presented)
        if cached is not None and time.monotonic() - cached[1] < self.cache_seconds:
            return True, cached[0]
        return False, None

    def cached_runtime(self, tenant: str) -> TenantRuntime | None:
        """The tenant's runtime when this process's view of its active version is fresh (no I/O)."""
        found = self._runtimes.get(tenant)
        if found is not None and time.monotonic() - found.checked < self.cache_seconds:
            return found
        return None

    def authenticate(self, presented: str) -> Principal | None:
        """The principal of a presented key, or None (unknown, wrong secret, revoked)."""
        cached = self._keys.get(presented)
        now = time.monotonic()
        if cached is not None and now - cached[1] < self.cache_seconds:
            return cached[0]
        principal = self._lookup_key(presented)
        with self._lock:
            if len(self._keys) > 10_000:
                self._keys.clear()
            self._keys[presented] = (principal, now)
        return principal

    def _lookup_key(self, presented: str) -> Principal | None:
        parsed = parse_key(presented)
        if parsed is None:
            return None
        k = rw_api_keys.c
        with self._control().connect() as conn:
            row = conn.execute(sa.select(k.tenant, k.secret_hash, k.revoked_at).where(k.id == parsed.key_id)).first()
        if row is None or row.revoked_at is not None or not secret_matches(parsed.secret, row.secret_hash):
            return None
        return Principal(parsed.key_id, row.tenant)

    # --- deployments --------------------------------------------------------------------------

    def _materialize(self, tenant: str, folder: str, files: Mapping[str, str]) -> Path:
        root = self._work / tenant / folder
        if root.exists():
            return root
        staging = self._work / tenant / f".{folder}-{threading.get_ident()}-{time.monotonic_ns()}"
        for rel, text in files.items():
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        try:
            staging.rename(root)
        except OSError:  # another thread materialized the same version first
            shutil.rmtree(staging, ignore_errors=True)
        return root

    def compile_files(self, tenant: str, files: Mapping[str, str]) -> tuple[str, Any, list[dict[str, Any]]]:
        """Validate and compile an upload: ``(version, compiled or None, diagnostics)``; writes nothing."""
        from regelwerk.bundle import load_bundle
        from regelwerk.compiler import compile_bundle
        from regelwerk.diagnostics import DefinitionError

        problems = check_files(files)
        version = bundle_version(files) if not problems else ""
        if problems:
            return version, None, problems
        with self._lock:
            cached = self._compiled.get(version)
        root = self._materialize(tenant, version, files)
        if cached is not None:
            # compiled from the folder of whichever tenant uploaded these files first: its warnings name files
            # relative to that folder (found by attack: relative to this tenant's, they named the other tenant
            # and the server's folders, telling a customer who else runs the same bundle)
            compiled, compiled_from = cached
            return version, compiled, [_diag_dict(d, compiled_from) for d in compiled.warnings]
        try:
            compiled = compile_bundle(load_bundle(root), self.registry)
        except DefinitionError as exc:
            shutil.rmtree(root, ignore_errors=True)
            return version, None, [_diag_dict(d, str(root)) for d in exc.diagnostics]
        with self._lock:
            compiled, compiled_from = self._compiled.setdefault(version, (compiled, str(root)))
        return version, compiled, [_diag_dict(d, compiled_from) for d in compiled.warnings]

    def deploy(self, tenant: str, files: Mapping[str, str], matrix: str = "", actor: str = "api") -> dict[str, Any]:
        """Validate, compile, store and activate a bundle version (see the module docstring)."""
        self.tenant(tenant)
        version, compiled, diagnostics = self.compile_files(tenant, files)
        if compiled is None:
            raise DeploymentRejected(diagnostics)
        matrix = self._pick_matrix(compiled, matrix)
        now = self.clock()
        with self._control(tenant).begin() as conn:
            d = rw_deployments.c
            exists = conn.execute(sa.select(d.version).where(d.tenant == tenant, d.version == version)).first()
            if exists is None:
                conn.execute(rw_deployments.insert(), {"tenant": tenant, "version": version, "files": dict(files),
                                                       "matrix": matrix, "created_at": now, "created_by": actor})
            else:
                conn.execute(rw_deployments.update().where(d.tenant == tenant, d.version == version)
                             .values(matrix=matrix))
            conn.execute(rw_tenants.update().where(rw_tenants.c.id == tenant).values(active_version=version))
            t = rw_tenant_ticks.c
            if conn.execute(sa.select(t.tenant).where(t.tenant == tenant)).first() is None:
                conn.execute(rw_tenant_ticks.insert(), {"tenant": tenant, "next_tick_at": now, "last_worker": ""})
        with self._lock:
            self._runtimes.pop(tenant, None)
        return {"tenant": tenant, "version": version, "matrix": matrix, "active": True,
                "diagnostics": diagnostics}

    @staticmethod
    def _pick_matrix(compiled: Any, matrix: str) -> str:
        """The named matrix; else the only one; else the one declaring the most of the workflows' resource types."""
        matrices = compiled.of_kind("PermissionMatrix")

        def rejected(message: str) -> DeploymentRejected:
            return DeploymentRejected([{"code": "RW301", "severity": "error", "message": message, "file": "",
                                        "line": 0, "column": 0, "pointer": "",
                                        "hint": "matrices: " + (", ".join(matrices) or "none")}])

        if matrix:
            if matrix not in matrices:
                raise rejected(f"no PermissionMatrix named {matrix!r}")
            return matrix
        if len(matrices) <= 1:
            return str(next(iter(matrices), ""))
        guarded = {w.resource_type for w in compiled.of_kind("Workflow").values()}
        scores = sorted(((len(guarded & set(m.resources)), name) for name, m in matrices.items()), reverse=True)
        if scores[0][0] > 0 and scores[0][0] > scores[1][0]:
            return str(scores[0][1])
        raise rejected("the bundle has several PermissionMatrix documents: name the one that guards workflows")

    def deployments(self, tenant: str) -> list[dict[str, Any]]:
        """The tenant's stored versions, newest first, the active one marked."""
        active = self.tenant(tenant)["active_version"]
        d = rw_deployments.c
        with self._control(tenant).connect() as conn:
            rows = conn.execute(sa.select(d.version, d.matrix, d.created_at, d.created_by)
                                .where(d.tenant == tenant).order_by(d.created_at.desc())).mappings().all()
        return [{"version": r["version"], "matrix": r["matrix"], "created_at": r["created_at"].isoformat(),
                 "created_by": r["created_by"], "active": r["version"] == active} for r in rows]

    # --- the running version ------------------------------------------------------------------

    def runtime(self, tenant: str) -> TenantRuntime:
        """The tenant's engine on its active version (re-checked every ``cache_seconds``)."""
        found = self._runtimes.get(tenant)
        now = time.monotonic()
        if found is not None and now - found.checked < self.cache_seconds:
            return found
        active = self.tenant(tenant)["active_version"]
        if active is None:
            raise UsageError(f"tenant {tenant!r} has no deployed bundle", hint="POST /v1/deployments first")
        if found is not None and found.version == active:
            found.refresh_relations()
            found.checked = now
            return found
        with self._lock:
            found = self._runtimes.get(tenant)
            if found is not None and found.version == active:
                found.checked = now
                return found
            loaded = self._load(tenant, active)
            loaded.refresh_relations()  # remembers the signature the fresh index was loaded at
            loaded.checked = now
            self._runtimes[tenant] = loaded
            return loaded

    def _load(self, tenant: str, version: str) -> TenantRuntime:
        from regelwerk.runtime import Engine
        from regelwerk.workflows.ports import RoleTable

        d = rw_deployments.c
        with self._control(tenant).connect() as conn:
            row = conn.execute(sa.select(d.files, d.matrix).where(d.tenant == tenant, d.version == version)).first()
        if row is None:
            raise UsageError(f"version {version} of tenant {tenant!r} is not stored")
        _version, compiled, diagnostics = self.compile_files(tenant, row.files)
        if compiled is None:
            raise DeploymentRejected(diagnostics)
        store = self.store(tenant)
        audit = DeferredAudit(store)
        from regelwerk.permissions.adapter import MatrixPermissions
        from regelwerk.permissions.sql import SqlRelationships

        permissions: Any = RoleTable({})  # no matrix: deny every guarded transition
        if row.matrix:
            permissions = MatrixPermissions(compiled, SqlRelationships(store.engine), row.matrix, audit=audit.sink,
                                            audit_reads=True)  # every denial, reads too
        engine = Engine(compiled, store=store, registry=self.registry, permissions=permissions,
                        plugin_time_limit=self.plugin_time_limit)
        return TenantRuntime(tenant, version, compiled, engine, row.matrix, permissions, audit)

    def engine(self, tenant: str) -> Any:
        """The tenant's :class:`~regelwerk.runtime.Engine` on its active version."""
        return self.runtime(tenant).engine

    def loaded(self) -> list[str]:
        """Tenants with a loaded engine."""
        return sorted(self._runtimes)

    def close(self) -> None:
        """Close every store and the control plane; remove the materialized bundles."""
        with self._lock:
            if not self.postgres:
                for store in self._stores.values():
                    store.close()
            self._stores.clear()
            self._runtimes.clear()
        self.root.dispose()
        shutil.rmtree(self._work, ignore_errors=True)

    def __enter__(self) -> TenantHub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def upgrade_control(url: str) -> None:
    """Bring the control plane's tables (and, on PostgreSQL, row-level security) to the newest revision."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).resolve().parent / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(config, "head")


def upgrade_all(owner_url: str, app_role: str | None = None) -> list[str]:
    """``regelwerk tenants upgrade``: the store's migrations, the control plane's, row-level security on every
    tenant-owned table (also tables added by later store migrations), and grants for the application role."""
    from regelwerk.store.sql import create_sa_engine, upgrade

    upgrade(owner_url)
    upgrade_control(owner_url)
    changed: list[str] = []
    if owner_url.startswith("postgresql"):
        from regelwerk.store.sql import lock_migrations
        from regelwerk.tenancy.rls import apply_row_level_security, grant_app_role

        engine = create_sa_engine(owner_url)
        try:
            with engine.begin() as conn:
                lock_migrations(conn)
                changed = apply_row_level_security(conn)
                if app_role:
                    grant_app_role(conn, app_role)
        finally:
            engine.dispose()
    return changed

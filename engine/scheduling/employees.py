"""Employee facts the scheduler plans for: fed by the host through :class:`EmployeeDirectory` or imported.

The host calls :meth:`EmployeeDirectory.upsert` whenever facts change (hire, function,
roles, leaving date...). Every change clears the employee's plan stamp, so the next tick
plans that employee again (and cancels moments that no longer apply, e.g. after leaving).

``import_employees`` reads a CSV or XLSX sheet (step2HR: "alle gegevens behalve die voor de
organisatie kunnen met een Excel sheet worden ingelezen"): every row is checked first; when
any row is wrong, the errors are reported with their row numbers and nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from regelwerk.store import json_codec

__all__ = [
    "EMPLOYEE_COLUMNS",
    "EmployeeDirectory",
    "EmployeeFacts",
    "ImportResult",
    "RowError",
    "check_employees",
    "checked_employee_chunks",
    "employee_chunks",
    "employee_columns",
    "import_employees",
    "parse_employee",
    "read_rows",
]

EMPLOYEE_COLUMNS = ("id", "name", "hire_date", "leaving_date", "function", "department", "manager", "roles", "groups")
_LIST_SEPARATORS = (";", "|", ",")


@dataclass(frozen=True, slots=True)
class EmployeeFacts:
    """What the scheduler knows about one employee."""

    id: str
    hire_date: date | None = None
    leaving_date: date | None = None
    function: str | None = None
    department: str | None = None
    manager: str | None = None
    roles: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    name: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (dates as dates) for condition scopes: ``{employee: ...}``."""
        return {
            **dict(self.attributes),
            "id": self.id, "name": self.name, "hire_date": self.hire_date, "leaving_date": self.leaving_date,
            "function": self.function, "department": self.department, "manager": self.manager,
            "roles": list(self.roles), "groups": list(self.groups),
        }

    def employed_on(self, day: date) -> bool:
        """True when ``day`` lies within the employment (hire date inclusive, leaving date exclusive)."""
        if self.hire_date is not None and day < self.hire_date:
            return False
        return not (self.leaving_date is not None and day >= self.leaving_date)


def _as_date(value: Any, what: str) -> date | None:
    if value is None or value == "":
        return None
    from regelwerk.imports.values import parse_date  # ISO or dd-mm-jjjj only, shared with every import

    try:
        return parse_date(value)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


def _as_list(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(str(v).strip() for v in value if str(v).strip())
    text = str(value)
    for sep in _LIST_SEPARATORS:
        if sep in text:
            return tuple(p.strip() for p in text.split(sep) if p.strip())
    return (text.strip(),)


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))  # spreadsheets turn employee numbers into floats
    return text or None


def parse_employee(record: Mapping[str, Any]) -> EmployeeFacts:
    """Check and convert one record; ``ValueError`` lists every problem of the record."""
    problems: list[str] = []
    ident = _as_text(record.get("id"))
    if not ident:
        problems.append("id: missing")
    dates: dict[str, date | None] = {}
    for key in ("hire_date", "leaving_date"):
        try:
            dates[key] = _as_date(record.get(key), key)
        except ValueError as exc:
            problems.append(str(exc))
            dates[key] = None
    if dates["hire_date"] and dates["leaving_date"] and dates["leaving_date"] < dates["hire_date"]:
        problems.append("leaving_date: before hire_date")
    if problems:
        raise ValueError("; ".join(problems))
    known = set(EMPLOYEE_COLUMNS) | {"attributes"}
    extra = {str(k): v for k, v in record.items() if k not in known and v not in (None, "")}
    extra.update(dict(record.get("attributes") or {}))
    return EmployeeFacts(
        id=str(ident), name=_as_text(record.get("name")), hire_date=dates["hire_date"],
        leaving_date=dates["leaving_date"], function=_as_text(record.get("function")),
        department=_as_text(record.get("department")), manager=_as_text(record.get("manager")),
        roles=_as_list(record.get("roles")), groups=_as_list(record.get("groups")),
        attributes={k: (v.isoformat() if isinstance(v, (date, datetime)) else v) for k, v in sorted(extra.items())},
    )


def _row_of(facts: EmployeeFacts, now: datetime, updated_at: datetime | None = None) -> dict[str, Any]:
    """The ``rw_employees`` row of ``facts``; ``updated_at``: ``now`` as naive UTC, when the caller made it once."""
    return {
        "id": facts.id, "name": facts.name, "hire_date": facts.hire_date, "leaving_date": facts.leaving_date,
        "function": facts.function, "department": facts.department, "manager": facts.manager,
        "roles": list(facts.roles), "groups": list(facts.groups), "attributes": dict(facts.attributes),
        "plan_version": None, "next_due": None,
        "updated_at": updated_at if updated_at is not None else now.astimezone(UTC).replace(tzinfo=None),
    }


_EMPTY_JSON: dict[str, Any] = {"[]": (), "{}": {}, "null": None}


def _json_value(value: Any) -> Any:
    """A JSON column read as text (:func:`employee_columns`): empty lists and objects without a parse."""
    if not isinstance(value, str):
        return value  # a driver that decodes JSON itself (psycopg), or NULL
    if value in _EMPTY_JSON:
        empty = _EMPTY_JSON[value]
        return dict(empty) if isinstance(empty, dict) else empty
    return json_codec.loads(value)


def employee_columns(*raw: str) -> list[Any]:
    """The columns of ``rw_employees`` to select for :func:`facts_of_row`, the JSON ones as text: most employees
    have no roles or groups, and the tick reads every employee, so ``[]`` is not parsed a hundred thousand times.
    ``raw``: more columns read as the driver gives them (the tick's ``updated_at``, only compared again)."""
    from regelwerk.scheduling.tables import employees
    from sqlalchemy import Text, type_coerce

    as_text = {"roles", "groups", "attributes", *raw}
    return [type_coerce(c, Text).label(c.name) if c.name in as_text else c for c in employees.c]


def facts_of_row(row: Any) -> EmployeeFacts:
    """An ``EmployeeFacts`` from a ``rw_employees`` row."""
    m = row._mapping if hasattr(row, "_mapping") else row
    return EmployeeFacts(
        id=m["id"], name=m["name"], hire_date=m["hire_date"], leaving_date=m["leaving_date"], function=m["function"],
        department=m["department"], manager=m["manager"], roles=tuple(_json_value(m["roles"]) or ()),
        groups=tuple(_json_value(m["groups"]) or ()), attributes=dict(_json_value(m["attributes"]) or {}),
    )


_FACT_FIELDS = ("id", "name", "hire_date", "leaving_date", "function", "department", "manager", "roles", "groups",
                "attributes")


def facts_of_rows(rows: Sequence[Any]) -> list[EmployeeFacts]:
    """:func:`facts_of_row` of many rows of one query: by position when its first columns are those of
    :func:`employee_columns` (the tick reads every employee a few times a year), else by name."""
    if not rows or tuple(getattr(rows[0], "_fields", ())[:10]) != _FACT_FIELDS:
        return [facts_of_row(row) for row in rows]
    out = []
    value = _json_value
    for row in rows:
        ident, name, hire, leaving, function, department, manager, roles, groups, attributes = row[:10]
        out.append(EmployeeFacts(id=ident, name=name, hire_date=hire, leaving_date=leaving, function=function,
                                 department=department, manager=manager, roles=tuple(value(roles) or ()),
                                 groups=tuple(value(groups) or ()), attributes=dict(value(attributes) or {})))
    return out


#: the employees' upsert by (dialect, row keys, conflict target): see ``EmployeeDirectory._upsert``
_UPSERTS: dict[tuple[str, tuple[str, ...], tuple[str, ...]], Any] = {}


def dialect_insert(conn: Any, table: Any) -> Any:
    """``INSERT`` with ON CONFLICT support for the connection's dialect (SQLite or PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


class EmployeeDirectory:
    """The employee facts in ``rw_employees``: the API the host feeds (upsert, get, stream)."""

    def __init__(self, sa_engine: Any) -> None:
        self.sa_engine = sa_engine

    def setup(self) -> None:
        """Create the scheduler's tables when missing (tests and first use; production uses migrations)."""
        from regelwerk.scheduling import tables
        from regelwerk.store.sql import create_missing

        create_missing(self.sa_engine, (tables.employees, tables.scheduled_items, tables.scheduled_events))

    def upsert(self, records: Iterable[EmployeeFacts | Mapping[str, Any]], now: datetime | None = None,
               connection: Any = None) -> int:
        """Insert or replace employees (all in one transaction); their plans are redone on the next tick."""
        moment = now or datetime.now(UTC)
        stamp = moment.astimezone(UTC).replace(tzinfo=None)  # one conversion for all the rows
        rows = [_row_of(r if isinstance(r, EmployeeFacts) else parse_employee(r), moment, stamp) for r in records]
        if not rows:
            return 0
        if connection is not None:
            self._upsert(connection, rows)
        else:
            with self.sa_engine.begin() as conn:
                self._upsert(conn, rows)
        return len(rows)

    @staticmethod
    def _upsert(conn: Any, rows: list[dict[str, Any]]) -> None:
        """The rows inserted, or updated where the id is stored, a thousand per statement: the statement built once
        per dialect, row keys and conflict target (one built per call cost SQLAlchemy its cache key and, on SQLite,
        the bulk writer a compile), on SQLite at the driver's ``executemany`` (``regelwerk.store.bulk``)."""
        from regelwerk.scheduling.tables import employees
        from regelwerk.store.bulk import executemany
        from regelwerk.tenancy.rls import conflict_columns

        # tenant-bound connections (regelwerk.tenancy) key employees by (tenant, id)
        target = tuple(conflict_columns(conn, ["id"]))
        shape = (conn.dialect.name, tuple(rows[0]), target)
        statement = _UPSERTS.get(shape)
        if statement is None:
            stmt = dialect_insert(conn, employees)
            if len(_UPSERTS) > 64:  # shapes come from code (the row builder), not data; bounded all the same
                _UPSERTS.clear()
            statement = _UPSERTS[shape] = stmt.on_conflict_do_update(
                index_elements=list(target), set_={c: stmt.excluded[c] for c in rows[0] if c != "id"})
        sqlite = conn.dialect.name == "sqlite"
        for start in range(0, len(rows), 1000):
            chunk = rows[start:start + 1000]
            if sqlite:
                executemany(conn, statement, chunk)
            else:
                conn.execute(statement, chunk)

    def get(self, employee_id: str) -> EmployeeFacts | None:
        """One employee's facts, or None."""
        from regelwerk.scheduling.tables import employees
        from sqlalchemy import select

        with self.sa_engine.connect() as conn:
            row = conn.execute(select(employees).where(employees.c.id == employee_id)).first()
        return facts_of_row(row) if row is not None else None

    def iter_all(self, batch_size: int = 1000) -> Iterator[EmployeeFacts]:
        """Every employee, sorted by id, read in batches (never all at once)."""
        from regelwerk.scheduling.tables import employees
        from sqlalchemy import select

        last = ""
        while True:
            with self.sa_engine.connect() as conn:
                rows = conn.execute(select(employees).where(employees.c.id > last)
                                    .order_by(employees.c.id).limit(batch_size)).all()
            if not rows:
                return
            for row in rows:
                yield facts_of_row(row)
            last = rows[-1].id

    def count(self) -> int:
        """How many employees are stored."""
        from regelwerk.scheduling.tables import employees
        from sqlalchemy import func, select

        with self.sa_engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(employees)).scalar_one())


@dataclass(frozen=True, slots=True)
class RowError:
    """A problem in one row of an import file (row 1 is the header)."""

    row: int
    message: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.message}"


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import did: the number of employees written, or the errors (and nothing written)."""

    imported: int
    errors: tuple[RowError, ...] = ()
    absent: tuple[Any, ...] = ()  # ``absent="report"|"end"``: regelwerk.imports.absent.Absent per employee

    @property
    def ok(self) -> bool:
        """True when the file was imported."""
        return not self.errors


def _normalise_header(name: Any) -> str:
    text = str(name or "").strip().lower().replace(" ", "_").replace("-", "_")
    aliases = {"employee": "id", "employee_id": "id", "personeelsnummer": "id", "medewerker": "id",
               "naam": "name", "datum_in_dienst": "hire_date", "in_dienst": "hire_date",
               "datum_uit_dienst": "leaving_date", "uit_dienst": "leaving_date", "functie": "function",
               "afdeling": "department", "leidinggevende": "manager", "rollen": "roles", "groepen": "groups"}
    return aliases.get(text, text)


def read_rows(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of a CSV (``,`` or ``;``) or XLSX file as ``(row number, record)``; the header is row 1.

    Headers are only normalised here (the importers check them against their declared columns); a row
    that cannot be read, or a file that cannot, is ``{"__error__": message}``.
    """
    from regelwerk.imports.reader import FileError, RowProblem, open_tables

    try:
        with open_tables(path) as sheets:
            sheet = sheets[0]
            header = [_normalise_header(h) for h in sheet.header]
            for item in sheet.rows:
                if isinstance(item, RowProblem):
                    yield item.row, {"__error__": item.message}
                elif len(item.values) > len(header) and any(str(v).strip() for v in item.values[len(header):]):
                    yield item.row, {"__error__": f"{len(item.values)} values for {len(header)} columns"}
                else:
                    yield item.row, dict(zip(header, item.values, strict=False))
    except FileError as exc:
        yield 1, {"__error__": exc.message + (f" ({exc.hint})" if exc.hint else "")}


def _parsed(path: str | Path, spec: Any = None) -> Iterator[EmployeeFacts | RowError]:
    """Every row of the file as facts or as the row's error, against the ``Import``'s declared columns
    (default: the standard's ``employees``); a repeated id is an error of the later row."""
    from regelwerk.imports.reader import FileError
    from regelwerk.imports.records import read_records
    from regelwerk.imports.specs import import_spec
    from regelwerk.imports.values import id_problem

    seen: dict[str, int] = {}
    looks: dict[str, tuple[str, str]] = {}
    try:
        for number, record in read_records(path, spec or import_spec("employees")):
            if "__error__" in record:
                yield RowError(number, str(record["__error__"]))
                continue
            if record.get("access"):
                yield RowError(number, "access: rights levels are imported with `regelwerk import organisation`, "
                                       "not with the employee import")
                continue
            try:
                facts = parse_employee(record)
            except ValueError as exc:
                yield RowError(number, str(exc))
                continue
            odd = id_problem(facts.id, number, looks, ())  # E1 beside e1, a zero-width space: one person twice
            if odd is not None:
                yield RowError(number, odd)
                continue
            if facts.id in seen:
                yield RowError(number, f"id: {facts.id!r} also in row {seen[facts.id]}")
                continue
            seen[facts.id] = number
            yield facts
    except FileError as exc:
        yield RowError(1 if exc.message.startswith("row 1") else 0,
                       exc.message + (f" ({exc.hint})" if exc.hint else ""))


def check_employees(path: str | Path, spec: Any = None) -> ImportResult:
    """Check a CSV/XLSX file without writing: ``imported`` is the number of employees it holds, or the errors.

    Streams the file (memory: the ids seen, not the rows).
    """
    errors: list[RowError] = []
    count = 0
    for item in _parsed(path, spec):
        if isinstance(item, RowError):
            errors.append(item)
        else:
            count += 1
    if not count and not errors:
        errors.append(RowError(1, "the file holds no employees"))
    return ImportResult(0, tuple(errors)) if errors else ImportResult(count)


def employee_chunks(path: str | Path, size: int = 1000, spec: Any = None) -> Iterator[list[EmployeeFacts]]:
    """The employees of a checked file (:func:`check_employees`) in chunks of ``size``, in file order."""
    chunk: list[EmployeeFacts] = []
    for item in _parsed(path, spec):
        if isinstance(item, RowError):
            raise ValueError(str(item))
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


#: Employees :func:`checked_employee_chunks` keeps from its check for the writes (about 0.6 KB each); a larger
#: file is read a second time for them instead, so memory stays the ids seen, not the rows.
KEEP_CHECKED = 25_000


def checked_employee_chunks(path: str | Path, size: int = 1000, spec: Any = None, keep: int = KEEP_CHECKED
                            ) -> tuple[ImportResult, Iterable[list[EmployeeFacts]]]:
    """:func:`check_employees` and then :func:`employee_chunks` of the same file, reading it once when it holds
    at most ``keep`` employees (the chunks of the check are kept); a larger file is read again for the chunks.

    The chunks are empty when the check found errors.
    """
    errors: list[RowError] = []
    chunks: list[list[EmployeeFacts]] | None = []
    chunk: list[EmployeeFacts] = []
    count = 0
    for item in _parsed(path, spec):
        if isinstance(item, RowError):
            errors.append(item)
            chunks = None  # nothing is written: keep no rows
            continue
        count += 1
        if chunks is None:
            continue
        if count > keep:
            chunks, chunk = None, []
            continue
        chunk.append(item)
        if len(chunk) >= size:
            chunks.append(chunk)
            chunk = []
    if not count and not errors:
        errors.append(RowError(1, "the file holds no employees"))
    if errors:
        return ImportResult(0, tuple(errors)), ()
    if chunks is None:
        return ImportResult(count), employee_chunks(path, size, spec)
    if chunk:
        chunks.append(chunk)
    return ImportResult(count), chunks


def import_employees(directory: EmployeeDirectory, path: str | Path, now: datetime | None = None,
                     spec: Any = None, *, absent: str = "keep", timezone: Any = None) -> ImportResult:
    """Import a CSV/XLSX file: every row is checked first; on any error nothing is written.

    ``spec`` is the ``Import`` whose declared columns the file must use (default: the standard's
    ``employees``, or pass a customer bundle's with its extra attributes). ``absent``: what happens to the
    stored employees the file does not have (``keep``, ``report``, ``end`` as of the import date in
    ``timezone``; :mod:`regelwerk.imports.absent`), in the same transaction.
    """
    from regelwerk.imports.absent import ABSENT_CHOICES, end_absent, find_absent, import_day
    from regelwerk.imports.organisation import IMPORT_ACTOR

    if absent not in ABSENT_CHOICES:
        raise ValueError(f"absent must be one of {', '.join(ABSENT_CHOICES)}, not {absent!r}")
    errors: list[RowError] = []
    parsed: list[EmployeeFacts] = []
    for item in _parsed(path, spec):
        if isinstance(item, RowError):
            errors.append(item)
        else:
            parsed.append(item)
    if not parsed and not errors:
        errors.append(RowError(1, "the file holds no employees"))
    if errors:
        return ImportResult(0, tuple(errors))
    moment = now or datetime.now(UTC)
    with directory.sa_engine.begin() as conn:  # one transaction: all rows or none, and who is absent
        day = import_day(moment, timezone)
        missing = find_absent(conn, {"employee": {p.id for p in parsed}}, day) if absent != "keep" else []
        directory.upsert(parsed, moment, connection=conn)
        if absent == "end":
            # the relations `import organisation` made for them end too (those the host made are its own)
            missing = end_absent(conn, missing, day, moment, IMPORT_ACTOR)
    return ImportResult(len(parsed), absent=tuple(missing))

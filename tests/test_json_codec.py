"""The store's JSON codec (``regelwerk.store.json_codec``): orjson's speed, the standard library's values.

Every JSON value reads back as ``json.dumps``/``json.loads`` would give it, whatever ``orjson`` itself refuses
(integers beyond 64 bits, keys that are not strings); what ``json.dumps`` refuses is still refused; and a store's
JSON columns go through it (a real SQLite file).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from regelwerk.frozen import deep_freeze
from regelwerk.store import json_codec

_scalars = (st.none() | st.booleans() | st.integers(min_value=-(2 ** 80), max_value=2 ** 80)
            | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(_values)
def test_values_read_back_as_with_the_standard_library(value: object) -> None:
    expected = json.loads(json.dumps(value))
    assert json.loads(json_codec.dumps(value)) == expected
    assert json_codec.loads(json_codec.dumps(value)) == expected
    assert json_codec.loads(json.dumps(value)) == expected  # rows the standard library wrote
    assert json.loads(json_codec.dumps_sorted(value)) == expected


def test_long_integers_read_back_exactly() -> None:
    # orjson reads an integer beyond 64 bits as a float: such texts are json.loads'
    for number in (2 ** 64, -(2 ** 63) - 1, 10 ** 30, 2 ** 63 - 1):
        text = json.dumps({"n": number})
        assert json_codec.loads(text)["n"] == number and type(json_codec.loads(text)["n"]) is int
        assert json_codec.loads(text.encode())["n"] == number


def test_what_orjson_refuses_goes_to_the_standard_library() -> None:
    big = {"n": 2 ** 70, 3: "int key", None: "none key"}
    assert json.loads(json_codec.dumps(big)) == json.loads(json.dumps(big))
    assert json_codec.loads("[NaN]")[0] != json_codec.loads("[NaN]")[0]  # json.loads' NaN, not an error
    assert json_codec.loads(b'{"a": 1}') == {"a": 1}  # psycopg hands bytes
    assert json_codec.loads('["\ud800"]') == ["\ud800"]  # a lone surrogate in the text: no UTF-8 for orjson
    assert json_codec.loads(r'["\ud800"]') == json.loads(r'["\ud800"]')  # escaped: strict JSON refuses it


def test_what_the_standard_library_refuses_is_refused() -> None:
    for value in ({"at": datetime(2026, 1, 1, tzinfo=UTC)}, [date(2026, 1, 1)], {"s": {1, 2}}, object()):
        with pytest.raises(TypeError):
            json.dumps(value)
        with pytest.raises(TypeError):
            json_codec.dumps(value)


def test_frozen_values_are_written_by_their_contents() -> None:
    frozen = deep_freeze({"a": [1, {"b": "é"}], "c": {"d": None}})
    assert json.loads(json_codec.dumps(frozen)) == {"a": [1, {"b": "é"}], "c": {"d": None}}


def test_payload_text_keeps_the_payload_form() -> None:
    # a scheduled item's payload: sorted keys, compact, anything without a JSON form as its str()
    value = {"b": 1, "a": [date(2026, 1, 1), datetime(2026, 1, 1, 9, 30)]}
    assert json_codec.dumps_sorted(value) == json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def test_the_sql_store_writes_and_reads_through_it(tmp_path: Path) -> None:
    import sqlalchemy as sa
    from regelwerk.store.sql import create_sa_engine

    engine = create_sa_engine(f"sqlite:///{tmp_path / 'codec.sqlite'}")
    assert engine.dialect._json_serializer is json_codec.dumps  # type: ignore[attr-defined]
    table = sa.Table("t", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.JSON))
    value = {"naam": "Zoë", "list": [1.5, None, True]}
    big = {"n": 2 ** 70, "m": 2 ** 64}
    with engine.begin() as conn:
        table.create(conn)
        conn.execute(table.insert(), [{"id": 1, "v": value}, {"id": 2, "v": big}])
    with engine.connect() as conn:
        assert conn.execute(sa.select(table.c.v).order_by(table.c.id)).scalars().all() == [value, big]
        text = conn.exec_driver_sql("SELECT v FROM t WHERE id = 1").scalar_one()
        assert json.loads(text) == value and "Zoë" in text  # UTF-8, read by SQLite's JSON functions too
        assert conn.exec_driver_sql("SELECT json_extract(v, '$.naam') FROM t WHERE id = 1").scalar_one() == "Zoë"
    engine.dispose()

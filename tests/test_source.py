"""The loader: positions, YAML 1.2 scalars, and every hostile input turned into a diagnostic."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
from regelwerk.diagnostics import Diagnostic
from regelwerk.source import (
    DEFAULT_LIMITS,
    Limits,
    SourceDocument,
    YMap,
    YSeq,
    decode_source,
    escape_pointer,
    iter_pattern,
    load_text,
    locate,
    read_source,
    to_plain,
)


def load(text: str, limits: Limits = DEFAULT_LIMITS) -> tuple[list[SourceDocument], list[Diagnostic]]:
    return load_text(text, "f.yaml", limits)


def one(text: str) -> YMap:
    docs, problems = load(text)
    assert problems == [], problems
    assert len(docs) == 1
    return docs[0].data


def codes(problems: list[Diagnostic]) -> list[tuple[str, int, int]]:
    return [(d.code, d.line, d.column) for d in problems]


# --- positions ---------------------------------------------------------------------------------


def test_every_key_and_value_keeps_its_line_and_column() -> None:
    data = one("apiVersion: regelwerk/v1\nkind: Checklist\nmetadata:\n  name: x\nspec:\n  tasks:\n"
               "    - id: a\n      label: A\n    - {id: b}\n")
    assert data.loc.line == 1 and data.loc.column == 1
    assert locate(data, "/kind").line == 2 and locate(data, "/kind").column == 7
    assert locate(data, "/metadata/name").line == 4 and locate(data, "/metadata/name").column == 9
    assert locate(data, "/metadata/name", key=True).column == 3
    assert locate(data, "/spec/tasks/0").line == 7 and locate(data, "/spec/tasks/0").column == 7
    assert locate(data, "/spec/tasks/0/label").line == 8
    assert (locate(data, "/spec/tasks/1/id").line, locate(data, "/spec/tasks/1/id").column) == (9, 12)
    assert locate(data, "").line == 1


def test_locate_falls_back_to_the_nearest_known_parent() -> None:
    data = one("a:\n  b: 1\nl: [x]\n")
    assert locate(data, "/a/missing/deeper").line == 2
    assert locate(data, "/a/b/too/deep").line == 2
    assert locate(data, "/l/7").line == 3
    assert locate(data, "/l/notanumber").line == 3
    assert locate(data, "/nothing").line == 1


def test_pointer_escaping_round_trips() -> None:
    data = one("'a/b': 1\n'c~d': {e: 2}\n")
    assert escape_pointer("a/b") == "a~1b" and escape_pointer("c~d") == "c~0d"
    assert locate(data, "/a~1b").column == 8
    assert locate(data, "/c~0d/e").line == 2
    assert dict(iter_pattern(data, "/c~0d/*")) == {"/c~0d/e": 2}


def test_iter_pattern_matches_keys_and_indexes() -> None:
    data = one("tasks:\n  - id: a\n    deps: [x, y]\n  - id: b\n")
    assert list(iter_pattern(data, "/tasks/*/id")) == [("/tasks/0/id", "a"), ("/tasks/1/id", "b")]
    assert list(iter_pattern(data, "/tasks/0/deps/*")) == [("/tasks/0/deps/0", "x"), ("/tasks/0/deps/1", "y")]
    assert list(iter_pattern(data, "/tasks/1/id")) == [("/tasks/1/id", "b")]
    assert list(iter_pattern(data, "/tasks/9/id")) == []
    assert list(iter_pattern(data, "")) == [("", data)]


def test_ymap_and_yseq_are_plain_containers() -> None:
    data = one("a: [1, {b: 2}]\n")
    assert isinstance(data, dict) and isinstance(data, YMap)
    assert isinstance(data["a"], list) and isinstance(data["a"], YSeq)
    plain = to_plain(data)
    assert plain == {"a": [1, {"b": 2}]}
    assert type(plain) is dict and type(plain["a"]) is list and type(plain["a"][1]) is dict


def test_document_accessors() -> None:
    docs, _ = load("apiVersion: regelwerk/v1\nkind: Checklist\nmetadata: {name: n}\nspec: {tasks: []}\n"
                   "---\nkind: [x]\nmetadata: 5\n")
    assert (docs[0].kind, docs[0].name, docs[0].spec) == ("Checklist", "n", {"tasks": []})
    assert (docs[1].kind, docs[1].name, docs[1].spec) == ("", "", None)
    assert docs[1].location.line == 6


# --- YAML 1.2 core schema scalars ----------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("no", "no"), ("yes", "yes"), ("on", "on"), ("off", "off"), ("NO", "NO"), ("ja", "ja"), ("nee", "nee"),
    ("y", "y"), ("n", "n"),
    ("true", True), ("True", True), ("TRUE", True), ("false", False), ("False", False),
    ("null", None), ("~", None), ("", None), ("Null", None),
    ("2026-01-31", "2026-01-31"), ("2026-01-31T10:00:00Z", "2026-01-31T10:00:00Z"),
    ("12:30", "12:30"), ("1:20:30", "1:20:30"),  # YAML 1.1 sexagesimal numbers are strings in 1.2
    ("42", 42), ("-7", -7), ("+3", 3), ("017", 17), ("0o17", 15), ("0x1F", 31),
    ("1_000", "1_000"), ("0b101", "0b101"),
    ("1.5", 1.5), ("1e3", 1000.0), (".5", 0.5), ("-.inf", float("-inf")), (".inf", float("inf")),
    ("P6W", "P6W"), ("NL", "NL"), ("Norway", "Norway"),
])
def test_plain_scalars_follow_yaml_1_2(text: str, expected: object) -> None:
    value = one(f"v: {text}\n")["v"]
    assert value == expected
    assert type(value) is type(expected)


def test_nan_is_a_float() -> None:
    value = one("v: .nan\n")["v"]
    assert isinstance(value, float) and math.isnan(value)


def test_quoted_scalars_are_always_strings() -> None:
    data = one("a: 'true'\nb: \"42\"\nc: 'null'\nd: |\n  yes\n")
    assert data == {"a": "true", "b": "42", "c": "null", "d": "yes\n"}


def test_keys_stay_strings_whatever_they_look_like() -> None:
    data = one("1: a\ntrue: b\nnull: c\n2026-01-01: d\n")
    assert list(data) == ["1", "true", "null", "2026-01-01"]


def test_standard_tags_are_honoured() -> None:
    data = one("a: !!str 42\nb: !!int 7\nc: !!float 1\nd: !!bool true\ne: !!null ~\nf: !!map {x: 1}\n"
               "g: !!seq [1]\n")
    assert data == {"a": "42", "b": 7, "c": 1.0, "d": True, "e": None, "f": {"x": 1}, "g": [1]}
    assert type(data["c"]) is float


def test_a_standard_tag_on_the_wrong_value_is_a_diagnostic() -> None:
    docs, problems = load("a: !!int x\n")
    assert codes(problems) == [("RW010", 1, 4)]
    assert docs[0].data["a"] == "x"


def test_yaml_1_1_directive_does_not_bring_back_yes_no() -> None:
    assert one("%YAML 1.1\n---\na: yes\n") == {"a": "yes"}


# --- rejections ---------------------------------------------------------------------------------


def test_syntax_error_has_its_position() -> None:
    docs, problems = load("a: [1, 2\nb: 3\n")
    assert docs == []
    assert len(problems) == 1 and problems[0].code == "RW001"
    assert problems[0].line == 2
    assert "YAML syntax error" in problems[0].message


def test_unterminated_quote_is_a_syntax_error() -> None:
    _, problems = load("a: 'open\n")
    assert [p.code for p in problems] == ["RW001"]


def test_duplicate_keys_are_reported_and_the_first_value_kept() -> None:
    docs, problems = load("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n")
    assert codes(problems) == [("RW002", 4, 3), ("RW002", 5, 1)]
    assert "first defined at line 1" in problems[1].message
    assert problems[0].hint
    assert docs[0].data == {"a": 1, "b": {"c": 1}}


def test_duplicate_keys_in_flow_mappings() -> None:
    _, problems = load("a: {x: 1, x: 2}\n")
    assert codes(problems) == [("RW002", 1, 11)]


@pytest.mark.parametrize(("text", "where"), [
    ("a:\n\tb: 1\n", (2, 1)),
    ("a: 1\n\tb: 2\n", (2, 1)),
    ("- a\n-\tb\n", (2, 2)),
    ("a:\n  b:\n\t  c: 1\n", (3, 1)),
])
def test_tabs_for_indentation_are_reported(text: str, where: tuple[int, int]) -> None:
    docs, problems = load(text)
    assert docs == []
    assert codes(problems) == [("RW003", *where)]
    assert "spaces" in problems[0].hint


def test_tabs_inside_scalars_are_fine() -> None:
    assert one("a: \"x\\ty\"\nb: 'x\ty'\n") == {"a": "x\ty", "b": "x\ty"}


def test_non_utf8_bytes_are_reported_with_position() -> None:
    text, problems = decode_source("a: 1\nb: caf\xe9\n".encode("latin-1"), "f.yaml")
    assert text is None
    assert codes(problems) == [("RW004", 2, 7)]
    assert "0xe9" in problems[0].message and "UTF-8" in problems[0].hint


def test_binary_input_is_reported() -> None:
    text, problems = decode_source(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "logo.yaml")
    assert text is None
    assert [p.code for p in problems] == ["RW004"]
    assert "binary" in problems[0].message


def test_nul_byte_position() -> None:
    _, problems = decode_source(b"a: 1\nb: x\x00y\n", "f.yaml")
    assert codes(problems) == [("RW004", 2, 5)]


def test_utf8_bom_is_accepted() -> None:
    text, problems = decode_source("\ufeffa: één\n".encode(), "f.yaml")
    assert problems == [] and text == "a: één\n"
    docs, problems = load_text(text, "f.yaml")
    assert docs[0].data == {"a": "één"} and docs[0].data.key_locs["a"].column == 1


def test_control_characters_are_a_diagnostic_not_a_traceback() -> None:
    docs, problems = load("a: 1\nb: x\x07y\n")
    assert docs == []
    assert codes(problems) == [("RW004", 2, 5)]
    assert "U+0007" in problems[0].message


def test_size_limit_in_read_source(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"a: 1\n" + b"#" * 200)
    text, problems = read_source(str(path), "big.yaml", Limits(max_file_bytes=100))
    assert text is None
    assert codes(problems) == [("RW005", 1, 1)]
    assert "100 bytes" in problems[0].message


def test_read_source_reads_no_more_than_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"x" * 10_000)
    sizes: list[int] = []
    import os

    real_fdopen = os.fdopen

    class Spy:
        def __init__(self, handle: object) -> None:
            self.handle = handle

        def __enter__(self) -> Spy:
            return self

        def __exit__(self, *exc: object) -> None:
            self.handle.close()  # type: ignore[attr-defined]

        def read(self, size: int = -1) -> bytes:
            sizes.append(size)
            return self.handle.read(size)  # type: ignore[attr-defined,no-any-return]

    def spy_fdopen(fd: int, mode: str = "r", *args: object, **kwargs: object) -> object:
        return Spy(real_fdopen(fd, mode, *args, **kwargs))  # type: ignore[call-overload]

    monkeypatch.setattr(os, "fdopen", spy_fdopen)
    _, problems = read_source(str(path), "big.yaml", Limits(max_file_bytes=1000))
    assert [p.code for p in problems] == ["RW005"]
    assert sizes == [1001]


def test_size_limit_at_the_boundary(tmp_path: Path) -> None:
    path = tmp_path / "exact.yaml"
    path.write_bytes(b"a: 1\n" + b"#" * 95)
    text, problems = read_source(str(path), "exact.yaml", Limits(max_file_bytes=100))
    assert problems == [] and text is not None


def test_size_limit_also_in_load_text() -> None:
    _, problems = load("a: 1\n" * 50, Limits(max_file_bytes=100))
    assert [p.code for p in problems] == ["RW005"]


def test_unreadable_path_is_a_diagnostic(tmp_path: Path) -> None:
    text, problems = read_source(str(tmp_path / "nope.yaml"), "nope.yaml")
    assert text is None and [p.code for p in problems] == ["RW009"]
    text, problems = read_source(str(tmp_path), "dir")
    assert text is None and [p.code for p in problems] == ["RW009"]


def billion_laughs(levels: int = 9) -> str:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    previous = "a"
    for name in "bcdefghijk"[: levels - 1]:
        text += f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]\n"
        previous = name
    return text


def test_alias_bomb_is_stopped_early() -> None:
    docs, problems = load(billion_laughs())
    assert docs == []
    assert [p.code for p in problems] == ["RW006"]
    assert problems[0].line == 6  # 9**6 nodes would be next
    assert "expands" in problems[0].message


def test_too_many_aliases() -> None:
    docs, problems = load("a: &a x\nb: [" + ",".join(["*a"] * 1001) + "]\n")
    assert docs == [] and [p.code for p in problems] == ["RW006"]
    assert "aliases" in problems[0].message


def test_alias_limits_count_per_document() -> None:
    doc = "a: &a x\nb: [" + ",".join(["*a"] * 600) + "]\n"
    docs, problems = load(f"{doc}---\n{doc}")
    assert problems == [] and len(docs) == 2


def test_modest_aliases_are_fine_and_keep_the_anchor_location() -> None:
    data = one("base: &b {x: 1}\nuse: *b\n")
    assert data["use"] == {"x": 1}
    assert locate(data, "/use/x").line == 1


def test_unknown_alias() -> None:
    _, problems = load("a: *nope\n")
    assert codes(problems) == [("RW001", 1, 4)]


def test_anchors_do_not_cross_documents() -> None:
    _, problems = load("a: &x 1\n---\nb: *x\n")
    assert [p.code for p in problems] == ["RW001"]


def test_recursive_alias_is_rejected() -> None:
    _, problems = load("a: &a [*a]\n")
    assert [p.code for p in problems] == ["RW001"]


def test_deep_nesting_is_limited() -> None:
    docs, problems = load("v: " + "[" * 100 + "]" * 100 + "\n")
    assert docs == [] and [p.code for p in problems] == ["RW007"]
    block = "a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 80))
    assert [p.code for p in load(block)[1]] == ["RW007"]


def test_nesting_limit_is_exact() -> None:
    limits = Limits(max_depth=3)
    assert load("a: [[1]]\n", limits)[1] == []
    assert [p.code for p in load("a: [[[1]]]\n", limits)[1]] == ["RW007"]


def test_aliases_cannot_bypass_the_nesting_limit() -> None:
    limits = Limits(max_depth=4)
    assert load("a: &a [[1]]\nb: [*a]\n", limits)[1] == []
    _, problems = load("a: &a [[1]]\nb: [[*a]]\n", limits)
    assert [p.code for p in problems] == ["RW007"]
    assert "alias" in problems[0].message


def test_alias_chains_cannot_build_unbounded_depth() -> None:
    lines = []
    for k in range(25):
        inner = f"*a{k - 1}" if k else "x"
        lines.append(f"a{k}: &a{k} " + "[" * 30 + inner + "]" * 30)
    docs, problems = load("\n".join(lines) + "\n")
    assert docs == [] and [p.code for p in problems] == ["RW007"]


def test_very_deep_flow_input_does_not_crash() -> None:
    docs, problems = load("[" * 50_000)
    assert docs == [] and problems and problems[0].code in {"RW001", "RW007"}


@pytest.mark.parametrize("tag", ["!!python/object:os.system", "!!python/object/apply:os.system",
                                 "!!python/name:os.system", "!!binary", "!!timestamp", "!!set", "!!omap",
                                 "!custom"])
def test_unsupported_tags_are_reported(tag: str) -> None:
    docs, problems = load(f"a: {tag} x\nb: 1\n")
    assert codes(problems) == [("RW010", 1, 4)]
    assert "remove the tag" in problems[0].hint
    assert docs[0].data["b"] == 1  # nothing was constructed, the rest still loads


def test_python_object_tag_on_a_mapping_constructs_nothing() -> None:
    docs, problems = load("a: !!python/object/apply:os.system {args: [echo hi]}\n")
    assert codes(problems) == [("RW010", 1, 4)]
    assert to_plain(docs[0].data) == {"a": {"args": ["echo hi"]}}


@pytest.mark.parametrize(("text", "what"), [
    ("- a\n- b\n", "a list"), ("just text\n", "a string"), ("42\n", "a number"), ("true\n", "a boolean"),
])
def test_a_document_must_be_a_mapping(text: str, what: str) -> None:
    docs, problems = load(text)
    assert docs == []
    assert codes(problems) == [("RW008", 1, 1)]
    assert what in problems[0].message


def test_empty_documents_are_skipped() -> None:
    docs, problems = load("")
    assert docs == [] and problems == []
    docs, problems = load("# only a comment\n---\n---\n")
    assert docs == [] and problems == []


def test_non_string_keys_are_rejected() -> None:
    _, problems = load("? [a, b]\n: 1\n")
    assert codes(problems) == [("RW001", 1, 3)]
    _, problems = load("? {a: 1}\n: 1\n")
    assert [p.code for p in problems] == ["RW001"]


def test_multi_document_files_keep_order_and_lines() -> None:
    docs, problems = load("a: 1\n---\n- x\n---\nb: 2\n...\n---\nc: 3\n")
    assert [d.data for d in docs] == [{"a": 1}, {"b": 2}, {"c": 3}]
    assert [d.location.line for d in docs] == [1, 5, 8]
    assert codes(problems) == [("RW008", 3, 1)]


def test_too_many_documents() -> None:
    docs, problems = load("---\na: 1\n" * 6, Limits(max_documents=5))
    assert docs == [] and [p.code for p in problems] == ["RW011"]


def test_merge_keys_merge_with_explicit_keys_winning() -> None:
    data = one("base: &b {x: 1, y: 2}\nother: &o {y: 3, z: 4}\nc:\n  <<: [*b, *o]\n  x: 9\n")
    assert data["c"] == {"x": 9, "y": 2, "z": 4}
    assert locate(data, "/c/x").line == 5
    assert locate(data, "/c/y").line == 1  # from the anchor that supplied it
    assert locate(data, "/c/z").line == 2
    assert "<<" not in data["c"]


def test_merge_key_with_a_single_mapping() -> None:
    assert one("b: &b {x: 1}\nc: {<<: *b, y: 2}\n")["c"] == {"x": 1, "y": 2}


def test_merge_key_with_a_list_of_non_mappings_is_rejected() -> None:
    _, problems = load("a: &a 1\nc:\n  <<: [*a]\n")
    assert [p.code for p in problems] == ["RW001"]
    assert "merge key" in problems[0].message


def test_limits_are_documented_defaults() -> None:
    assert Limits(max_file_bytes=2 * 1024 * 1024, max_depth=64, max_aliases=1000,
                                    max_expanded_nodes=250_000, max_documents=2000) == DEFAULT_LIMITS


def test_read_source_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("a: 1\n", encoding="utf-8")
    text, problems = read_source(str(path), os.path.basename(path))
    assert (text, problems) == ("a: 1\n", [])


def test_tag_messages_show_the_tag_as_written() -> None:
    _, problems = load("a: !!python/object:os.system x\n")
    assert problems[0].message == "unsupported YAML tag: !!python/object:os.system"


def test_the_non_specific_tag_makes_a_string() -> None:
    assert one("a: ! 5\nb: ! true\n") == {"a": "5", "b": "true"}


def test_the_first_character_shortcut_resolves_plain_scalars_like_the_patterns() -> None:
    from regelwerk import source

    def by_patterns(text: str) -> object:  # the core schema, every pattern tried in order
        for pattern, value in ((source._NULL, None), (source._BOOL_TRUE, True), (source._BOOL_FALSE, False)):
            if pattern.match(text):
                return value
        if source._INT.match(text):
            return int(text)
        if source._INT_OCT.match(text):
            return int(text[2:], 8)
        if source._INT_HEX.match(text):
            return int(text[2:], 16)
        if source._FLOAT.match(text) or source._INF.match(text):
            return float(text.replace(".inf", "inf").replace(".Inf", "inf").replace(".INF", "inf"))
        if source._NAN.match(text):
            return "nan"
        return text

    firsts = [chr(c) for c in range(32, 127)] + ["é", "ß", "\u00a0"]
    rests = ["", "1", "12", "ull", "ULL", "rue", "RUE", "alse", "inf", "nan", "NaN", "o17", "x1f", ".5", "e3",
             "1e3", "abc", "-1"]
    for first in firsts:
        for rest in rests:
            text = first + rest
            got = source._plain_scalar(text)
            want = by_patterns(text)
            if want == "nan":
                assert isinstance(got, float) and math.isnan(got), text
            else:
                assert got == want and type(got) is type(want), text


def test_a_streamed_sequence_goes_item_by_item_to_its_callback_and_is_not_kept() -> None:
    from regelwerk.source import DATA_LIMITS

    text = "kind: Story\nspec:\n  events:\n    - {on: a}\n    - b\n    - [c]\n  other: [1, 2]\n"
    seen: list[tuple[int, object, int]] = []
    docs, problems = load_text(text, "s.yaml", DATA_LIMITS,
                               stream=(("spec", "events"), lambda i, v, at: seen.append((i, v, at.line))))
    assert problems == [] and [(i, line) for i, _, line in seen] == [(0, 4), (1, 5), (2, 6)]
    assert seen[0][1] == {"on": "a"} and seen[1][1] == "b" and seen[2][1] == ["c"]
    assert docs[0].data["spec"]["events"] == [] and docs[0].data["spec"]["other"] == [1, 2]  # only that path


@pytest.mark.parametrize(("text", "kinds"), [
    ("apiVersion: x\nkind: Story\nspec: {events: [{kind: Workflow}]}\n", ["Story"]),
    ("a: {kind: X}\nkind: Story\n---\nkind: Workflow\n---\n- kind\n- Story\n", ["Story", "Workflow", ""]),
    ("kind: [Story]\n", [""]),
    ("metadata: {name: x}\n", [""]),
    ("a: : b\n", None),  # no YAML: the caller reads it the usual way
    ("kind:\tStory\n", None),  # a tab: the pure-Python parser's text
])
def test_document_kinds_reads_each_documents_top_level_kind_from_the_events(text: str, kinds: object) -> None:
    from regelwerk.source import document_kinds

    assert document_kinds(text) == kinds

"""Layout files are refused, with a message naming the record and field, when they break the
80-column rules; every shipped layout covers columns 1-80 exactly."""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ecert_abi.layout import WIDTH, LayoutError, check_coverage, load_chapter
from ecert_abi.record import catalogue

SOURCE = "test.toml"
FIELDS: list[dict[str, Any]] = [
    {"name": "record_id", "pos": "1-2", "fmt": "2AN", "desig": "M", "const": "T1"},
    {"name": "flag", "pos": "3", "fmt": "1AN", "desig": "C", "codes": "yes_no"},
    {"name": "amount", "pos": "4-13", "fmt": "10(S)N", "desig": "M", "decimals": 2},
    {"name": "filler_14_20", "pos": "14-20", "fmt": "7S", "desig": "M"},
    {"name": "when", "pos": "21-26", "fmt": "6D or 6S", "desig": "C"},
    {"name": "text", "pos": "27-80", "fmt": "54X", "desig": "O"},
]


def chapter(fields: list[dict[str, Any]] | None = None, **record: Any) -> dict[str, Any]:
    rec = {"name": "T1", "id": "T1", "direction": "input", "title": "Test",
           "fields": copy.deepcopy(FIELDS if fields is None else fields)}
    rec.update(record)
    return {"chapter": {"name": "test", "title": "Test chapter"},
            "codes": {"yes_no": {"Y": "yes", "N": "no"}},
            "records": [rec]}


def field_set(name: str, **changes: Any) -> Callable[[dict[str, Any]], None]:
    """Mutation: change keys of field `name` (a value of None removes the key)."""
    def mutate(data: dict[str, Any]) -> None:
        for f in data["records"][0]["fields"]:
            if f["name"] == name:
                for k, v in changes.items():
                    if v is None:
                        f.pop(k, None)
                    else:
                        f[k] = v
                return
        raise AssertionError(name)
    return mutate


def test_base_chapter_loads() -> None:
    ch = load_chapter(chapter(), SOURCE)
    (lay,) = ch.layouts
    assert [f.name for f in lay.fields] == [f["name"] for f in FIELDS]
    assert lay.match("T1Y0000012345       010126" + " " * 54)


def _codes_too_long(data: dict[str, Any]) -> None:
    data["codes"]["yes_no"]["YES"] = "long"


def _drop_field(name: str) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        fields = data["records"][0]["fields"]
        fields[:] = [f for f in fields if f["name"] != name]
    return mutate


# (mutation, fragments every one of which the LayoutError message must contain)
REFUSALS = [
    pytest.param(field_set("amount", pos="3-12"),
                 ["test.toml:T1.amount", "starts at 3", "overlapping"], id="overlap"),
    pytest.param(field_set("filler_14_20", pos="15-20", fmt="6S"),
                 ["test.toml:T1.filler_14_20", "14-14 undeclared"], id="gap"),
    pytest.param(_drop_field("flag"),
                 ["test.toml:T1.amount", "3-3 undeclared"], id="gap-missing-field"),
    pytest.param(field_set("text", pos="27-81", fmt="55X"),
                 ["test.toml:T1.text", "ends at 81", "past column 80"], id="past-80"),
    pytest.param(field_set("text", pos="27-79", fmt="53X"),
                 ["test.toml:T1", "end at column 79", "not 80"], id="ends-before-80"),
    pytest.param(field_set("text", pos="27-79", fmt="53X"),
                 ["test.toml:T1.text", "end at column 79", "80-80 undeclared"],
                 id="ends-before-80-names-field"),
    pytest.param(field_set("amount", fmt="9(S)N"),
                 ["test.toml:T1.amount", "fmt width 9", "4-13 is 10 columns"], id="fmt-width"),
    pytest.param(field_set("when", fmt="6D or 5S"),
                 ["test.toml:T1.when", "alternative width 5"], id="fmt-alt-width"),
    pytest.param(field_set("amount", fmt="10Q"),
                 ["test.toml:T1.amount", "'10Q'", "not a CATAIR width and class"],
                 id="unknown-class"),
    pytest.param(field_set("amount", fmt="10(S)AN"),
                 ["test.toml:T1.amount", "'10(S)AN'"], id="unknown-class-sign"),
    pytest.param(field_set("flag", codes="no_such_list"),
                 ["test.toml:T1.flag", "unknown code list 'no_such_list'"], id="unknown-codes"),
    pytest.param(_codes_too_long,
                 ["test.toml:T1.flag", "code 'YES'", "does not fit 1AN"], id="code-too-long"),
    pytest.param(field_set("record_id", const="T1X"),
                 ["test.toml:T1.record_id", "const 'T1X'", "does not fit 2AN"],
                 id="const-too-long"),
    pytest.param(field_set("record_id", const="t1"),
                 ["test.toml:T1.record_id", "const 't1'", "does not fit"], id="const-lower"),
    pytest.param(field_set("amount", const="12AB"),
                 ["test.toml:T1.amount", "const '12AB'", "does not fit 10(S)N"],
                 id="const-class"),
    pytest.param(field_set("amount", colour="red"),
                 ["test.toml:T1.amount", "unknown key", "colour"], id="unknown-key"),
    pytest.param(field_set("amount", pos="4..13"),
                 ["test.toml:T1.amount", "pos '4..13'"], id="bad-pos"),
    pytest.param(field_set("amount", desig="X"),
                 ["test.toml:T1.amount", "desig 'X'"], id="bad-desig"),
    pytest.param(field_set("text", decimals=2),
                 ["test.toml:T1.text", "implied decimals"], id="decimals-on-text"),
    pytest.param(field_set("record_id", const="T2"),
                 ["test.toml:T1", "record_id", "'T1'"], id="record-id-const"),
]


@pytest.mark.parametrize(("mutate", "fragments"), REFUSALS)
def test_refused(mutate: Callable[[dict[str, Any]], None], fragments: list[str]) -> None:
    data = chapter()
    mutate(data)
    with pytest.raises(LayoutError) as err:
        load_chapter(data, SOURCE)
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


SIMPLE = [{"name": "record_id", "pos": "1-2", "fmt": "2AN", "desig": "M", "const": "T1"},
          {"name": "data", "pos": "3-80", "fmt": "78X", "desig": "O"}]


@pytest.mark.parametrize(("data", "fragment"), [
    ({"records": []}, "missing [chapter]"),
    ({"chapter": {"name": "t"}, "records": [{"id": "T1", "direction": "input",
                                            "fields": SIMPLE}]}, "record name missing"),
    ({"chapter": {"name": "t"}, "records": [
        {"name": "T1", "id": "T1", "direction": "input", "fields": SIMPLE},
        {"name": "T1", "id": "T1", "direction": "input", "fields": SIMPLE}]}, "repeated"),
    ({"chapter": {"name": "t"}, "records": [
        {"name": "T1", "id": "T1", "direction": "sideways", "fields": SIMPLE}]}, "direction"),
    ({"chapter": {"name": "t"}, "records": [
        {"name": "T1", "id": "T1", "direction": "input",
         "fields": [{"pos": "1-80", "fmt": "80X"}]}]}, "without a name"),
])
def test_refused_chapter_shape(data: dict[str, Any], fragment: str) -> None:
    with pytest.raises(LayoutError, match=re.escape(fragment)):
        load_chapter(copy.deepcopy(data), SOURCE)


def test_layout_error_is_value_error() -> None:
    assert issubclass(LayoutError, ValueError)


# --- every shipped layout --------------------------------------------------------------

LAYOUTS = list(catalogue().layouts())


@pytest.mark.parametrize("layout", LAYOUTS, ids=[lay.name for lay in LAYOUTS])
def test_shipped_layout_covers_1_to_80(layout: Any) -> None:
    fields = layout.fields
    assert fields[0].start == 1 and fields[-1].end == WIDTH
    for prev, cur in itertools.pairwise(fields):
        assert cur.start == prev.end + 1, f"{layout.name}: {prev.name} -> {cur.name}"
    assert sum(f.width for f in fields) == WIDTH
    for f in fields:
        assert f.width == f.end - f.start + 1 >= 1
        assert int(re.match(r"\d+", f.fmt).group()) == f.width  # type: ignore[union-attr]
    check_coverage(fields, layout.name)  # the loader's own check agrees
    assert len({f.name for f in fields}) == len(fields)
    assert fields[0].name == "record_id" and fields[0].const == layout.id
    for f in fields:
        if f.cls == "S":
            expected = f"filler_{f.start}" if f.start == f.end else f"filler_{f.start}_{f.end}"
            assert f.name == expected


def test_shipped_layout_names_unique() -> None:
    names = [lay.name for lay in LAYOUTS]
    assert len(names) == len(set(names))


def test_shipped_files_load_from_toml() -> None:
    import tomllib

    import ecert_abi

    layouts_dir = Path(ecert_abi.__file__).parent / "layouts"
    files = sorted(layouts_dir.glob("*.toml"))
    assert {p.name for p in files} >= {"envelope.toml", "entry_summary.toml"}
    for path in files:
        ch = load_chapter(tomllib.loads(path.read_text(encoding="utf-8")), path.name)
        assert ch.layouts

"""Records <-> JSON objects, for `ecert-abi parse` and `ecert-abi emit`.

A record becomes {"line", "layout", "fields", "defects"} plus "raw" (the exact text) when
the record is defective or not understood, or when its text is not the canonical
formatting of its values (e.g. a number padded with spaces). Emitting prefers "raw" when
its values agree with "fields", so parse | emit is byte-exact, and edited fields win.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import attrs

from .layout import EmitError, Layout
from .record import Catalogue, Record


def to_json_value(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def from_json_value(layout: Layout, name: str, value: object) -> object:
    """The typed value of a JSON field value for `layout.name`."""
    field = next((f for f in layout.fields if f.name == name), None)
    if field is None:
        raise EmitError(layout.name, name, "no such field in this layout")
    if value is None:
        return None
    try:
        if field.cls == "D":
            return dt.date.fromisoformat(str(value))
        if field.cls in ("N", "(S)N"):
            if field.decimals:
                return Decimal(str(value))
            if isinstance(value, str):
                return int(value)
    except ValueError as e:
        raise EmitError(layout.name, name, str(e)) from None
    return value


def record_to_json(rec: Record) -> dict[str, Any]:
    obj: dict[str, Any] = {"line": rec.line, "layout": rec.layout.name if rec.layout else None}
    obj["fields"] = {k: to_json_value(v) for k, v in rec.values.items()}
    obj["defects"] = [attrs.asdict(d) for d in rec.defects]
    if rec.defects or rec.layout is None or rec.layout.emit(rec.values) != rec.text:
        obj["raw"] = rec.text
    return obj


def json_to_text(obj: Mapping[str, Any], cat: Catalogue) -> str:
    """The 80-column line for one JSON object; raises EmitError/KeyError for bad input."""
    raw = obj.get("raw")
    name = obj.get("layout")
    if name is None:
        if raw is None:
            raise EmitError("?", "layout", "an object needs a layout (or raw text)")
        return str(raw)
    layout = cat.layout(str(name))
    fields = obj.get("fields") or {}
    values = {k: from_json_value(layout, k, v) for k, v in fields.items()
              if not (k == "record_id" and v == layout.id)}
    if raw is not None:
        if obj.get("defects") or not fields:
            return str(raw)
        mine = cat.parse(str(raw), 0, {layout.id: (layout,)})
        if mine.ok and {k: mine.values.get(k) for k in values} == values:
            return str(raw)
    return layout.emit(values)

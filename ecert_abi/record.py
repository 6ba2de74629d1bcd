"""Records (one parsed 80-column line) and the catalogue that tells which layout a line has."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from typing import IO, Any

from .layout import WIDTH, Chapter, Defect, Layout, load_chapters


class Record:
    """One input line: its layout, raw text, line number and defects.

    Immutable; compares by layout and text (not by line number). Typed values are decoded
    on first access (`record["field"]`, `record.values`). A record whose layout is None was
    not understood; its raw text is kept so that emitting it gives back the same line.
    """

    __slots__ = ("_values", "defects", "layout", "line", "text")

    layout: Layout | None
    text: str
    line: int
    defects: tuple[Defect, ...]
    _values: dict[str, object] | None

    def __init__(self, layout: Layout | None, text: str, line: int = 0,
                 defects: tuple[Defect, ...] = ()) -> None:
        set_ = object.__setattr__
        set_(self, "layout", layout)
        set_(self, "text", text)
        set_(self, "line", line)
        set_(self, "defects", defects)
        set_(self, "_values", None)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("records are immutable")

    @property
    def ok(self) -> bool:
        return not self.defects

    @property
    def id(self) -> str | None:
        return self.layout.id if self.layout else None

    @property
    def values(self) -> Mapping[str, object]:
        """Field name -> typed value (fillers left out). A field that breaks its rules
        decodes to None; its defect says why."""
        if self._values is None:
            lay = self.layout
            if lay is None:
                vals: dict[str, object] = {}
            elif not self.defects:
                vals = lay.decode(self.text)
            else:
                bad = {d.field for d in self.defects}
                cols = self.text[:WIDTH].ljust(WIDTH)
                vals = {f.name: (None if f.name in bad or any(
                            not (0x20 <= ord(c) <= 0x7E) for c in cols[f.start - 1:f.end])
                                 else f.decode(cols[f.start - 1:f.end]))
                        for f in lay.fields if not f.is_filler}
            object.__setattr__(self, "_values", vals)
            return vals
        return self._values

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def get(self, name: str, default: object = None) -> Any:
        """One field's typed value; decodes only that field on a valid record."""
        lay = self.layout
        if self._values is None and lay is not None and not self.defects:
            hit = lay.by_name.get(name)
            if hit is None or hit[0].is_filler:
                return default
            f, a, b = hit
            return f.decode(self.text[a:b])
        return self.values.get(name, default)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return self.layout is other.layout and self.text == other.text

    def __hash__(self) -> int:
        return hash((self.layout.name if self.layout else None, self.text))

    def __repr__(self) -> str:
        name = self.layout.name if self.layout else "?"
        return f"<Record {name} line {self.line}: {self.text[:30]!r}...>"


class Catalogue:
    """All chapters, and which layouts a line may have in a given application/direction."""

    def __init__(self, chapters: Mapping[str, Chapter]) -> None:
        self.chapters = dict(chapters)
        self.envelope = self.chapters["envelope"]
        self.by_input = {c.input: c for c in self.chapters.values() if c.input}
        self.by_response = {c.response: c for c in self.chapters.values() if c.response}
        self._ids: dict[tuple[str | None, str], dict[str, tuple[Layout, ...]]] = {}

    def layouts(self) -> Iterator[Layout]:
        for c in self.chapters.values():
            yield from c.layouts

    def layout(self, name: str) -> Layout:
        for lay in self.layouts():
            if lay.name == name:
                return lay
        raise KeyError(f"no layout named {name!r}")

    def ids(self, chapter: Chapter | None, direction: str) -> dict[str, tuple[Layout, ...]]:
        """Record identifier -> candidate layouts, most specific first."""
        key = (chapter.name if chapter else None, direction)
        table = self._ids.get(key)
        if table is None:
            groups: dict[str, list[Layout]] = {}
            sources = [self.envelope] + ([chapter] if chapter else [])
            shared = chapter.settings.get("reply_records_from") if chapter else None
            if shared and direction == "output":
                sources.append(self.chapters[shared])  # replies shaped like another chapter's
            for ch in sources:
                for lay in ch.layouts:
                    if lay.direction == direction:
                        groups.setdefault(lay.id, []).append(lay)
            table = {rid: tuple(sorted(lays, key=lambda x: -len(x.discriminators)))
                     for rid, lays in groups.items()}
            self._ids[key] = table
        return table

    def parse(self, text: str, line: int, ids: Mapping[str, tuple[Layout, ...]],
              overflow: int = 0) -> Record:
        """The record for one line (without its terminator). Never raises."""
        cands = ids.get(text[:4]) or ids.get(text[:2]) or ids.get(text[:1])
        if not cands:
            shown = text[:4].rstrip()
            return Record(None, text, line, (Defect(
                line, 1, min(max(len(shown), 1), WIDTH), None, "unknown-record",
                f"unknown record identifier {shown!r}", "X34"),))
        layout = cands[0]
        if len(cands) > 1:
            for cand in cands:
                if cand.accepts(text):
                    layout = cand
                    break
        if not overflow and layout.match(text):
            return Record(layout, text, line)
        defects = layout.diagnose(text, line)
        if overflow:  # one defect for the whole excess: the part kept and the part dropped
            defects = [d for d in defects if d.rule != "long"]
            defects.append(Defect(line, WIDTH + 1, len(text) + overflow, None, "long",
                                  f"record is {len(text) + overflow} characters, not {WIDTH}"
                                  f" ({overflow} beyond {len(text)} not read)", "X40"))
        return Record(layout, text, line, tuple(defects))


@cache
def catalogue() -> Catalogue:
    """The catalogue of every chapter shipped with ecert-abi (loaded once)."""
    return Catalogue(load_chapters())


MAX_LINE = 1 << 16


def read_lines(stream: IO[bytes], limit: int = MAX_LINE) -> Iterator[tuple[int, str, int]]:
    """(line number, text, overflow) per line of a byte stream, in constant memory.

    LF and CRLF terminators are removed; bytes map 1:1 to characters (latin-1) so a line
    is reproduced exactly. A line longer than `limit` keeps its first `limit` characters and
    reports how many were dropped (overflow), so a gigabyte without a newline is bounded.
    """
    number = 0
    while True:
        chunk = stream.readline(limit + 2)
        if not chunk:
            return
        number += 1
        overflow = 0
        if not chunk.endswith(b"\n") and len(chunk) == limit + 2:
            head = chunk[:limit]
            overflow = len(chunk) - limit
            prev = chunk
            while True:
                more = stream.readline(limit)
                if not more:
                    break
                if more.endswith(b"\n"):
                    overflow += len(more) - 1
                    if (more[-2:-1] or prev[-1:]) == b"\r":  # CRLF: the CR is no data
                        overflow -= 1
                    break
                overflow += len(more)
                prev = more
            yield number, head.decode("latin-1"), overflow
            continue
        if chunk.endswith(b"\r\n"):
            chunk = chunk[:-2]
        elif chunk.endswith(b"\n"):
            chunk = chunk[:-1]
        yield number, chunk.decode("latin-1"), 0


def write_lines(records: Iterable[Record | str], stream: IO[bytes], newline: bytes = b"\n") -> int:
    """Write records (or raw lines) one per line; returns the count."""
    n = 0
    for r in records:
        text = r.text if isinstance(r, Record) else r
        stream.write(text.encode("latin-1") + newline)
        n += 1
    return n

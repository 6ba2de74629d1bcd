"""Record layouts: loaded from the TOML chapters, checked, and compiled two ways.

A `Layout` is one 80-column record definition. From the same field list it builds:

* a fast path: one compiled regular expression whose fragments encode every field's class,
  designation, code list and constant, so one `fullmatch` validates all 80 columns;
* the reference path: a construct `Struct` with one `FieldAdapter` per field, used to
  diagnose a line field by field when the fast path refuses it, and to build records;
* a generated emitter that formats values and verifies the result with the fast regex.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import attrs
import construct

from . import fieldclass
from .fieldclass import EncodeError

WIDTH = 80
_FMT = re.compile(r"^(\d+)(S|A|N|\(S\)N|AN|D|X)(?: or (\d+)S)?$")
_POS = re.compile(r"^(\d+)(?:-(\d+))?$")
_NONDISPLAY = re.compile(r"[^\x20-\x7E]+")


class LayoutError(ValueError):
    """A layout file that cannot be used; the message names the file, record and field."""


class EmitError(ValueError):
    """A value that does not fit its field; raised by emit, never a silent truncation."""

    def __init__(self, layout: str, field: str, reason: str) -> None:
        super().__init__(f"{layout}.{field}: {reason}")
        self.layout = layout
        self.field = field
        self.reason = reason


@attrs.frozen
class Defect:
    """One fault of one input line: where (line, columns, field), which rule, which code.

    `code` is the CBP (or ecert-abi) condition code for the fault; `rule` is a short
    machine-readable name of the rule broken.
    """

    line: int
    start: int
    end: int
    field: str | None
    rule: str
    message: str
    code: str | None = None


class Problem(NamedTuple):
    rule: str
    message: str
    code: str | None


@attrs.frozen
class Field:
    """One field of a layout, as declared in its chapter file."""

    name: str
    start: int
    end: int
    cls: str
    desig: str
    fmt: str
    blank: bool = False
    decimals: int = 0
    const: str | None = None
    codes: Mapping[str, str] | None = None
    codes_name: str | None = None
    missing: str | None = None
    invalid: str | None = None
    desc: str = ""

    @property
    def width(self) -> int:
        return self.end - self.start + 1

    @property
    def is_filler(self) -> bool:
        return self.cls == "S"

    @property
    def fragment(self) -> str:
        codes = tuple(self.codes) if self.codes is not None else None
        return fieldclass.fragment(self.cls, self.width, self.blank, codes, self.const)

    @property
    def matcher(self) -> Callable[[str], re.Match[str] | None]:
        return _field_matcher(self.fragment)

    def decode(self, text: str) -> object:
        if self.const is not None:
            return self.const
        return fieldclass.decode(self.cls, text, self.decimals)

    def check(self, text: str) -> Problem | None:
        """Why `text` (exactly this field's columns) is not a valid value, or None."""
        if self.matcher(text):
            return None
        shown = text.rstrip(" ")
        if self.is_filler:
            return Problem("filler", f"data {shown!r} in filler", "X39")
        if self.const is not None:
            return Problem("constant", f"must be {self.const!r}, got {shown!r}", self.invalid)
        if text.isspace() or not text:
            return Problem("mandatory", "mandatory field is blank", self.missing)
        if self.codes is not None and fieldclass.fragment(
            self.cls, self.width, True
        ) and re.fullmatch(fieldclass.fragment(self.cls, self.width, True), text):
            listed = ", ".join(sorted(self.codes)) if len(self.codes) <= 12 else self.codes_name
            return Problem("code", f"{shown!r} is not one of {listed}", self.invalid)
        return Problem("class", f"{text!r} is not {_describe(self)}", self.invalid)

    def encode(self, value: object) -> str:
        if self.const is not None and value is None:
            return self.const.ljust(self.width)
        text = fieldclass.encode(self.cls, value, self.width, self.decimals)
        if not self.matcher(text):
            problem = self.check(text)
            raise EncodeError(problem.message if problem else f"{text!r} does not fit")
        return text


def _describe(f: Field) -> str:
    kinds = {
        "S": "spaces",
        "A": "letters A-Z, left-justified",
        "N": f"{f.width} digits",
        "(S)N": "a right-justified number",
        "AN": "upper-case letters, digits and spaces",
        "D": "a date MMDDYY",
        "X": "printable upper-case text",
    }
    text = kinds[f.cls]
    if f.blank and f.cls in ("N", "(S)N", "D"):
        text += " or spaces"
    return text


_matchers: dict[str, Callable[[str], re.Match[str] | None]] = {}


def _field_matcher(fragment: str) -> Callable[[str], re.Match[str] | None]:
    m = _matchers.get(fragment)
    if m is None:
        m = _matchers[fragment] = re.compile(fragment).fullmatch
    return m


class Invalid(NamedTuple):
    """What the reference parser yields for a field that breaks its rules."""

    text: str
    problem: Problem


class FieldAdapter(construct.Adapter):  # type: ignore[misc]  # construct ships no types
    """construct Adapter for one field: bytes <-> typed value, by the field's class.

    Decoding never raises: a bad field decodes to `Invalid`, so one parse collects every
    fault of a record. Encoding raises EncodeError for a value that does not fit.
    """

    def __init__(self, field: Field) -> None:
        super().__init__(construct.Bytes(field.width))
        self.field = field

    def _decode(self, obj: bytes, context: object, path: str) -> object:
        text = obj.decode("latin-1")
        problem = self.field.check(text)
        return Invalid(text, problem) if problem else self.field.decode(text)

    def _encode(self, obj: object, context: object, path: str) -> bytes:
        return self.field.encode(obj).encode("ascii")


class Layout:
    """One record definition: its fields, the fast regex, the construct Struct, the emitter."""

    __slots__ = (
        "_emit",
        "_slices",
        "by_name",
        "chapter",
        "description",
        "direction",
        "fields",
        "id",
        "match",
        "name",
        "names",
        "opaque",
        "struct",
        "title",
    )

    def __init__(self, name: str, rid: str, direction: str, title: str, description: str,
                 chapter: str, fields: tuple[Field, ...], opaque: bool = False) -> None:
        self.name = name
        self.id = rid
        self.direction = direction
        self.title = title
        self.description = description
        self.chapter = chapter
        self.fields = fields
        self.opaque = opaque
        self.names = frozenset(f.name for f in fields)
        self.match = re.compile("".join(f.fragment for f in fields), re.DOTALL).fullmatch
        self.struct = construct.Struct(*(f.name / FieldAdapter(f) for f in fields))
        self._slices = tuple((f, f.start - 1, f.end) for f in fields)
        self.by_name = {f.name: (f, f.start - 1, f.end) for f in fields}
        self._emit = _compile_emitter(self)

    def __repr__(self) -> str:
        return f"<Layout {self.name}>"

    @property
    def discriminators(self) -> tuple[Field, ...]:
        """Constant fields beyond the identifier that tell sibling layouts apart."""
        return tuple(f for f in self.fields if f.const is not None and f.name != "record_id")

    def accepts(self, text: str) -> bool:
        """Whether `text` carries this layout's constants (not whether it is valid)."""
        return all(text[f.start - 1:f.end] == f.const.ljust(f.width)  # type: ignore[union-attr]
                   for f in self.discriminators)

    def decode(self, text: str) -> dict[str, object]:
        """Typed values of a valid 80-column line, fillers left out."""
        return {f.name: f.decode(text[a:b]) for f, a, b in self._slices if not f.is_filler}

    def diagnose(self, text: str, line: int = 0) -> list[Defect]:
        """Every fault of `text` against this layout, through the construct reference parser."""
        defects: list[Defect] = []
        # within the record's 80 columns one defect per run (at most 40); past them the
        # length defect speaks for the rest, so a long line costs no more than a short one
        for m in _NONDISPLAY.finditer(text, 0, WIDTH):
            defects.append(Defect(line, m.start() + 1, m.end(), None, "non-displayable",
                                  f"non-displayable character {m.group()[0]!r}", "X40"))
        if len(text) < WIDTH:
            defects.append(Defect(line, len(text) + 1, WIDTH, None, "short",
                                  f"record is {len(text)} columns, expected {WIDTH}", "X42"))
        elif len(text) > WIDTH:
            defects.append(Defect(line, WIDTH + 1, len(text), None, "long",
                                  f"record is {len(text)} columns, expected {WIDTH}", "X40"))
        cols = text[:WIDTH].ljust(WIDTH)
        bad_cols = {i for d in defects if d.rule == "non-displayable"
                    for i in range(d.start, d.end + 1)}
        # Text from a caller (not from read_lines) may hold characters above U+00FF; each
        # is one column, already an X40 above, so a one-byte stand-in keeps the positions.
        parsed = self.struct.parse(cols.encode("latin-1", "replace"))
        for f in self.fields:
            value = parsed[f.name]
            if not isinstance(value, Invalid):
                continue
            if any(c in bad_cols for c in range(f.start, f.end + 1)):
                continue  # already reported as X40; one fault, one defect
            if f.start > len(text) and f.cls != "S":
                continue  # beyond a short record: the length defect says it
            p = value.problem
            defects.append(Defect(line, f.start, f.end, f.name, p.rule, p.message, p.code))
        return defects

    def emit(self, values: Mapping[str, Any]) -> str:
        """The 80-column text for `values` (field name -> typed value; fillers and constants
        may be left out). Raises EmitError naming the field for anything that does not fit.
        """
        try:
            text = self._emit(values)
        except Exception:  # any formatting failure is diagnosed precisely below
            text = None
        if text is not None and len(text) == WIDTH and self.match(text):
            return text
        return self.build(values)

    def build(self, values: Mapping[str, Any]) -> str:
        """Reference emitter through the construct Struct (slow, precise errors)."""
        unknown = set(values) - self.names
        if unknown:
            raise EmitError(self.name, sorted(unknown)[0], "no such field in this layout")
        full = {f.name: values.get(f.name) for f in self.fields}
        for f in self.fields:
            try:
                f.encode(full[f.name])
            except EncodeError as e:
                raise EmitError(self.name, f.name, str(e)) from None
        return str(self.struct.build(full).decode("ascii"))


def _compile_emitter(layout: Layout) -> Callable[[Mapping[str, Any]], str | None]:
    """Generate `emit(values) -> text` for one layout: one expression per field.

    The fast path must never accept what `Layout.build` refuses, so it takes exactly the
    types build takes (int, Decimal, date, str; never bool, float or a datetime), a constant
    only when left out, None or its own value (as `Layout.decode` gives it back), and no
    filler at all. Anything else raises or returns None, and `Layout.emit` falls back to
    `build`, which names the field at fault; the text is also only trusted after the layout
    regex accepts it.
    """
    parts: list[str] = []
    known = frozenset(f.name for f in layout.fields if not f.is_filler)
    env: dict[str, Any] = {"_dec": _emit_decimal, "_date": _emit_date, "_refuse": _refuse,
                           "_known": known}
    for i, f in enumerate(layout.fields):
        w = f.width
        blank = repr(" " * w)
        v = f"v{i}"
        take = f"if ({v} := g({f.name!r})) is None"
        if f.const is not None:
            text = repr(f.const.ljust(w))
            parts.append(f"({text} {take} or (_type({v}) is _str and {v} == {f.const!r}) "
                         "else _refuse())")
        elif f.is_filler:
            parts.append(blank)
        elif f.cls in fieldclass.TEXT:
            parts.append(f"({blank} {take} else _ljust({v}, {w}))")  # refuses a non-str
        elif f.decimals:
            parts.append(f"_dec(g({f.name!r}), {f.decimals}, {w})")
        elif f.cls in fieldclass.NUMERIC:
            # exactly int: bool (an int subclass) would format as 0/1
            parts.append(f"({blank} {take} else f'{{{v}:0{w}d}}' if _type({v}) is _int "
                         "else _refuse())")
        else:
            parts.append(f"_date(g({f.name!r}), {w})")
    # Builtins bound as default arguments: local look-ups keep the checks off the profile.
    src = ("def emit(values, _type=type, _int=int, _str=str, _ljust=str.ljust):\n"
           "    if not _known.issuperset(values): return None  # a filler, or unknown\n"
           "    g = values.get\n"
           f"    return ''.join(({', '.join(parts)},))\n")
    exec(compile(src, f"<emit {layout.name}>", "exec"), env)
    return env["emit"]  # type: ignore[no-any-return]


def _refuse() -> str:
    raise EncodeError("not a value the fast emitter takes")


def _emit_decimal(value: object, decimals: int, width: int) -> str:
    if value is None:
        return " " * width
    if type(value) is not Decimal and type(value) is not int:
        raise EncodeError("not an int or Decimal")  # bool, float, str: build says which
    scaled = Decimal(value).scaleb(decimals)
    if scaled != scaled.to_integral_value():  # also true for NaN
        raise EncodeError("too many decimals")
    return f"{int(scaled):0{width}d}"


def _emit_date(value: Any, width: int) -> str:
    if value is None:
        return " " * width
    if type(value) is not dt.date:  # a datetime is a date subclass that build refuses
        raise EncodeError("not a date")
    if not fieldclass.FIRST_DATE <= value <= fieldclass.LAST_DATE:
        raise EncodeError("date outside the two-digit-year window")
    return f"{value.month:02d}{value.day:02d}{value.year % 100:02d}"


# --- loading ---------------------------------------------------------------------------

def _parse_field(raw: Mapping[str, Any], codes: Mapping[str, Mapping[str, str]],
                 where: str, defaults: Mapping[str, str]) -> Field:
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise LayoutError(f"{where}: a field without a name")
    where = f"{where}.{name}"
    known = {"name", "pos", "fmt", "desig", "decimals", "const", "codes", "blank", "missing",
             "invalid", "desc"}
    extra = set(raw) - known
    if extra:
        raise LayoutError(f"{where}: unknown key(s) {sorted(extra)}")
    pos = _POS.match(str(raw.get("pos", "")))
    if not pos:
        raise LayoutError(f"{where}: pos {raw.get('pos')!r} is not 'n' or 'from-to'")
    start = int(pos.group(1))
    end = int(pos.group(2) or start)
    fmt = _FMT.match(str(raw.get("fmt", "")))
    if not fmt:
        raise LayoutError(f"{where}: fmt {raw.get('fmt')!r} is not a CATAIR width and class")
    width, cls, alt = int(fmt.group(1)), fmt.group(2), fmt.group(3)
    if width != end - start + 1:
        raise LayoutError(f"{where}: fmt width {width} but pos {start}-{end} is "
                          f"{end - start + 1} columns")
    if alt is not None and int(alt) != width:
        raise LayoutError(f"{where}: fmt alternative width {alt} differs from {width}")
    desig = raw.get("desig", "")
    if desig not in ("M", "C", "O", ""):
        raise LayoutError(f"{where}: desig {desig!r} is not M, C, O or empty")
    decimals = raw.get("decimals", 0)
    if decimals and cls not in fieldclass.NUMERIC:
        raise LayoutError(f"{where}: implied decimals on a {cls} field")
    code_list = None
    codes_name = raw.get("codes")
    if codes_name is not None:
        if codes_name not in codes:
            raise LayoutError(f"{where}: unknown code list {codes_name!r}")
        code_list = codes[codes_name]
    const = raw.get("const")
    # Text may be blank unless mandatory; numbers and dates only with "or nS" or `blank`.
    blank = bool(raw.get("blank")) or alt is not None or (
        cls in fieldclass.TEXT and desig != "M")
    f = Field(name=name, start=start, end=end, cls=cls, desig=desig, fmt=raw["fmt"],
              blank=blank, decimals=decimals, const=const, codes=code_list,
              codes_name=codes_name, missing=raw.get("missing", defaults.get("missing")),
              invalid=raw.get("invalid", defaults.get("invalid")), desc=raw.get("desc", ""))
    if const is not None and (len(const) > width or not f.matcher(const.ljust(width))
                              or not re.fullmatch(fieldclass.fragment(cls, width, True),
                                                  const.ljust(width))):
        raise LayoutError(f"{where}: const {const!r} does not fit {raw['fmt']}")
    if code_list is not None:
        for code in code_list:
            if len(code) > width or not re.fullmatch(
                    fieldclass.fragment(cls, width, True), code.ljust(width)):
                raise LayoutError(f"{where}: code {code!r} of {codes_name} does not fit "
                                  f"{raw['fmt']}")
    return f


def check_coverage(fields: tuple[Field, ...], where: str) -> None:
    """Refuse a layout whose fields overlap, leave a gap or leave columns 1-80."""
    expected = 1
    for f in fields:
        if f.start < expected:
            raise LayoutError(f"{where}.{f.name}: starts at {f.start}, overlapping the "
                              f"previous field (which ends at {expected - 1})")
        if f.start > expected:
            raise LayoutError(f"{where}.{f.name}: starts at {f.start}, leaving columns "
                              f"{expected}-{f.start - 1} undeclared")
        if f.end > WIDTH:
            raise LayoutError(f"{where}.{f.name}: ends at {f.end}, past column {WIDTH}")
        expected = f.end + 1
    if expected != WIDTH + 1:
        last = f"{where}.{fields[-1].name}" if fields else where
        raise LayoutError(f"{last}: fields end at column {expected - 1}, not {WIDTH}; "
                          f"columns {expected}-{WIDTH} undeclared")


def opaque_layout(rid: str, chapter: str, direction: str) -> Layout:
    """A known but unmodelled record: identifier plus printable data, carried through."""
    fields = (
        Field(name="record_id", start=1, end=len(rid), cls="AN", desig="M",
              fmt=f"{len(rid)}AN", const=rid, desc="Record identifier"),
        Field(name="data", start=len(rid) + 1, end=WIDTH, cls="X", desig="", blank=True,
              fmt=f"{WIDTH - len(rid)}X", desc="Carried through unchanged"),
    )
    return Layout(f"{rid}_opaque", rid, direction, f"Record {rid} (not modelled)",
                  "Recognised and carried through unchanged.", chapter, fields, opaque=True)


@attrs.frozen
class Chapter:
    """One layout file: an ABI application (or the envelope) and its records."""

    name: str
    title: str
    description: str
    source: str
    input: str | None
    response: str | None
    transaction_header: str | None
    layouts: tuple[Layout, ...]
    codes: Mapping[str, Mapping[str, str]]
    known: tuple[str, ...] = ()
    settings: Mapping[str, Any] = attrs.field(factory=dict)

    def layout(self, name: str) -> Layout:
        for lay in self.layouts:
            if lay.name == name:
                return lay
        raise KeyError(f"no layout {name!r} in chapter {self.name}")


def load_chapter(data: Mapping[str, Any], source: str) -> Chapter:
    """Build a Chapter from parsed TOML; raises LayoutError naming what is wrong."""
    head = data.get("chapter")
    if not isinstance(head, Mapping) or "name" not in head:
        raise LayoutError(f"{source}: missing [chapter] table with a name")
    codes = {k: {str(c): str(m) for c, m in v.items()} for k, v in data.get("codes", {}).items()}
    defaults = {k: head[k] for k in ("missing", "invalid") if k in head}
    layouts: list[Layout] = []
    seen: set[str] = set()
    for rec in data.get("records", []):
        rname = rec.get("name")
        where = f"{source}:{rname}"
        if not rname or rname in seen:
            raise LayoutError(f"{where}: record name missing or repeated")
        seen.add(rname)
        if rec.get("direction") not in ("input", "output"):
            raise LayoutError(f"{where}: direction must be 'input' or 'output'")
        fields = tuple(_parse_field(f, codes, where, defaults) for f in rec.get("fields", []))
        check_coverage(fields, where)
        rid = rec.get("id", "")
        if not fields or fields[0].name != "record_id" or fields[0].const != rid:
            raise LayoutError(f"{where}: the first field must be record_id with const {rid!r}")
        layouts.append(Layout(rname, rid, rec["direction"], rec.get("title", ""),
                              rec.get("description", ""), head["name"], fields))
    known = tuple(head.get("known", ()))
    for rid in known:
        layouts.append(opaque_layout(rid, head["name"], "input"))
    return Chapter(name=head["name"], title=head.get("title", ""),
                   description=head.get("description", "").strip(),
                   source=head.get("source", ""), input=head.get("input"),
                   response=head.get("response"),
                   transaction_header=head.get("transaction_header"),
                   layouts=tuple(layouts), codes=codes, known=known,
                   settings={k: v for k, v in head.items()})


def iter_chapter_files() -> Iterator[tuple[str, bytes]]:
    for entry in sorted((Path(__file__).parent / "layouts").glob("*.toml")):
        yield entry.name, entry.read_bytes()


def load_chapters() -> dict[str, Chapter]:
    """Every chapter shipped in ecert_abi/layouts, by name."""
    chapters = {}
    for name, raw in iter_chapter_files():
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise LayoutError(f"{name}: {e}") from None
        ch = load_chapter(data, name)
        chapters[ch.name] = ch
    return chapters

"""The parts of a spec chapter that come from beyond its layout file: condition tables
and the example batch with its reply."""

from __future__ import annotations

from .conditions import CONDITIONS
from .layout import Chapter


def chapter_conditions(chapter: Chapter) -> list[str]:
    """Codes a chapter documents: those its fields name, plus its `conditions` setting."""
    codes: dict[str, None] = {}
    if chapter.name == "envelope":
        codes.update((c, None) for c in CONDITIONS if c.startswith("X") or c == "999")
    for c in chapter.settings.get("conditions", ()):
        codes[c] = None
    for lay in chapter.layouts:
        for f in lay.fields:
            for c in (f.missing, f.invalid):
                if c:
                    codes[c] = None
    return [c for c in codes if c in CONDITIONS]


def chapter_extra(chapter: Chapter) -> str:
    out = ["## Condition codes", "", "| Code | Narrative | Severity | When |", "|---|---|---|---|"]
    for code in chapter_conditions(chapter):
        c = CONDITIONS[code]
        out.append(f"| {c.code} | {c.narrative} | {c.severity} | {c.when} |")
    out.append("")
    example = chapter.settings.get("example")
    if example:
        from .examples import example_section

        out.append(example_section(chapter))
    return "\n".join(out)

"""`ecert-abi process` with one rule deliberately broken, for the conformance tests.

    python planted_processor.py BUG [process options...]

BUG is one of:
  ignore-importer   a claim by another importer than the certificate's is accepted (no L04)
  keep-on-delete    a deleted entry summary's claims are not credited back
  drop-informational  informational conditions (severity I) are left out of the reply
  none              no bug: plain `ecert-abi process`
"""

from __future__ import annotations

import sys

import attrs

from ecert_abi import cli, engine, processor


def ignore_importer() -> None:
    claims = engine._claims

    def without_l04(*args, **kwargs):  # type: ignore[no-untyped-def]
        found_claims, found = claims(*args, **kwargs)
        return found_claims, [f for f in found if f.code != "L04"]

    engine._claims = without_l04


def keep_on_delete() -> None:
    decide = processor.decide_summary

    def no_credit(*args, **kwargs):  # type: ignore[no-untyped-def]
        d = decide(*args, **kwargs)
        if d.outcome == "DELETED":
            d = attrs.evolve(d, changes=tuple(c for c in d.changes
                                              if not isinstance(c, engine.Credit)))
        return d

    processor.decide_summary = no_credit


def drop_informational() -> None:
    ax = processor.Processor._ax

    def quiet(self, k, s, d):  # type: ignore[no-untyped-def]
        return [line for line in ax(self, k, s, d)
                if not (line.startswith("E1") and line[2] == " " and line[3] == "I")]

    processor.Processor._ax = quiet


BUGS = {"ignore-importer": ignore_importer, "keep-on-delete": keep_on_delete,
        "drop-informational": drop_informational, "none": lambda: None}

if __name__ == "__main__":
    BUGS[sys.argv[1]]()
    cli.main(["process", *sys.argv[2:]])

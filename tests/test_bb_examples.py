"""Printed examples.

CBP's Batch and Block chapter examples are not available to us, so the example tested here
is the synthetic AE summary of the CATAIR subset reference, section 5.11, typed in exactly
as printed (`|` marks column 81 and is not part of the record).
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from ecert_abi.cli import main
from ecert_abi.record import Record, catalogue

EXAMPLE_5_11 = """\
10AK9T  04172033 2704BRK-0815    0211 X           1                             |
1198-7654321  98-7654321                 040626             CA                  |
40  001 AUAU030126        0000000850602010000019000    N                        |
500202305015 0000123456 0000045000 000001850000KG                               |
52056AU004711                                                                   |
"""

ENVELOPE_A = "A2704K9TPASSWD041726     AE                                ECERT 5.11 EXAMPLE   "
ENVELOPE_B = "B  2704K9TAE                                               BLOCK 1              "
ENVELOPE_Y = "Y  2704K9TAE                                                                    "
ENVELOPE_Z = "Z2704K9T      041726                                                            "


def example_lines() -> list[str]:
    out = []
    for raw in EXAMPLE_5_11.splitlines():
        assert len(raw) == 81 and raw[80] == "|"
        out.append(raw[:80])
    return out


@pytest.fixture(scope="module")
def records() -> dict[str, Record]:
    cat = catalogue()
    ids = cat.ids(cat.chapters["entry_summary"], "input")
    recs = [cat.parse(line, n, ids) for n, line in enumerate(example_lines(), 1)]
    assert [r.layout.name if r.layout else None for r in recs] == [
        "R10", "R11", "R40", "R50", "R52"]
    for r in recs:
        assert r.ok, r.defects
    return {r.id: r for r in recs if r.id}


def test_header_values(records: dict[str, Record]) -> None:
    r10 = records["10"]
    assert r10["summary_filing_action_request_code"] == "A"
    assert r10["entry_filer_code"] == "K9T"
    assert r10["entry_number"] == "04172033"
    assert r10["district_port_of_entry"] == "2704"
    assert r10["broker_reference_number"] == "BRK-0815"
    assert r10["entry_type_code"] == "02"
    assert r10["mode_of_transportation_code"] == "11"
    assert r10["electronic_signature"] == "X"
    assert r10["payment_type_code"] == "1"
    assert r10["bond_waiver_indicator"] is None


def test_header_content_values(records: dict[str, Record]) -> None:
    r11 = records["11"]
    assert r11["importer_of_record_number"] == "98-7654321"
    assert r11["consignee_number"] == "98-7654321"
    assert r11["designated_notify_party_4811_number"] is None
    assert r11["estimated_entry_date"] == dt.date(2026, 4, 6)
    assert r11["date_of_importation"] is None
    assert r11["us_state_of_destination_code"] == "CA"


def test_line_values(records: dict[str, Record]) -> None:
    r40 = records["40"]
    assert r40["line_item_identifier"] == "001"
    assert r40["country_of_origin_code"] == "AU"
    assert r40["country_of_export_code"] == "AU"
    assert r40["date_of_exportation"] == dt.date(2026, 3, 1)
    assert r40["charges_amount"] == 850
    assert r40["foreign_port_of_lading_code"] == "60201"
    assert r40["gross_shipping_weight"] == 19000
    assert r40["related_party_indicator"] == "N"


def test_tariff_values(records: dict[str, Record]) -> None:
    r50 = records["50"]
    assert r50["hts_number"] == "0202305015"
    assert r50["duty_amount"] == Decimal("1234.56")
    assert isinstance(r50["duty_amount"], Decimal)
    assert r50["value_of_goods_amount"] == 45000
    assert r50["quantity_1"] == Decimal("18500.00")
    assert r50["unit_of_measure_code_1"] == "KG"
    assert r50["quantity_2"] is None and r50["unit_of_measure_code_2"] is None


def test_certificate_values(records: dict[str, Record]) -> None:
    r52 = records["52"]
    assert r52["license_certificate_permit_type_code"] == "05"
    assert r52["license_certificate_permit_number"] == "6AU004711"


def test_example_emits_back_from_values(records: dict[str, Record]) -> None:
    for rec, line in zip(records.values(), example_lines(), strict=True):
        assert rec.layout is not None
        assert rec.layout.emit(rec.values) == line


def _round_trip(tmp_path: Path, lines: list[str]) -> tuple[bytes, bytes, list[dict[str, object]]]:
    src = tmp_path / "in.abi"
    src.write_bytes("".join(line + "\n" for line in lines).encode("latin-1"))
    runner = CliRunner()
    parsed = runner.invoke(main, ["parse", str(src)])
    assert parsed.exit_code == 0, parsed.output
    out = tmp_path / "out.abi"
    emitted = runner.invoke(main, ["emit", "-", "-o", str(out)], input=parsed.stdout)
    assert emitted.exit_code == 0, emitted.output
    objs = [json.loads(x) for x in parsed.stdout.splitlines()]
    return src.read_bytes(), out.read_bytes(), objs


def test_cli_round_trip_bare_example(tmp_path: Path) -> None:
    original, copy, objs = _round_trip(tmp_path, example_lines())
    assert copy == original
    assert len(objs) == 5


def test_cli_round_trip_enveloped_example_goes_through_values(tmp_path: Path) -> None:
    lines = [ENVELOPE_A, ENVELOPE_B, *example_lines(), ENVELOPE_Y, ENVELOPE_Z]
    original, copy, objs = _round_trip(tmp_path, lines)
    assert copy == original
    assert [o["layout"] for o in objs] == ["A_input", "B_input", "R10", "R11", "R40", "R50",
                                           "R52", "Y_input", "Z_input"]
    for o in objs:
        assert o["defects"] == []
        assert "raw" not in o  # canonical: re-emitted from the typed fields alone
    r50 = objs[5]["fields"]
    assert isinstance(r50, dict)
    assert r50["duty_amount"] == "1234.56" and r50["quantity_1"] == "18500.00"
    assert r50["value_of_goods_amount"] == 45000


def test_cli_emit_from_edited_values(tmp_path: Path) -> None:
    """Values, not raw text, drive emit: an edited duty appears in the output."""
    lines = [ENVELOPE_A, ENVELOPE_B, *example_lines(), ENVELOPE_Y, ENVELOPE_Z]
    _, _, objs = _round_trip(tmp_path, lines)
    objs[5]["fields"]["duty_amount"] = "99.5"  # type: ignore[index]
    out = tmp_path / "edited.abi"
    res = CliRunner().invoke(main, ["emit", "-", "-o", str(out)],
                             input="".join(json.dumps(o) + "\n" for o in objs))
    assert res.exit_code == 0, res.output
    got = out.read_bytes().decode("latin-1").split("\n")
    assert got[5][13:23] == "0000009950"
    assert got[5][:13] == example_lines()[3][:13]

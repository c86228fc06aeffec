"""Vehicle–charger compatibility: certifications by model and firmware range, depots as a table."""

from __future__ import annotations

import pytest

from evota.domain.charger_compat import (
    ISO15118_20_BIDIRECTIONAL as BIDI,
)
from evota.domain.charger_compat import (
    Certification,
    ChargerFacts,
    depot_hold_reason,
    validate_capability,
)
from evota.errors import InputError

CERTS = [
    Certification(BIDI, "Acme", "AC22", ">=2.1,<3"),
    Certification(BIDI, "Volt", "DC50", ">=5"),
    Certification("iso15118-2-pnc", "Acme", "AC22", ">=1"),
]


def charger(cpid: str, version: str | None, model: str = "AC22", vendor: str = "Acme") -> ChargerFacts:
    return ChargerFacts(cpid, vendor, model, version)


CASES: dict[str, tuple[list[ChargerFacts], str | None]] = {
    "every charger certified": (
        [charger("CP1", "2.1.0"), charger("CP2", "2.9"), charger("D1", "5.2", "DC50", "Volt")],
        None,
    ),
    "one below the range": (
        [charger("CP1", "2.1.0"), charger("CP2", "2.0.9")],
        "charger: at depot berlin, CP2 (Acme AC22 2.0.9) is not certified for iso15118-20-bidirectional",
    ),
    "above the range": (
        [charger("CP1", "3.0.0")],
        "charger: at depot berlin, CP1 (Acme AC22 3.0.0) is not certified for iso15118-20-bidirectional",
    ),
    "a pre-release inside the range counts": ([charger("CP1", "2.2.0rc1")], None),
    "another vendor's model of the same name": (
        [charger("CP1", "2.5", vendor="Other")],
        "charger: at depot berlin, CP1 (Other AC22 2.5) is not certified for iso15118-20-bidirectional",
    ),
    "a version that cannot be ordered": (
        [charger("CP1", "build-42")],
        "charger: at depot berlin, CP1 (Acme AC22 build-42) is not certified for iso15118-20-bidirectional",
    ),
    "never booted": (
        [charger("CP1", None)],
        "charger: at depot berlin, CP1 (Acme AC22 ?) is not certified for iso15118-20-bidirectional",
    ),
    "several missing are counted": (
        [charger("CP1", "1.0"), charger("CP2", "1.0"), charger("CP3", "2.5")],
        "charger: at depot berlin, CP1 (Acme AC22 1.0) is not certified for iso15118-20-bidirectional"
        " and 1 more",
    ),
    "no charger at the depot": (
        [],
        "charger: no charger registered at depot berlin to check for iso15118-20-bidirectional",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_depot_hold_reason(case: str) -> None:
    chargers, reason = CASES[case]
    assert depot_hold_reason(BIDI, "berlin", chargers, CERTS) == reason


def test_certifications_are_per_capability() -> None:
    assert depot_hold_reason("iso15118-2-pnc", "berlin", [charger("CP1", "1.5")], CERTS) is None
    assert depot_hold_reason(BIDI, "berlin", [charger("CP1", "1.5")], CERTS) is not None


@pytest.mark.parametrize("bad", ["", "X", "ISO 15118", "a" * 65, "-v2x"])
def test_bad_capabilities(bad: str) -> None:
    with pytest.raises(InputError):
        validate_capability(bad)


def test_bad_ranges() -> None:
    with pytest.raises(InputError, match="version range"):
        Certification(BIDI, "Acme", "AC22", "two or later")

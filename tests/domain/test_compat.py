"""The compatibility matrix, as tables: constraints and whole releases after an update."""

from __future__ import annotations

import pytest

from evota.domain.compat import (
    EcuImage,
    hold_reason,
    incomplete_releases,
    install_rank,
    unmet_requirements,
    update_problems,
)
from evota.domain.registry import EcuSpec
from evota.domain.release import BundleMeta, ImageMeta
from evota.domain.versions import parse_requirement


def image(ecu_type: str, version: str, *requires: str) -> ImageMeta:
    return ImageMeta(
        ecu_type, (f"{ecu_type}-gen2",), version, 1, requires=tuple(map(parse_requirement, requires))
    )


def ecu(serial: str, ecu_type: str, version: str | None, *requires: str) -> EcuImage:
    if version is None:
        return EcuImage(serial, ecu_type, None, None)
    return EcuImage(serial, ecu_type, f"{ecu_type}/{version}/fw.bin", image(ecu_type, version, *requires))


# id → (state, expected unmet as strings)
UNMET = {
    "met": ([ecu("B", "bms", "2.4.0", "vcms>=3.1"), ecu("V", "vcms", "3.1.0")], []),
    "too-old": (
        [ecu("B", "bms", "2.4.0", "vcms>=3.1"), ecu("V", "vcms", "3.0.0")],
        ["bms/2.4.0/fw.bin requires vcms>=3.1; vcms would run 3.0.0"],
    ),
    "unknown-version": (
        [ecu("B", "bms", "2.4.0", "vcms>=3.1"), ecu("V", "vcms", None)],
        ["bms/2.4.0/fw.bin requires vcms>=3.1; vcms runs an unknown version"],
    ),
    "absent-type": (
        [ecu("B", "bms", "2.4.0", "vcms>=3.1")],
        ["bms/2.4.0/fw.bin requires vcms>=3.1; vcms is not in the vehicle"],
    ),
    "upper-bound": (
        [ecu("B", "bms", "2.4.0", "vcms>=3.1,<4"), ecu("V", "vcms", "4.0.0")],
        ["bms/2.4.0/fw.bin requires vcms<4,>=3.1; vcms would run 4.0.0"],
    ),
    "every-ecu-of-the-type": (
        [ecu("B", "bms", "2.4.0", "vcms>=3.1"), ecu("V1", "vcms", "3.1.0"), ecu("V2", "vcms", "3.0.0")],
        ["bms/2.4.0/fw.bin requires vcms>=3.1; vcms would run 3.0.0"],
    ),
}


@pytest.mark.parametrize("case", list(UNMET))
def test_unmet_requirements(case: str) -> None:
    state, expected = UNMET[case]
    assert [str(u) for u in unmet_requirements(state)] == expected


def test_an_update_may_not_break_what_held_but_need_not_fix_what_did_not() -> None:
    before = [ecu("B", "bms", "2.4.0", "vcms>=3.1"), ecu("V", "vcms", "3.1.0"), ecu("T", "tms", None)]
    broken = [ecu("B", "bms", "2.4.0", "vcms>=3.1"), ecu("V", "vcms", "3.0.0"), ecu("T", "tms", None)]
    assert [u.serial for u in update_problems(before, broken, {"vcms/3.0.0/fw.bin"})] == ["B"]
    # Unmet before (VCMS unknown) and not touched by the update: not the update's problem.
    before = [ecu("B", "bms", "2.4.0", "vcms>=3.1"), ecu("V", "vcms", None), ecu("T", "tms", "1.0.0")]
    after = [ecu("B", "bms", "2.4.0", "vcms>=3.1"), ecu("V", "vcms", None), ecu("T", "tms", "1.1.0")]
    assert update_problems(before, after, {"tms/1.1.0/fw.bin"}) == []
    # ...but an image being installed must have its requirements met.
    after = [ecu("B", "bms", "2.5.0", "vcms>=3.1"), ecu("V", "vcms", None), ecu("T", "tms", "1.0.0")]
    assert [u.serial for u in update_problems(before, after, {"bms/2.5.0/fw.bin"})] == ["B"]


RELEASE = BundleMeta("r1", ("vcms/3.1.0/fw.bin", "bms/2.4.0/fw.bin"))
BUNDLES = {"releases/r1.json": RELEASE}

# id → (state after, named releases, installing, number of problems)
RELEASES = {
    "whole-and-named": (
        [ecu("B", "bms", "2.4.0"), ecu("V", "vcms", "3.1.0")],
        ["releases/r1.json"],
        {"bms/2.4.0/fw.bin", "vcms/3.1.0/fw.bin"},
        0,
    ),
    "whole-with-an-installed-part": (
        [ecu("B", "bms", "2.4.0"), ecu("V", "vcms", "3.1.0")],
        [],
        {"bms/2.4.0/fw.bin"},
        0,
    ),
    "named-but-partial": (
        [ecu("B", "bms", "2.4.0"), ecu("V", "vcms", "3.0.0")],
        ["releases/r1.json"],
        {"bms/2.4.0/fw.bin"},
        2,
    ),
    "unnamed-but-partial": (
        [ecu("B", "bms", "2.4.0"), ecu("V", "vcms", "3.0.0")],
        [],
        {"bms/2.4.0/fw.bin"},
        1,
    ),
    "named-unknown": ([ecu("B", "bms", "2.4.0")], ["releases/nope.json"], set(), 1),
    "image-in-no-release": ([ecu("T", "tms", "1.0.0")], [], {"tms/1.0.0/fw.bin"}, 0),
}


@pytest.mark.parametrize("case", list(RELEASES))
def test_incomplete_releases(case: str) -> None:
    after, named, installing, problems = RELEASES[case]
    assert len(incomplete_releases(after, BUNDLES, named, installing)) == problems


def test_install_rank_follows_whole_releases_only() -> None:
    whole = [ecu("B", "bms", "2.4.0"), ecu("V", "vcms", "3.1.0")]
    assert install_rank(whole, BUNDLES, []) == {"vcms/3.1.0/fw.bin": 0, "bms/2.4.0/fw.bin": 1}
    assert install_rank([ecu("B", "bms", "2.4.0")], BUNDLES, []) == {}


# ---- hold_reason: the server's compatibility matrix over the registry --------------------------


VEHICLE = (
    EcuSpec("GW-1", "gateway", "gw-tcu4", "1.0.0"),
    EcuSpec("BMS-1", "bms", "bms-gen2", "2.3.0"),
    EcuSpec("VCMS-1", "vcms", "vcms-gen3", "3.0.0"),
)


def meta(ecu_type: str, version: str, *requires: str, hw: str | None = None) -> ImageMeta:
    return ImageMeta(
        ecu_type,
        (hw or f"{ecu_type}-gen{'3' if ecu_type == 'vcms' else '2'}",),
        version,
        1,
        requires=tuple(map(parse_requirement, requires)),
    )


BMS_NEEDS_VCMS = ("bms/2.4.0/b.bin", meta("bms", "2.4.0", "vcms>=3.1"))
HOLDS = {
    "needs-newer-vcms": ([BMS_NEEDS_VCMS], "incompatible (vcms 3.0.0 < 3.1)"),
    "release-brings-it": ([("vcms/3.1.0/v.bin", meta("vcms", "3.1.0")), BMS_NEEDS_VCMS], None),
    "release-brings-too-old": (
        [("vcms/3.0.5/v.bin", meta("vcms", "3.0.5")), BMS_NEEDS_VCMS],
        "incompatible (vcms 3.0.5 < 3.1)",
    ),
    "upper-bound": (
        [("bms/2.4.0/b.bin", meta("bms", "2.4.0", "vcms>=2,<3"))],
        "incompatible (vcms 3.0.0 >= 3)",
    ),
    "no-fitting-ecu": (
        [("bms/2.4.0/b.bin", meta("bms", "2.4.0", hw="bms-gen1"))],
        "incompatible (no bms ECU with hardware bms-gen1 for bms/2.4.0/b.bin)",
    ),
    "needs-absent-type": (
        [("bms/2.4.0/b.bin", meta("bms", "2.4.0", "tms>=1"))],
        "incompatible (no tms in the vehicle)",
    ),
    "no-requirements": ([("bms/2.4.0/b.bin", meta("bms", "2.4.0"))], None),
}


@pytest.mark.parametrize("case", list(HOLDS))
def test_hold_reason(case: str) -> None:
    release, expected = HOLDS[case]
    assert hold_reason(VEHICLE, release) == expected


def test_an_unknown_installed_version_holds() -> None:
    vehicle = (EcuSpec("BMS-1", "bms", "bms-gen2", "2.3.0"), EcuSpec("VCMS-1", "vcms", "vcms-gen3", None))
    assert hold_reason(vehicle, [BMS_NEEDS_VCMS]) == "incompatible (vcms version unknown)"

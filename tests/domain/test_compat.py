"""The compatibility matrix, as tables: constraints and whole releases after an update."""

from __future__ import annotations

import pytest

from evota.domain.compat import (
    EcuImage,
    incomplete_releases,
    install_rank,
    unmet_requirements,
    update_problems,
)
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

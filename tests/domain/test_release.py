"""Release rules: release counters, downgrades, bundles, and the signed custom metadata."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from evota.domain.release import (
    CUSTOM_KEY,
    BundleMeta,
    Downgrade,
    ImageKind,
    ImageMeta,
    bundle_target_path,
    check_bundle,
    image_target_path,
    next_release_counter,
)
from evota.domain.versions import parse_requirement
from evota.errors import InputError, ReleaseRejectedError


def meta(
    version: str,
    counter: int,
    *,
    ecu_type: str = "bms",
    hardware_ids: Sequence[str] = ("bms-gen2",),
    requires: Sequence[str] = (),
) -> ImageMeta:
    return ImageMeta(
        ecu_type=ecu_type,
        hardware_ids=tuple(hardware_ids),
        version=version,
        release_counter=counter,
        requires=tuple(parse_requirement(r) for r in requires),
    )


# ---- next_release_counter: accepted -----------------------------------------------------------


@pytest.mark.parametrize(
    ("existing", "ecu_type", "hardware_ids", "version", "expected"),
    [
        pytest.param([], "bms", ["bms-gen2"], "2.4.0", 1, id="first-image"),
        pytest.param([meta("2.4.0", 1)], "bms", ["bms-gen2"], "2.5.0", 2, id="higher-version"),
        pytest.param([meta("2.4.0", 1), meta("2.5.0", 2)], "bms", ["bms-gen2"], "2.6.0", 3, id="third-image"),
        pytest.param(
            [meta("2.4.0", 1), meta("2.5.0", 5)], "bms", ["bms-gen2"], "3.0.0", 6, id="max-plus-one"
        ),
        pytest.param([meta("2.4.0", 1)], "bms", ["bms-gen3"], "2.4.0", 1, id="same-version-other-hardware"),
        pytest.param(
            [meta("2.4.0", 4, ecu_type="vcms", hardware_ids=["bms-gen2"])],
            "bms",
            ["bms-gen2"],
            "2.4.0",
            1,
            id="other-ecu-type-same-hardware-ignored",
        ),
        pytest.param(
            [meta("2.4.0", 7, hardware_ids=["bms-gen1"])],
            "bms",
            ["bms-gen2"],
            "1.0.0",
            1,
            id="disjoint-hardware-ignored-even-if-lower",
        ),
        pytest.param(
            [meta("2.4.0", 4, hardware_ids=["bms-gen1"]), meta("2.4.0", 2, hardware_ids=["bms-gen2"])],
            "bms",
            ["bms-gen2", "bms-gen3"],
            "2.5.0",
            3,
            id="only-overlapping-hardware-counts",
        ),
        pytest.param(
            [meta("2.4.0", 4, hardware_ids=["bms-gen1"]), meta("2.4.0", 2, hardware_ids=["bms-gen2"])],
            "bms",
            ["bms-gen1", "bms-gen2"],
            "2.5.0",
            5,
            id="max-over-all-overlapping-hardware",
        ),
    ],
)
def test_next_release_counter(
    existing: list[ImageMeta], ecu_type: str, hardware_ids: list[str], version: str, expected: int
) -> None:
    counter, downgrade = next_release_counter(
        ecu_type=ecu_type,
        hardware_ids=hardware_ids,
        version=version,
        existing=existing,
        downgrade_reason=None,
    )
    assert counter == expected
    assert downgrade is None


@pytest.mark.parametrize("existing", [[], ["2.4.0"]], ids=["first-image", "upgrade"])
def test_a_downgrade_reason_on_a_version_that_is_not_lower_is_refused(existing: list[str]) -> None:
    """A reason that would be silently dropped is refused instead."""
    with pytest.raises(ReleaseRejectedError, match="is not lower than the newest"):
        next_release_counter(
            ecu_type="bms",
            hardware_ids=["bms-gen2"],
            version="2.5.0",
            existing=[meta(v, i + 1) for i, v in enumerate(existing)],
            downgrade_reason="not needed",
        )


def test_an_exact_old_build_is_rolled_back_to_under_a_local_version() -> None:
    newer = [meta("2.4.0", 1), meta("2.5.0", 2)]
    with pytest.raises(ReleaseRejectedError, match=r"publish it again as 2\.4\.0\+r1"):
        next_release_counter(
            ecu_type="bms", hardware_ids=["bms-gen2"], version="2.4.0", existing=newer, downgrade_reason="x"
        )
    counter, downgrade = next_release_counter(
        ecu_type="bms", hardware_ids=["bms-gen2"], version="2.4.0+r1", existing=newer, downgrade_reason="x"
    )
    assert counter == 3 and downgrade is not None and downgrade.newest_version == "2.5.0"


# ---- next_release_counter: refused ------------------------------------------------------------


@pytest.mark.parametrize(
    ("existing", "hardware_ids", "version", "message"),
    [
        pytest.param([meta("2.4.0", 1)], ["bms-gen2"], "2.4.0", "already exists", id="same-version"),
        pytest.param(
            [meta("2.4.0", 1)], ["bms-gen2"], "2.4", "already exists", id="same-version-pep440-equal"
        ),
        pytest.param(
            [meta("2.4.0", 1, hardware_ids=["bms-gen2", "bms-gen3"])],
            ["bms-gen3"],
            "2.4.0",
            "already exists for bms-gen3",
            id="same-version-one-shared-hardware",
        ),
        pytest.param(
            [meta("2.4.0", 1), meta("2.5.0", 2)],
            ["bms-gen2"],
            "2.4.5",
            "lower than the newest 2.5.0",
            id="lower-version",
        ),
        pytest.param(
            [meta("2.5.0", 1), meta("2.3.0", 2)],
            ["bms-gen2"],
            "2.4.0",
            "lower than the newest 2.5.0",
            id="newest-is-by-version-not-counter",
        ),
    ],
)
def test_next_release_counter_refuses(
    existing: list[ImageMeta], hardware_ids: list[str], version: str, message: str
) -> None:
    with pytest.raises(ReleaseRejectedError, match=message):
        next_release_counter(
            ecu_type="bms",
            hardware_ids=hardware_ids,
            version=version,
            existing=existing,
            downgrade_reason=None,
        )


def test_lower_version_refusal_says_how_to_downgrade() -> None:
    with pytest.raises(ReleaseRejectedError, match="--allow-downgrade --reason"):
        next_release_counter(
            ecu_type="bms",
            hardware_ids=["bms-gen2"],
            version="2.3.0",
            existing=[meta("2.4.0", 1)],
            downgrade_reason=None,
        )


@pytest.mark.parametrize(
    "reason", [pytest.param("", id="empty"), pytest.param("   \t\n", id="whitespace-only")]
)
def test_downgrade_needs_a_real_reason(reason: str) -> None:
    with pytest.raises(ReleaseRejectedError, match="lower than the newest"):
        next_release_counter(
            ecu_type="bms",
            hardware_ids=["bms-gen2"],
            version="2.3.0",
            existing=[meta("2.4.0", 1)],
            downgrade_reason=reason,
        )


def test_downgrade_with_reason_is_recorded() -> None:
    counter, downgrade = next_release_counter(
        ecu_type="bms",
        hardware_ids=["bms-gen2"],
        version="2.3.0",
        existing=[meta("2.4.0", 1), meta("2.5.0", 2)],
        downgrade_reason="  cold-weather regression  ",
    )
    # A downgrade is a new image: its counter still rises, so vehicles accept it.
    assert counter == 3
    assert downgrade == Downgrade(reason="cold-weather regression", newest_version="2.5.0")


def test_same_version_refused_even_with_downgrade_reason() -> None:
    with pytest.raises(ReleaseRejectedError, match="already exists"):
        next_release_counter(
            ecu_type="bms",
            hardware_ids=["bms-gen2"],
            version="2.4.0",
            existing=[meta("2.4.0", 1), meta("2.5.0", 2)],
            downgrade_reason="roll back",
        )


def test_next_release_counter_refuses_invalid_version() -> None:
    with pytest.raises(InputError, match="not a valid version"):
        next_release_counter(
            ecu_type="bms", hardware_ids=["bms-gen2"], version="latest", existing=[], downgrade_reason=None
        )


# ---- check_bundle -----------------------------------------------------------------------------

VCMS_31 = ("vcms/3.1.0/vcms.bin", meta("3.1.0", 1, ecu_type="vcms", hardware_ids=["vcms-gen3"]))
VCMS_30 = ("vcms/3.0.0/vcms.bin", meta("3.0.0", 1, ecu_type="vcms", hardware_ids=["vcms-gen3"]))
BMS_NEEDS_VCMS_31 = ("bms/2.4.0/bms.bin", meta("2.4.0", 1, requires=["vcms>=3.1"]))
BMS_PLAIN = ("bms/2.3.0/bms.bin", meta("2.3.0", 1))
TMS_NEEDS_OBC = (
    "tms/1.0.0/tms.bin",
    meta("1.0.0", 1, ecu_type="tms", hardware_ids=["tms-a"], requires=["obc>=2"]),
)


@pytest.mark.parametrize(
    "images",
    [
        pytest.param([VCMS_31, BMS_NEEDS_VCMS_31], id="requirement-met-dependency-first"),
        pytest.param([BMS_PLAIN], id="single-image"),
        pytest.param([BMS_PLAIN, VCMS_31], id="no-requirements-any-order"),
        pytest.param([TMS_NEEDS_OBC, BMS_PLAIN], id="requirement-on-ecu-outside-bundle"),
        pytest.param([], id="empty"),
    ],
)
def test_check_bundle_accepts(images: list[tuple[str, ImageMeta]]) -> None:
    check_bundle(images)


@pytest.mark.parametrize(
    ("images", "message"),
    [
        pytest.param([BMS_PLAIN, BMS_NEEDS_VCMS_31], "two bms images", id="two-images-one-ecu-type"),
        pytest.param(
            [VCMS_30, BMS_NEEDS_VCMS_31],
            "requires vcms>=3.1 but the bundle carries vcms 3.0.0",
            id="requirement-unmet",
        ),
        pytest.param(
            [BMS_NEEDS_VCMS_31, VCMS_31], "vcms must come before bms", id="dependency-after-dependent"
        ),
    ],
)
def test_check_bundle_refuses(images: list[tuple[str, ImageMeta]], message: str) -> None:
    with pytest.raises(ReleaseRejectedError, match=message):
        check_bundle(images)


# ---- ImageMeta --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image",
    [
        pytest.param(meta("2.4.0", 1), id="minimal"),
        pytest.param(
            ImageMeta(
                ecu_type="bms",
                hardware_ids=("bms-gen2", "bms-gen3"),
                version="2.4.0",
                release_counter=3,
                kind=ImageKind.PARAMS,
                requires=(parse_requirement("vcms>=3.1,<4"), parse_requirement("tms>=1")),
                notes="cell balancing tuned",
            ),
            id="full",
        ),
        pytest.param(
            ImageMeta(
                ecu_type="bms",
                hardware_ids=("bms-gen2",),
                version="2.3.0",
                release_counter=4,
                downgrade=Downgrade("cold-weather regression", "2.5.0"),
            ),
            id="downgrade",
        ),
        pytest.param(
            ImageMeta(
                ecu_type="bms",
                hardware_ids=("bms-gen2",),
                version="2.5.0",
                release_counter=5,
                kind=ImageKind.DELTA,
                delta_base="bms/2.4.0/bms.bin",
            ),
            id="delta",
        ),
    ],
)
def test_image_meta_round_trip(image: ImageMeta) -> None:
    custom = image.to_custom()
    assert set(custom) == {CUSTOM_KEY}
    assert custom[CUSTOM_KEY]["type"] == "image"
    assert ImageMeta.from_custom(custom) == image


def test_image_meta_custom_is_plain_json() -> None:
    image = ImageMeta(
        ecu_type="bms",
        hardware_ids=("bms-gen2",),
        version="2.3.0",
        release_counter=2,
        requires=(parse_requirement("vcms>=3.1,<4"),),
        downgrade=Downgrade("cold-weather regression", "2.4.0"),
    )
    assert image.to_custom() == {
        "evota": {
            "type": "image",
            "ecu_type": "bms",
            "hardware_ids": ["bms-gen2"],
            "version": "2.3.0",
            "release_counter": 2,
            "kind": "full",
            "requires": ["vcms<4,>=3.1"],
            "downgrade": {"reason": "cold-weather regression", "newest_version": "2.4.0"},
        }
    }


@pytest.mark.parametrize(
    "custom",
    [
        pytest.param({}, id="empty"),
        pytest.param({"vendor": {"type": "image"}}, id="other-key"),
        pytest.param({"evota": "image"}, id="not-a-mapping"),
        pytest.param({"evota": {"type": "bundle", "name": "r1", "images": ["a"]}}, id="a-bundle"),
    ],
)
def test_image_meta_from_non_evota_custom_is_value_error(custom: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="carries no evota image metadata"):
        ImageMeta.from_custom(custom)


def _image_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "image",
        "ecu_type": "bms",
        "hardware_ids": ["bms-gen2"],
        "version": "2.4.0",
        "release_counter": 1,
    }
    body.update(changes)
    return {"evota": body}


def test_image_body_helper_is_valid() -> None:
    assert ImageMeta.from_custom(_image_body()) == meta("2.4.0", 1)


@pytest.mark.parametrize(
    "custom",
    [
        pytest.param({"evota": {"type": "image"}}, id="missing-fields"),
        pytest.param(_image_body(hardware_ids=["BMS Gen2"]), id="bad-hardware-id"),
        pytest.param(_image_body(hardware_ids=5), id="hardware-ids-not-a-list"),
        pytest.param(_image_body(version="latest"), id="bad-version"),
        pytest.param(_image_body(requires=["vcms>>3"]), id="bad-requirement"),
        pytest.param(_image_body(release_counter=0), id="counter-zero"),
        pytest.param(_image_body(kind="firmware"), id="unknown-kind"),
        pytest.param(_image_body(downgrade={"reason": "x"}), id="incomplete-downgrade"),
        pytest.param(_image_body(kind="delta"), id="delta-without-base"),
    ],
)
def test_image_meta_from_malformed_custom_is_value_error(custom: dict[str, Any]) -> None:
    # The contract is "ValueError", whatever the text; callers skip such targets.
    with pytest.raises(ValueError):
        ImageMeta.from_custom(custom)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        pytest.param({"kind": ImageKind.DELTA}, InputError, "needs a base", id="delta-without-base"),
        pytest.param(
            {"delta_base": "bms/2.3.0/bms.bin"}, InputError, "only a delta", id="base-without-delta"
        ),
        pytest.param({"hardware_ids": ()}, InputError, "at least one hardware id", id="no-hardware"),
        pytest.param({"hardware_ids": ("BMS Gen2",)}, InputError, "unknown format", id="bad-hardware"),
        pytest.param({"ecu_type": "BMS"}, InputError, "unknown format", id="bad-ecu-type"),
        pytest.param({"version": "latest"}, InputError, "not a valid version", id="bad-version"),
        pytest.param({"release_counter": 0}, ValueError, "starts at 1", id="counter-zero"),
    ],
)
def test_image_meta_refuses(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    fields: dict[str, Any] = {
        "ecu_type": "bms",
        "hardware_ids": ("bms-gen2",),
        "version": "2.4.0",
        "release_counter": 1,
        **kwargs,
    }
    with pytest.raises(error, match=message):
        ImageMeta(**fields)


@pytest.mark.parametrize(
    ("other", "shares"),
    [
        pytest.param(meta("1.0", 1, hardware_ids=["bms-gen2", "bms-gen3"]), True, id="overlap"),
        pytest.param(meta("1.0", 1, hardware_ids=["bms-gen3"]), False, id="disjoint"),
        pytest.param(meta("1.0", 1, ecu_type="vcms"), False, id="other-ecu-type"),
    ],
)
def test_image_meta_shares_hardware(other: ImageMeta, shares: bool) -> None:
    assert meta("2.4.0", 1).shares_hardware(other) is shares


# ---- BundleMeta -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bundle",
    [
        pytest.param(BundleMeta("energy-2026-11", ("vcms/3.1.0/vcms.bin", "bms/2.4.0/bms.bin")), id="plain"),
        pytest.param(BundleMeta("r1", ("bms/2.4.0/bms.bin",), "winter fixes"), id="with-notes"),
    ],
)
def test_bundle_meta_round_trip(bundle: BundleMeta) -> None:
    custom = bundle.to_custom()
    assert custom[CUSTOM_KEY]["type"] == "bundle"
    assert BundleMeta.from_custom(custom) == bundle


@pytest.mark.parametrize(
    "custom",
    [
        pytest.param({}, id="empty"),
        pytest.param({"vendor": {"type": "bundle"}}, id="other-key"),
        pytest.param(meta("2.4.0", 1).to_custom(), id="an-image"),
        pytest.param({"evota": {"type": "bundle", "name": "r1"}}, id="missing-images"),
        pytest.param({"evota": {"type": "bundle", "name": "R 1", "images": ["a"]}}, id="bad-name"),
        pytest.param({"evota": {"type": "bundle", "name": "r1", "images": []}}, id="no-images"),
    ],
)
def test_bundle_meta_from_foreign_custom_is_value_error(custom: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="evota bundle metadata"):
        BundleMeta.from_custom(custom)


@pytest.mark.parametrize(
    ("name", "images", "message"),
    [
        pytest.param("r1", (), "at least one image", id="no-images"),
        pytest.param("r1", ("a", "b", "a"), "same image twice", id="duplicate-image"),
        pytest.param("Release 1", ("a",), "unknown format", id="bad-name"),
    ],
)
def test_bundle_meta_refuses(name: str, images: tuple[str, ...], message: str) -> None:
    with pytest.raises(InputError, match=message):
        BundleMeta(name, images)


# ---- target paths -----------------------------------------------------------------------------


def test_image_target_path() -> None:
    assert image_target_path("bms", "2.4.0", "bms-2.4.0.bin") == "bms/2.4.0/bms-2.4.0.bin"


@pytest.mark.parametrize(
    "filename",
    [
        pytest.param("", id="empty"),
        pytest.param(".hidden", id="hidden"),
        pytest.param("..", id="dot-dot"),
        pytest.param("a/b", id="slash"),
        pytest.param("tms#1.bin", id="url-fragment"),
        pytest.param("tms?.bin", id="url-query"),
        pytest.param("tms%2e.bin", id="percent"),
        pytest.param("bms 2.bin", id="space"),
        pytest.param("x" * 129, id="too-long"),
    ],
)
def test_image_target_path_refuses(filename: str) -> None:
    with pytest.raises(InputError, match="cannot be published"):
        image_target_path("bms", "2.4.0", filename)


def test_bundle_target_path() -> None:
    assert bundle_target_path("energy-2026-11") == "releases/energy-2026-11.json"
    with pytest.raises(InputError, match="unknown format"):
        bundle_target_path("../etc")

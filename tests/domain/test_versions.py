"""Firmware versions and the constraints releases place on each other."""

from __future__ import annotations

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from evota.domain.versions import Requirement, parse_requirement, parse_version
from evota.errors import InputError

# ---- parse_version ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2.4.0", Version("2.4.0"), id="semver"),
        pytest.param("3.1", Version("3.1"), id="two-part"),
        pytest.param("2.4.0-rc1", Version("2.4.0rc1"), id="semver-prerelease"),
        pytest.param("1.0.post1", Version("1.0.post1"), id="post-release"),
        pytest.param("v1.0", Version("1.0"), id="leading-v"),
        pytest.param("10.0.0", Version("10.0.0"), id="numeric-not-lexical"),
    ],
)
def test_parse_version_accepts(text: str, expected: Version) -> None:
    assert parse_version(text) == expected


def test_parse_version_orders_numerically() -> None:
    assert parse_version("10.0.0") > parse_version("9.9.9")
    assert parse_version("2.4.0-rc1") < parse_version("2.4.0")
    assert parse_version("2.4") == parse_version("2.4.0")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("abc", id="word"),
        pytest.param("latest", id="latest"),
        pytest.param("1..2", id="double-dot"),
        pytest.param("2.4.0 beta", id="space"),
        pytest.param("2.4/0", id="slash"),
    ],
)
def test_parse_version_refuses(text: str) -> None:
    with pytest.raises(InputError, match="not a valid version"):
        parse_version(text)


# ---- parse_requirement ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ecu_type", "specifier"),
    [
        pytest.param("vcms>=3.1", "vcms", ">=3.1", id="single-clause"),
        pytest.param("vcms>=3.1,<4", "vcms", ">=3.1,<4", id="two-clauses"),
        pytest.param(" vcms >= 3.1 ", "vcms", ">=3.1", id="spaces"),
        pytest.param("vcms >= 3.1 , < 4", "vcms", ">=3.1,<4", id="spaces-two-clauses"),
        pytest.param("bms==2.4.0", "bms", "==2.4.0", id="exact"),
        pytest.param("bms~=2.4", "bms", "~=2.4", id="compatible"),
        pytest.param("tms!=1.2", "tms", "!=1.2", id="exclusion"),
        pytest.param("vcms==3.*", "vcms", "==3.*", id="wildcard"),
    ],
)
def test_parse_requirement_accepts(text: str, ecu_type: str, specifier: str) -> None:
    req = parse_requirement(text)
    assert req.ecu_type == ecu_type
    assert req.specifier == SpecifierSet(specifier)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("vcms", id="no-specifier"),
        pytest.param(">=3.1", id="no-ecu-type"),
        pytest.param("vcms>>3", id="bad-operator"),
        pytest.param("VCMS>=3", id="upper-case-ecu-type"),
        pytest.param("vcms>=", id="no-version"),
        pytest.param("vcms>=abc", id="non-version"),
        pytest.param("", id="empty"),
        pytest.param("v>=3", id="ecu-type-too-short"),
        pytest.param("vcms 3.1", id="no-operator"),
        pytest.param("vcms-gen3>=3.1", id="hardware-id-not-ecu-type"),
    ],
)
def test_parse_requirement_refuses(text: str) -> None:
    with pytest.raises(InputError, match="malformed"):
        parse_requirement(text)


# ---- Requirement.allows -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("constraint", "version", "allowed"),
    [
        pytest.param("vcms>=3.1", "3.1", True, id="ge-equal"),
        pytest.param("vcms>=3.1", "3.1.0", True, id="ge-equal-padded"),
        pytest.param("vcms>=3.1", "3.0.9", False, id="ge-below"),
        pytest.param("vcms>=3.1", "10.0", True, id="ge-numeric-not-lexical"),
        pytest.param("vcms>=3.1,<4", "3.9.9", True, id="range-inside"),
        pytest.param("vcms>=3.1,<4", "4.0", False, id="range-upper-bound-excluded"),
        pytest.param("vcms>=3.1,<4", "4.0.0rc1", False, id="range-prerelease-of-bound"),
        pytest.param("vcms>=3.1,<4", "3.0", False, id="range-below"),
        pytest.param("vcms>=3.1,<4", "3.2.0-rc1", True, id="range-prerelease-inside"),
        pytest.param("vcms==3.*", "3.9", True, id="wildcard-match"),
        pytest.param("vcms==3.*", "4.0", False, id="wildcard-miss"),
        pytest.param("bms~=2.4", "2.9", True, id="compatible-match"),
        pytest.param("bms~=2.4", "3.0", False, id="compatible-miss"),
        pytest.param("tms!=1.2", "1.2.0", False, id="exclusion-hit"),
        pytest.param("tms!=1.2", "1.3", True, id="exclusion-miss"),
    ],
)
def test_requirement_allows(constraint: str, version: str, allowed: bool) -> None:
    req = parse_requirement(constraint)
    assert req.allows(version) is allowed
    assert req.allows(Version(version)) is allowed


def test_requirement_allows_refuses_invalid_version() -> None:
    with pytest.raises(InputError, match="not a valid version"):
        parse_requirement("vcms>=3.1").allows("three")


# ---- str(Requirement) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("vcms>=3.1,<4", id="ge-first"),
        pytest.param("vcms<4,>=3.1", id="lt-first"),
        pytest.param(" vcms >= 3.1 , < 4 ", id="spaced"),
    ],
)
def test_requirement_str_is_stable(text: str) -> None:
    req = parse_requirement(text)
    assert str(req) == "vcms<4,>=3.1"  # clauses sorted, no spaces
    assert parse_requirement(str(req)) == req


def test_requirement_str_single_clause() -> None:
    assert str(parse_requirement(" vcms >= 3.1 ")) == "vcms>=3.1"


def test_requirement_equal_regardless_of_clause_order() -> None:
    assert parse_requirement("vcms>=3.1,<4") == parse_requirement("vcms<4,>=3.1")
    assert parse_requirement("vcms>=3.1,<4") == Requirement("vcms", SpecifierSet("<4,>=3.1"))

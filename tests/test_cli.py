"""The `evota` command line, driven in-process through Typer's CliRunner.

Every refusal is checked the way an operator meets it: exit code 1, one `error:` line on
stderr (no traceback), nothing on stdout, and not a byte changed in the home.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from tuf.api.metadata import Metadata, Root, Targets
from typer.testing import CliRunner

from evota.cli import app
from evota.clock import SystemClock
from evota.deployment import open_home

Firmware = Callable[[str, int], Path]

VIN = "WVWZZZ1JZ3W386752"
OTHER_VIN = "1HGCM82633A004352"
RELEASE = "energy-2026-11"
ECUS = ("GW-1:gateway:gw-tcu4", "BMS-1:bms:bms-gen2", "VCMS-1:vcms:vcms-gen3")

runner = CliRunner()
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing from the developer's shell leaks in; a wide console so lines are not wrapped."""
    for var in ("EVOTA_HOME", "EVOTA_OFFLINE_DIR", "EVOTA_DATABASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("COLUMNS", "1000")


# ---- helpers ----------------------------------------------------------------------------------


def cli(*args: object, env: Mapping[str, str | None] | None = None) -> Result:
    return runner.invoke(app, [str(a) for a in args], env=env)


def ok(*args: object, env: Mapping[str, str | None] | None = None) -> Result:
    result = cli(*args, env=env)
    assert result.exit_code == 0, f"evota {args} failed: {result.output}{result.exception!r}"
    return result


def ok_json(*args: object, env: Mapping[str, str | None] | None = None) -> Any:
    return json.loads(ok(*args, "--json", env=env).stdout)


def assert_refused(result: Result, *fragments: str) -> str:
    """Exit 1 with exactly one `error:` line naming `fragments`; no traceback, no stdout."""
    assert result.exit_code == 1, result.output
    # typer.Exit from the error reporter, not an exception that escaped it.
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert result.stdout == ""
    lines = _ANSI.sub("", result.stderr).splitlines()
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("error: "), line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    return line


def tree(root: Path) -> dict[str, str]:
    """Every path under `root` (hidden ones too) → sha256 of its bytes, or "<dir>"."""
    return {
        p.relative_to(root).as_posix(): "<dir>" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
    }


def add_image(home: Path, file: Path, ecu_type: str, hardware_id: str, version: str, *extra: object) -> Any:
    return ok_json(
        "release",
        "add",
        file,
        "--ecu-type",
        ecu_type,
        "--hardware-id",
        hardware_id,
        "--version",
        version,
        *extra,
        "--home",
        home,
    )


def trust_root(home: Path, repo: str = "image") -> Any:
    return json.loads(ok("repo", "trust-root", "--home", home, "--repo", repo).stdout)


def verified_image_targets(home: Path) -> Metadata[Targets]:
    """The image repository's current targets, checked against its current root."""
    dep = open_home(home, SystemClock())
    md = dep.images.chain.targets()
    dep.images.roots.current().signed.verify_delegate(Targets.type, md.signed_bytes, md.signatures)
    return md


@dataclasses.dataclass(frozen=True)
class Catalog:
    """A home with vcms 3.1.0 and bms 2.4.0 (requires vcms>=3.1) published through the CLI."""

    home: Path
    vcms: dict[str, Any]
    bms: dict[str, Any]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    ok("init", "--home", path)
    return path


@pytest.fixture
def catalog(home: Path, firmware: Firmware) -> Catalog:
    vcms = add_image(home, firmware("vcms-3.1.0.bin", 3000), "vcms", "vcms-gen3", "3.1.0")
    bms = add_image(
        home, firmware("bms-2.4.0.bin", 5000), "bms", "bms-gen2", "2.4.0", "--requires", "vcms>=3.1"
    )
    return Catalog(home, vcms, bms)


@pytest.fixture
def fleet(catalog: Catalog) -> Catalog:
    """`catalog` plus release RELEASE (vcms then bms) and vehicle VIN registered."""
    ok(
        "release",
        "bundle",
        RELEASE,
        "--image",
        catalog.vcms["target"],
        "--image",
        catalog.bms["target"],
        "--home",
        catalog.home,
    )
    register(catalog.home, VIN)
    return catalog


def register(home: Path, vin: str, *ecus: str) -> Result:
    ecu_args = [a for spec in (ecus or ECUS) for a in ("--ecu", spec)]
    return ok("director", "register", vin, "--primary", "GW-1", *ecu_args, "--home", home)


# ---- init -------------------------------------------------------------------------------------


def test_init_creates_a_home_with_k_of_n_roots(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = ok("init", "--home", home, "--root-threshold", "2", "--root-keys", "3")
    assert "created evota home" in result.stdout
    assert (home / "evota.toml").is_file()
    assert (home / "keys").is_dir()
    assert (home / "offline").is_dir()

    offline = sorted(p.name for p in (home / "offline").glob("*.pem"))
    assert len([n for n in offline if n.startswith("image-root-")]) == 3
    assert len([n for n in offline if n.startswith("director-root-")]) == 3
    assert len([n for n in offline if n.startswith("image-targets.")]) == 1
    online = [p.name for p in (home / "keys").glob("*.pem")]
    assert not [n for n in online if "root" in n or "targets" in n], "offline keys must not be online"

    for repo in ("image", "director"):
        root = trust_root(home, repo)["signed"]["roles"]["root"]
        assert root["threshold"] == 2
        assert len(root["keyids"]) == 3


def test_init_twice_is_refused_and_changes_nothing(home: Path) -> None:
    before = tree(home)
    result = cli("init", "--home", home, "--root-threshold", "1", "--root-keys", "2")
    line = assert_refused(result, "is already an evota home")
    assert str(home.resolve()) in line
    assert tree(home) == before


def test_init_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    folder = tmp_path / "busy"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a home")
    assert_refused(cli("init", "--home", folder), "exists and is not empty")
    assert tree(folder) == {"notes.txt": hashlib.sha256(b"not a home").hexdigest()}


@pytest.mark.parametrize(
    ("threshold", "keys"),
    [
        pytest.param(4, 3, id="threshold-above-keys"),
        pytest.param(0, 1, id="threshold-zero"),
        pytest.param(1, 0, id="no-keys"),
    ],
)
def test_init_refuses_an_impossible_threshold(tmp_path: Path, threshold: int, keys: int) -> None:
    home = tmp_path / "home"
    result = cli("init", "--home", home, "--root-threshold", threshold, "--root-keys", keys)
    assert_refused(result, "--root-threshold must be between 1 and --root-keys", f"({threshold} of {keys}")
    assert not home.exists()


# ---- EVOTA_HOME -------------------------------------------------------------------------------


def test_evota_home_env_var_is_honoured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, firmware: Firmware
) -> None:
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "env-home"
    env = {"EVOTA_HOME": str(home)}

    ok("init", env=env)
    assert (home / "evota.toml").is_file()
    assert not (tmp_path / "evota-home").exists()

    image = ok_json(
        "release",
        "add",
        firmware("bms.bin", 100),
        "--ecu-type",
        "bms",
        "--hardware-id",
        "bms-gen2",
        "--version",
        "1.0.0",
        env=env,
    )
    listed = ok_json("release", "list", env=env)
    assert [i["target"] for i in listed["images"]] == [image["target"]]
    # The variable and --home name the same deployment.
    assert trust_root(home) == json.loads(ok("repo", "trust-root", env=env).stdout)


def test_home_option_wins_over_env_var(home: Path, tmp_path: Path) -> None:
    result = ok("repo", "trust-root", "--home", home, env={"EVOTA_HOME": str(tmp_path / "nowhere")})
    assert json.loads(result.stdout)["signed"]["_type"] == "root"


def test_without_home_or_env_var_the_default_is_dot_evota_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli("release", "list")
    assert_refused(result, f"{tmp_path.resolve() / 'evota-home'} is not an evota home", "evota init --home")
    assert list(tmp_path.iterdir()) == []


# ---- release add ------------------------------------------------------------------------------


def test_release_add_prints_the_published_target(home: Path, firmware: Firmware) -> None:
    file = firmware("bms-2.4.0.bin", 5000)
    out = add_image(home, file, "bms", "bms-gen2", "2.4.0", "--requires", "vcms>=3.1")

    data = file.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    assert out["target"] == "bms/2.4.0/bms-2.4.0.bin"
    assert out["sha256"] == digest
    assert out["length"] == len(data) == 5000
    assert out["release_counter"] == 1
    assert out["requires"] == ["vcms>=3.1"]
    assert out["hardware_ids"] == ["bms-gen2"]

    # Stored under its hash-prefixed name and signed into the targets metadata.
    stored = home / "repo" / "image" / "targets" / "bms" / "2.4.0" / f"{digest}.bms-2.4.0.bin"
    assert stored.read_bytes() == data
    tf = verified_image_targets(home).signed.targets[out["target"]]
    assert tf.hashes["sha256"] == digest
    assert tf.length == len(data)
    assert tf.custom["evota"]["requires"] == ["vcms>=3.1"]


def test_release_add_counts_up_per_ecu_type(catalog: Catalog, firmware: Firmware) -> None:
    newer = add_image(catalog.home, firmware("bms-2.5.0.bin", 64), "bms", "bms-gen2", "2.5.0")
    assert catalog.bms["release_counter"] == 1
    assert catalog.vcms["release_counter"] == 1
    assert newer["release_counter"] == 2


def _add(file: Path, version: str = "2.5.0", hardware_id: str = "bms-gen2", *extra: str) -> list[object]:
    return [
        "release",
        "add",
        file,
        "--ecu-type",
        "bms",
        "--hardware-id",
        hardware_id,
        "--version",
        version,
        *extra,
    ]


def _empty(folder: Path) -> Path:
    path = folder / "empty.bin"
    path.write_bytes(b"")
    return path


# id → (arguments given the firmware factory and tmp_path, fragments of the error line)
REFUSED_ADDS: dict[str, tuple[Callable[[Firmware, Path], list[object]], tuple[str, ...]]] = {
    "missing-file": (lambda fw, tmp: _add(tmp / "missing.bin"), ("missing.bin does not exist",)),
    "empty-file": (lambda fw, tmp: _add(_empty(tmp)), ("empty.bin is empty",)),
    "version-exists": (
        lambda fw, tmp: _add(fw("bms-rebuilt.bin", 64), "2.4.0"),
        ("bms 2.4.0 already exists for bms-gen2",),
    ),
    "version-exists-pep440-equal": (
        lambda fw, tmp: _add(fw("bms-rebuilt.bin", 64), "2.4"),
        ("bms 2.4 already exists",),
    ),
    "target-exists": (
        lambda fw, tmp: _add(fw("bms-2.4.0.bin", 64), "2.4.0"),
        ("target bms/2.4.0/bms-2.4.0.bin already exists",),
    ),
    "lower-version": (
        lambda fw, tmp: _add(fw("bms-2.3.0.bin", 64), "2.3.0"),
        ("lower than the newest 2.4.0", "--allow-downgrade --reason"),
    ),
    "downgrade-without-reason": (
        lambda fw, tmp: _add(fw("bms-2.3.0.bin", 64), "2.3.0", "bms-gen2", "--allow-downgrade"),
        ("--allow-downgrade needs --reason",),
    ),
    "downgrade-blank-reason": (
        lambda fw, tmp: _add(
            fw("bms-2.3.0.bin", 64), "2.3.0", "bms-gen2", "--allow-downgrade", "--reason", "  "
        ),
        ("--allow-downgrade needs --reason",),
    ),
    "reason-without-downgrade": (
        lambda fw, tmp: _add(fw("bms-2.3.0.bin", 64), "2.3.0", "bms-gen2", "--reason", "cold weather"),
        ("--reason is only for --allow-downgrade",),
    ),
    "hardware-id-format": (
        lambda fw, tmp: _add(fw("bms-2.5.0.bin", 64), "2.5.0", "BMS Gen2"),
        ("hardware id 'BMS Gen2' has an unknown format",),
    ),
    "malformed-constraint": (
        lambda fw, tmp: _add(fw("bms-2.5.0.bin", 64), "2.5.0", "bms-gen2", "--requires", "vcms>>3"),
        ("constraint 'vcms>>3' is malformed",),
    ),
    "invalid-version": (
        lambda fw, tmp: _add(fw("bms-2.5.0.bin", 64), "latest"),
        ("version 'latest' is not a valid version",),
    ),
    "hidden-file-name": (
        lambda fw, tmp: _add(fw(".bms.bin", 64)),
        ("image file name '.bms.bin' cannot be published",),
    ),
    "delta-without-base": (
        lambda fw, tmp: _add(fw("bms-2.5.0.delta", 64), "2.5.0", "bms-gen2", "--kind", "delta"),
        ("a delta image needs a base image",),
    ),
    "delta-base-unknown": (
        lambda fw, tmp: _add(
            fw("bms-2.5.0.delta", 64), "2.5.0", "bms-gen2", "--kind", "delta", "--base", "bms/1.0.0/bms.bin"
        ),
        ("delta base bms/1.0.0/bms.bin is not an image in the image repository",),
    ),
    "delta-base-other-ecu-type": (
        lambda fw, tmp: _add(
            fw("bms-2.5.0.delta", 64),
            "2.5.0",
            "bms-gen2",
            "--kind",
            "delta",
            "--base",
            "vcms/3.1.0/vcms-3.1.0.bin",
        ),
        ("delta base vcms/3.1.0/vcms-3.1.0.bin is a vcms image",),
    ),
    "downgrade-reason-on-an-upgrade": (
        lambda fw, tmp: _add(
            fw("bms-2.5.0.bin", 64), "2.5.0", "bms-gen2", "--allow-downgrade", "--reason", "not needed"
        ),
        ("bms 2.5.0 is not lower than the newest (2.4.0)",),
    ),
    "rollback-to-an-exact-old-build": (
        lambda fw, tmp: _add(fw("bms-2.4.0-again.bin", 64), "2.4.0", "bms-gen2"),
        ("bms 2.4.0 already exists",),
    ),
}


@pytest.mark.parametrize("case", list(REFUSED_ADDS))
def test_release_add_refused_writes_nothing(
    catalog: Catalog, firmware: Firmware, tmp_path: Path, case: str
) -> None:
    build, fragments = REFUSED_ADDS[case]
    args = build(firmware, tmp_path)
    before = tree(catalog.home)
    assert_refused(cli(*args, "--home", catalog.home), *fragments)
    assert tree(catalog.home) == before


@pytest.mark.parametrize("how", ["offline-folder-moved-away", "evota-offline-dir-empty"])
def test_release_add_without_offline_keys_is_refused(
    catalog: Catalog, firmware: Firmware, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    aside = tmp_path / "usb-stick"
    if how == "offline-folder-moved-away":
        shutil.move(catalog.home / "offline", aside)
        where = catalog.home.resolve() / "offline"
    else:
        aside.mkdir()
        monkeypatch.setenv("EVOTA_OFFLINE_DIR", str(aside))
        where = aside
    before, aside_before = tree(catalog.home), tree(aside)

    args = _add(firmware("bms-2.5.0.bin", 64), "2.5.0")
    assert_refused(
        cli(*args, "--home", catalog.home), "targets key", f"offline keys: {where}", "offline folder"
    )
    assert tree(catalog.home) == before
    assert tree(aside) == aside_before

    # With the keys back in reach, the same command publishes.
    if how == "offline-folder-moved-away":
        shutil.move(aside, catalog.home / "offline")
    else:
        monkeypatch.delenv("EVOTA_OFFLINE_DIR")
    ok(*args, "--home", catalog.home)


def test_downgrade_with_reason_is_published_and_signed(catalog: Catalog, firmware: Firmware) -> None:
    out = add_image(
        catalog.home,
        firmware("bms-2.3.0.bin", 700),
        "bms",
        "bms-gen2",
        "2.3.0",
        "--allow-downgrade",
        "--reason",
        "cold-weather regression",
    )
    assert out["version"] == "2.3.0"
    assert out["release_counter"] > catalog.bms["release_counter"]

    listed = ok_json("release", "list", "--home", catalog.home)
    assert {i["target"]: i["version"] for i in listed["images"]} == {
        catalog.vcms["target"]: "3.1.0",
        catalog.bms["target"]: "2.4.0",
        out["target"]: "2.3.0",
    }

    images = {i.path: i for i in open_home(catalog.home, SystemClock()).images.images()}
    meta = images[out["target"]].meta
    assert meta.downgrade is not None
    assert meta.downgrade.reason == "cold-weather regression"
    assert meta.downgrade.newest_version == "2.4.0"
    assert meta.release_counter > images[catalog.bms["target"]].meta.release_counter
    # The reason is in the targets metadata that verifies against the root.
    custom = verified_image_targets(catalog.home).signed.targets[out["target"]].custom
    assert custom["evota"]["downgrade"]["reason"] == "cold-weather regression"


def test_release_list_human_output(catalog: Catalog) -> None:
    out = ok("release", "list", "--home", catalog.home).stdout
    assert catalog.bms["target"] in out
    assert catalog.vcms["target"] in out


# ---- release bundle ---------------------------------------------------------------------------


def test_release_bundle(catalog: Catalog) -> None:
    out = ok_json(
        "release",
        "bundle",
        RELEASE,
        "--image",
        catalog.vcms["target"],
        "--image",
        catalog.bms["target"],
        "--home",
        catalog.home,
    )
    assert out["name"] == RELEASE
    assert out["target"] == f"releases/{RELEASE}.json"
    assert out["images"] == [catalog.vcms["target"], catalog.bms["target"]]
    listed = ok_json("release", "list", "--home", catalog.home)
    assert [(r["name"], r["images"]) for r in listed["releases"]] == [(RELEASE, out["images"])]
    assert out["target"] in verified_image_targets(catalog.home).signed.targets


@pytest.mark.parametrize(
    ("images", "fragments"),
    [
        pytest.param(
            ["vcms", "bms/9.9.9/nope.bin"],
            ("not in the image repository: bms/9.9.9/nope.bin",),
            id="unknown-image",
        ),
        pytest.param(["bms", "vcms"], ("vcms must come before bms",), id="dependency-last"),
        pytest.param(["vcms", "vcms"], ("names the same image twice",), id="duplicate-image"),
    ],
)
def test_release_bundle_refused_writes_nothing(
    catalog: Catalog, images: list[str], fragments: tuple[str, ...]
) -> None:
    known = {"vcms": catalog.vcms["target"], "bms": catalog.bms["target"]}
    image_args = [a for i in images for a in ("--image", known.get(i, i))]
    before = tree(catalog.home)
    assert_refused(cli("release", "bundle", RELEASE, *image_args, "--home", catalog.home), *fragments)
    assert tree(catalog.home) == before


def test_release_bundle_name_taken_is_refused(fleet: Catalog) -> None:
    before = tree(fleet.home)
    result = cli("release", "bundle", RELEASE, "--image", fleet.vcms["target"], "--home", fleet.home)
    assert_refused(result, f"release {RELEASE} already exists")
    assert tree(fleet.home) == before


# ---- repo trust-root --------------------------------------------------------------------------


@pytest.mark.parametrize("repo", ["image", "director"])
def test_trust_root(home: Path, repo: str) -> None:
    data = trust_root(home, repo)
    assert data["signed"]["_type"] == "root"
    assert data["signed"]["version"] == 1
    assert data == json.loads((home / "repo" / repo / "metadata" / "1.root.json").read_bytes())
    # It is a root that verifies itself, as a vehicle is provisioned with.
    md = Metadata[Root].from_bytes(json.dumps(data).encode())
    md.signed.verify_delegate(Root.type, md.signed_bytes, md.signatures)


def test_trust_root_default_repo_is_image(home: Path) -> None:
    assert json.loads(ok("repo", "trust-root", "--home", home).stdout) == trust_root(home, "image")
    assert trust_root(home, "image") != trust_root(home, "director")


def test_trust_root_unknown_repo_is_refused(home: Path) -> None:
    assert_refused(
        cli("repo", "trust-root", "--home", home, "--repo", "vehicle"), "--repo is image or director"
    )


# ---- director ---------------------------------------------------------------------------------


def test_director_register_and_show(catalog: Catalog) -> None:
    result = register(catalog.home, VIN)
    assert f"registered {VIN} with 3 ECU(s)" in result.stdout
    shown = ok_json("director", "show", VIN, "--home", catalog.home)
    assert shown["assignments"] == {}
    assert shown["vehicle"]["vin"] == VIN
    assert shown["vehicle"]["primary_serial"] == "GW-1"
    assert [(e["serial"], e["ecu_type"], e["hardware_id"]) for e in shown["vehicle"]["ecus"]] == [
        tuple(spec.split(":")) for spec in ECUS
    ]


def test_director_register_with_public_key_file(catalog: Catalog, tmp_path: Path) -> None:
    key = {"keyid": "ab" * 32, "keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": "cd" * 32}}
    key_file = tmp_path / "gw.pub.json"
    key_file.write_text(json.dumps(key))
    register(catalog.home, VIN, f"GW-1:gateway:gw-tcu4:{key_file}", "BMS-1:bms:bms-gen2")
    shown = ok_json("director", "show", VIN, "--home", catalog.home)
    assert shown["vehicle"]["ecus"][0]["public_key"] == key
    assert "public_key" not in shown["vehicle"]["ecus"][1]


def test_director_assign_release(fleet: Catalog) -> None:
    assigned = ok_json("director", "assign", VIN, "--release", RELEASE, "--home", fleet.home)
    expected = {"BMS-1": fleet.bms["target"], "VCMS-1": fleet.vcms["target"]}
    assert assigned == expected
    assert ok_json("director", "show", VIN, "--home", fleet.home)["assignments"] == expected

    # Signed into the vehicle's director targets, bound to the VIN, with the image hashes.
    dep = open_home(fleet.home, SystemClock())
    md = dep.director.chain(VIN).targets()
    dep.director.roots.current().signed.verify_delegate(Targets.type, md.signed_bytes, md.signatures)
    assert md.signed.unrecognized_fields["custom"]["evota"] == {
        "vin": VIN,
        "releases": [f"releases/{RELEASE}.json"],
    }
    assert md.signed.targets[fleet.bms["target"]].hashes["sha256"] == fleet.bms["sha256"]


def test_director_assign_single_ecu(fleet: Catalog) -> None:
    assigned = ok_json(
        "director", "assign", VIN, "--ecu", f"BMS-1={fleet.bms['target']}", "--home", fleet.home
    )
    assert assigned == {"BMS-1": fleet.bms["target"]}


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        pytest.param(
            (VIN, "--ecu", "BMS-1={vcms}"),
            ("{vcms} is for vcms vcms-gen3, but ECU BMS-1 is bms bms-gen2",),
            id="wrong-ecu-type",
        ),
        pytest.param((VIN, "--ecu", "TMS-1={bms}"), (f"{VIN} has no ECU TMS-1",), id="unknown-ecu"),
        pytest.param(
            (VIN, "--ecu", "BMS-1=bms/9.9.9/x.bin"),
            ("bms/9.9.9/x.bin is not an image in the image repository",),
            id="unknown-image",
        ),
        pytest.param((VIN, "--ecu", "BMS-1"), ("expected SERIAL=TARGET",), id="malformed-ecu"),
        pytest.param((VIN,), ("give --ecu SERIAL=TARGET and/or --release NAME",), id="nothing-to-assign"),
        pytest.param(
            (VIN, "--ecu", "BMS-1={bms}", "--release", RELEASE),
            (f"release {RELEASE} must install together; not assigned: {{vcms}}",),
            id="release-partly-assigned",
        ),
        pytest.param(
            (VIN, "--release", "no-such-release"), ("release no-such-release is not in",), id="no-release"
        ),
        pytest.param(
            (OTHER_VIN, "--release", RELEASE),
            (f"vehicle {OTHER_VIN} is not registered with the director",),
            id="unknown-vin",
        ),
        pytest.param(
            ("NOT-A-VIN", "--release", RELEASE), ("VIN 'NOT-A-VIN' has an unknown format",), id="bad-vin"
        ),
    ],
)
def test_director_assign_refused_writes_nothing(
    fleet: Catalog, args: tuple[str, ...], fragments: tuple[str, ...]
) -> None:
    targets = {"vcms": fleet.vcms["target"], "bms": fleet.bms["target"]}
    before = tree(fleet.home)
    result = cli("director", "assign", *(a.format(**targets) for a in args), "--home", fleet.home)
    assert_refused(result, *(f.format(**targets) for f in fragments))
    assert tree(fleet.home) == before


@pytest.mark.parametrize(
    ("vin", "fragment"),
    [
        pytest.param(OTHER_VIN, f"vehicle {OTHER_VIN} is not registered", id="unknown-vin"),
        pytest.param("wvwzzz1jz3w386752", "has an unknown format", id="bad-vin"),
    ],
)
def test_director_show_refuses_unknown_vehicle(fleet: Catalog, vin: str, fragment: str) -> None:
    assert_refused(cli("director", "show", vin, "--home", fleet.home, "--json"), fragment)


@pytest.mark.parametrize(
    ("vin", "ecus", "fragment"),
    [
        pytest.param(VIN, ECUS, f"vehicle {VIN} is already registered", id="already-registered"),
        pytest.param(OTHER_VIN, ("GW-1:gateway",), "expected SERIAL:TYPE:HWID", id="malformed-ecu"),
        pytest.param(OTHER_VIN, ("GW-1:gateway:GW TCU",), "hardware id 'GW TCU'", id="bad-hardware-id"),
        pytest.param(OTHER_VIN, ("GW-2:gateway:gw-tcu4",), "primary GW-1 is not among", id="primary-missing"),
        pytest.param(
            OTHER_VIN, ("GW-1:gateway:gw-tcu4:/no/such/key.json",), "cannot read public key", id="missing-key"
        ),
    ],
)
def test_director_register_refused_writes_nothing(
    fleet: Catalog, vin: str, ecus: tuple[str, ...], fragment: str
) -> None:
    ecu_args = [a for spec in ecus for a in ("--ecu", spec)]
    before = tree(fleet.home)
    result = cli("director", "register", vin, "--primary", "GW-1", *ecu_args, "--home", fleet.home)
    assert_refused(result, fragment)
    assert tree(fleet.home) == before


# ---- keys rotate ------------------------------------------------------------------------------


def test_rotate_targets_key(catalog: Catalog, firmware: Firmware) -> None:
    old = trust_root(catalog.home)["signed"]
    result = ok("keys", "rotate", "--role", "targets", "--home", catalog.home)
    assert "root v2" in result.stdout

    new = trust_root(catalog.home)["signed"]
    assert new["version"] == 2
    old_keys, new_keys = set(old["roles"]["targets"]["keyids"]), set(new["roles"]["targets"]["keyids"])
    assert new_keys and not old_keys & new_keys
    assert new["roles"]["root"] == old["roles"]["root"]
    assert trust_root(catalog.home, "director")["signed"]["version"] == 1
    # The replaced private key is retired, not deleted.
    retired = {p.name.split(".")[1] for p in (catalog.home / "offline" / "retired").glob("*.pem")}
    assert retired == old_keys

    # Publishing afterwards works, signed by the new key only.
    out = add_image(catalog.home, firmware("bms-2.5.0.bin", 64), "bms", "bms-gen2", "2.5.0")
    md = verified_image_targets(catalog.home)
    assert out["target"] in md.signed.targets
    assert set(md.signatures) == new_keys
    assert out["release_counter"] == 2


def test_rotate_director_key(fleet: Catalog) -> None:
    old = trust_root(fleet.home, "director")["signed"]
    ok("keys", "rotate", "--role", "director", "--home", fleet.home)

    new = trust_root(fleet.home, "director")["signed"]
    assert new["version"] == 2
    assert trust_root(fleet.home, "image")["signed"]["version"] == 1
    for role in ("targets", "snapshot", "timestamp"):
        assert not set(old["roles"][role]["keyids"]) & set(new["roles"][role]["keyids"])

    # Assigning afterwards works and verifies against the new director root.
    ok("director", "assign", VIN, "--release", RELEASE, "--home", fleet.home)
    dep = open_home(fleet.home, SystemClock())
    md = dep.director.chain(VIN).targets()
    dep.director.roots.current().signed.verify_delegate(Targets.type, md.signed_bytes, md.signatures)
    assert set(md.signatures) == set(new["roles"]["targets"]["keyids"])


def test_rotate_unknown_role_is_a_usage_error(home: Path) -> None:
    result = cli("keys", "rotate", "--role", "bms", "--home", home)
    assert result.exit_code == 2
    assert "Invalid value" in result.output


# ---- help -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "commands"),
    [
        pytest.param([], ["init", "release", "repo", "director", "keys", "serve"], id="evota"),
        pytest.param(["release"], ["add", "bundle", "list"], id="release"),
        pytest.param(["repo"], ["trust-root", "refresh"], id="repo"),
        pytest.param(["director"], ["register", "assign", "show"], id="director"),
        pytest.param(["keys"], ["rotate"], id="keys"),
    ],
)
def test_help(args: list[str], commands: list[str]) -> None:
    result = ok(*args, "--help")
    assert "Usage:" in result.stdout
    for command in commands:
        assert command in result.stdout


# ---- error reporting: one line, user input verbatim ---------------------------------------------


def test_long_error_stays_on_one_line_when_not_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / ("a-long-folder-name-" * 4) / "home"  # the message is well over 80 columns
    ok("init", "--home", home)
    monkeypatch.setenv("COLUMNS", "80")  # what rich assumes when stderr is a file or a pipe
    assert_refused(cli("init", "--home", home), "is already an evota home")


@pytest.mark.parametrize("hardware_id", ["bms[/]", "[bold]bms"])
def test_error_shows_user_input_verbatim(catalog: Catalog, firmware: Firmware, hardware_id: str) -> None:
    result = cli(*_add(firmware("bms-2.5.0.bin", 64), "2.5.0", hardware_id), "--home", catalog.home)
    assert_refused(result, f"hardware id {hardware_id!r} has an unknown format")


def test_downgrade_reason_with_brackets_is_not_reported_as_a_crash(
    catalog: Catalog, firmware: Firmware
) -> None:
    args = _add(
        firmware("bms-2.3.0.bin", 64), "2.3.0", "bms-gen2", "--allow-downgrade", "--reason", "fix [/] thing"
    )
    result = cli(*args, "--home", catalog.home)
    assert result.exit_code == 0, repr(result.exception)
    assert "fix [/] thing" in result.stdout


def _command_paths() -> list[list[str]]:
    """Every command and group of the CLI, as the words that name it."""
    import typer.main

    paths: list[list[str]] = []

    def walk(command: Any, path: list[str]) -> None:
        paths.append(path)
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return paths


def test_every_help_text_renders() -> None:
    """A help text is rich markup: `[/0,1,2]` in one once crashed `--help` with a MarkupError."""
    paths = _command_paths()
    assert len(paths) > 50
    for path in paths:
        result = cli(*path, "--help", env={"COLUMNS": "100"})
        assert result.exit_code == 0 and "Usage:" in result.stdout, (path, result.output[-300:])

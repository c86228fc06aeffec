"""Key rotation: vehicles walk the root chain; k-of-n roots need k keys to rotate."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from tuf.api.metadata import Metadata, Root

from evota.clock import SimClock
from evota.deployment import Deployment, init_home, open_home
from evota.errors import KeyUnavailableError
from evota.security.rotation import RotatableRole, rotate
from evota.security.uptane import Primary
from tests.conftest import Published, Vehicle


@pytest.mark.parametrize("role", list(RotatableRole), ids=[r.value for r in RotatableRole])
def test_a_vehicle_holding_the_old_root_walks_to_the_new_one(
    role: RotatableRole,
    dep: Deployment,
    published: Published,
    vehicle: Vehicle,
    make_primary: Callable[..., Primary],
) -> None:
    dep.director.assign_release(vehicle.vin, published.release.meta.name)
    make_primary(vehicle).verify()
    result = rotate(dep, role)
    assert result.root_version == 2
    assert set(result.old_keyids).isdisjoint(result.new_keyids)
    roots = (
        dep.director.roots
        if role in (RotatableRole.DIRECTOR, RotatableRole.DIRECTOR_ROOT)
        else dep.images.roots
    )
    new_root = roots.current().signed
    for keyid in result.old_keyids:
        assert keyid not in new_root.keys, "a rotated key must be revoked from the root"
    # Same provisioned (v1) roots, same cache: the vehicle walks 1 → 2 and verifies everything.
    assert len(make_primary(vehicle).verify().images) == 2
    # A vehicle provisioned before the rotation, with an empty cache, too.
    assert len(make_primary(vehicle, state="fresh-vehicle").verify().images) == 2


def test_new_root_is_signed_by_old_and_new_root_keys(tmp_path: Path) -> None:
    dep = init_home(tmp_path / "h", SimClock(), root_threshold=2, root_keys=3)
    old = dep.images.roots.current().signed
    rotate(dep, RotatableRole.ROOT)
    md = Metadata[Root].from_bytes((dep.images.roots.folder / "2.root.json").read_bytes())
    old.verify_delegate(Root.type, md.signed_bytes, md.signatures)  # old threshold (2 of 3)
    md.signed.verify_delegate(Root.type, md.signed_bytes, md.signatures)  # new threshold


def test_rotation_needs_a_threshold_of_root_keys_at_hand(tmp_path: Path) -> None:
    dep = init_home(tmp_path / "h", SimClock(), root_threshold=2, root_keys=3)
    # Only one of the three root keys is on this machine.
    for pem in sorted(dep.keys.offline_dir.glob("image-root-*.pem"))[1:]:
        shutil.move(pem, tmp_path / pem.name)
    with pytest.raises(KeyUnavailableError, match="needs 2 root key"):
        rotate(dep, RotatableRole.TARGETS)
    assert dep.images.roots.versions() == [1], "a refused rotation writes nothing"


def test_k_of_n_root_keys_on_separate_media_are_brought_together_for_one_signing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "h"
    init_home(home, SimClock(), root_threshold=2, root_keys=3)
    sticks = [tmp_path / "custodian-a", tmp_path / "custodian-b"]
    roots = sorted((home / "offline").glob("image-root-*.pem"))
    for stick, pem in zip(sticks, roots[1:], strict=True):  # root keys 2 and 3 leave the home
        stick.mkdir()
        shutil.move(pem, stick / pem.name)
    with pytest.raises(KeyUnavailableError):
        rotate(open_home(home, SimClock()), RotatableRole.TARGETS)  # only key 1 at hand
    # Custodian A brings key 2: with key 1 in the home's offline folder, 2 of 3 are at hand.
    monkeypatch.setenv("EVOTA_OFFLINE_DIR", os.pathsep.join([str(home / "offline"), str(sticks[0])]))
    result = rotate(open_home(home, SimClock()), RotatableRole.TARGETS)
    assert result.root_version == 2
    new = Metadata[Root].from_bytes((home / "repo" / "image" / "metadata" / "2.root.json").read_bytes())
    assert len(new.signatures) == 2
    new.signed.verify_delegate(Root.type, new.signed_bytes, new.signatures)

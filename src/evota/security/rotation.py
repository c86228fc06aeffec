"""Key rotation and revocation for both repositories.

Rotating a role writes root N+1 in which the role's old keys are replaced by new ones,
signed by a threshold of the old root keys *and* of the new root's (so a vehicle holding
root N can walk to N+1, and only N+1's keys can take it further). Metadata the role signs is
then re-signed with the new keys, so from the next cycle a vehicle sees only new signatures;
anything signed with an old key afterwards is refused, because root N+1 no longer lists it.
The replaced private keys move to `retired/` beside them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum

from tuf.api.metadata import Metadata, Root

from evota.deployment import Deployment
from evota.fsutil import exclusive_lock
from evota.security.director import DIRECTOR_ONLINE_ROLES
from evota.security.keys import require_signers, sign_as
from evota.security.tuf_repo import RootHistory, expiry_from

__all__ = ["RotatableRole", "Rotation", "rotate"]


class RotatableRole(enum.StrEnum):
    ROOT = "root"
    TARGETS = "targets"
    SNAPSHOT = "snapshot"
    TIMESTAMP = "timestamp"
    DIRECTOR = "director"  # the director's online key (its targets, snapshot and timestamp)
    DIRECTOR_ROOT = "director-root"


@dataclasses.dataclass(frozen=True)
class Rotation:
    repository: str
    roles: tuple[str, ...]
    root_version: int
    old_keyids: tuple[str, ...]
    new_keyids: tuple[str, ...]


def rotate(dep: Deployment, role: RotatableRole) -> Rotation:
    """Replace the keys of `role`; KeyUnavailableError if the root keys are not at hand."""
    expiry = dep.settings.expiry
    now = dep.clock.now()
    with exclusive_lock(dep.home.lock_file):
        if role is RotatableRole.DIRECTOR:
            result = _new_root(
                dep,
                dep.director.roots,
                DIRECTOR_ONLINE_ROLES,
                "director",
                offline=False,
                lifetime=expiry.director_root,
            )
            for vin in dep.director.vehicles():
                chain = dep.director.chain(vin)
                chain.commit_targets(chain.targets(), now)
            return result
        if role is RotatableRole.DIRECTOR_ROOT:
            return _new_root(
                dep,
                dep.director.roots,
                ("root",),
                "director-root",
                offline=True,
                lifetime=expiry.director_root,
            )
        offline = role in (RotatableRole.ROOT, RotatableRole.TARGETS)
        result = _new_root(
            dep,
            dep.images.roots,
            (role.value,),
            f"image-{role.value}",
            offline=offline,
            lifetime=expiry.image_root,
        )
        if role is RotatableRole.TARGETS:
            dep.images.chain.commit_targets(dep.images.chain.targets(), now)
        elif role in (RotatableRole.SNAPSHOT, RotatableRole.TIMESTAMP):
            dep.images.chain.resign_online(now)
        return result


def _new_root(
    dep: Deployment,
    roots: RootHistory,
    roles: tuple[str, ...],
    label: str,
    *,
    offline: bool,
    lifetime: dt.timedelta,
) -> Rotation:
    """Write root N+1 with fresh keys for `roles` (as many as before), signed old and new."""
    old_md = roots.current()
    old_root = old_md.signed
    old_signers = require_signers(Root.type, old_root, dep.keys, what=f"{label}: root v{old_root.version}")
    new_root = Metadata[Root].from_bytes(old_md.to_bytes()).signed
    new_root.version += 1
    new_root.expires = expiry_from(dep.clock.now(), lifetime)

    old_keyids = tuple(dict.fromkeys(k for r in roles for k in old_root.roles[r].keyids))
    count = len(old_root.roles[roles[0]].keyids)
    new_keys = [
        dep.keys.generate(f"{label}-{i + 1}" if count > 1 else label, offline=offline) for i in range(count)
    ]
    for r in roles:
        for keyid in old_root.roles[r].keyids:
            new_root.revoke_key(keyid, r)
        for key in new_keys:
            new_root.add_key(key, r)

    md = Metadata(new_root)
    sign_as(md, Root.type, new_root, dep.keys, what=f"root v{new_root.version}", also=old_signers)
    roots.write(md)
    still_used = {k for r in new_root.roles.values() for k in r.keyids}
    for keyid in old_keyids:
        if keyid not in still_used:
            dep.keys.retire(keyid)
    repo = "director" if roots is dep.director.roots else "image"
    return Rotation(repo, roles, new_root.version, old_keyids, tuple(k.keyid for k in new_keys))

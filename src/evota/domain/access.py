"""Who may do what: roles as named sets of permissions.

Roles follow the jobs on a fleet team (hawkBit and Mender split them the same way): a viewer
reads; an operator runs the fleet and its campaigns; a release manager publishes releases and
drafts campaigns for them; an approver gives the second pair of eyes; an admin manages users.
Approving is its own permission and not part of `operator`, so that four-eyes approval means
two people with two different jobs, not one person with two accounts of the same role.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from evota.errors import InputError

__all__ = ["ROLE_PERMISSIONS", "Permission", "Role", "allows", "parse_role"]


class Permission(enum.StrEnum):
    READ = "read"  # vehicles, campaigns, reports, releases, audit
    FLEET_WRITE = "fleet.write"  # import and provision vehicles
    CAMPAIGN_WRITE = "campaign.write"  # create, start, pause, resume, abort
    CAMPAIGN_APPROVE = "campaign.approve"
    RELEASE_WRITE = "release.write"
    USER_ADMIN = "user.admin"


class Role(enum.StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    RELEASE_MANAGER = "release-manager"
    APPROVER = "approver"
    ADMIN = "admin"


P = Permission
ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({P.READ}),
    Role.OPERATOR: frozenset({P.READ, P.FLEET_WRITE, P.CAMPAIGN_WRITE}),
    Role.RELEASE_MANAGER: frozenset({P.READ, P.RELEASE_WRITE, P.CAMPAIGN_WRITE}),
    Role.APPROVER: frozenset({P.READ, P.CAMPAIGN_APPROVE}),
    Role.ADMIN: frozenset(Permission),
}


def allows(role: Role, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[role]


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InputError(f"unknown role {value!r}; one of: {', '.join(r.value for r in Role)}") from None

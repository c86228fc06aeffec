"""Operator accounts and their API tokens.

The first admin is created from the command line on the server's machine (`evota user add`):
whoever can write the database there is trusted already. Everything after that can go
through the API with an admin token. Every change is in the audit log.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from evota.domain.access import Role, parse_role
from evota.domain.identifiers import validate_name
from evota.errors import InputError, NotFoundError
from evota.security.errors import AuthenticationError
from evota.server.services.audit import record
from evota.server.services.tokens import USER_PREFIX, new_token, token_hash
from evota.server.store.db import Database
from evota.server.store.models import UserRow, UserTokenRow

__all__ = [
    "Principal",
    "UserView",
    "add_user",
    "authenticate_user",
    "issue_token",
    "list_users",
    "revoke_tokens",
]


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who a request acts as."""

    name: str
    role: Role


@dataclasses.dataclass(frozen=True)
class UserView:
    name: str
    role: str
    disabled: bool
    tokens: int
    created_at: dt.datetime

    def to_json(self) -> dict[str, object]:
        out = dataclasses.asdict(self)
        out["created_at"] = self.created_at.isoformat()
        return out


def add_user(db: Database, name: str, role: str, *, actor: str, now: dt.datetime) -> str:
    """Create a user with a role; returns their first API token (shown once, stored hashed)."""
    validate_name(name)
    parsed = parse_role(role)
    with db.sessions.begin() as session:
        user = UserRow(name=name, role=parsed.value, created_at=now, disabled=False)
        session.add(user)
        try:
            session.flush()
        except IntegrityError:
            raise InputError(f"a user named {name} already exists") from None
        token = _issue(session, user, "initial", now)
        record(
            session,
            actor=actor,
            action="user.add",
            subject=f"user:{name}",
            details={"role": parsed.value},
            now=now,
        )
    return token


def issue_token(db: Database, name: str, *, label: str, actor: str, now: dt.datetime) -> str:
    """Another token for an existing user (e.g. one per script), labelled for revocation."""
    validate_name(label)
    with db.sessions.begin() as session:
        user = _user(session, name)
        token = _issue(session, user, label, now)
        record(
            session,
            actor=actor,
            action="user.token",
            subject=f"user:{name}",
            details={"label": label},
            now=now,
        )
    return token


def revoke_tokens(db: Database, name: str, *, actor: str, now: dt.datetime, label: str | None = None) -> int:
    """Revoke a user's tokens (those with `label`, or all); returns how many."""
    with db.sessions.begin() as session:
        user = _user(session, name)
        query = update(UserTokenRow).where(UserTokenRow.user_id == user.id, UserTokenRow.revoked_at.is_(None))
        if label is not None:
            query = query.where(UserTokenRow.label == label)
        count = int(session.execute(query.values(revoked_at=now)).rowcount)  # type: ignore[attr-defined]
        record(
            session,
            actor=actor,
            action="user.revoke",
            subject=f"user:{name}",
            details={"label": label, "revoked": count},
            now=now,
        )
    return count


def list_users(db: Database) -> list[UserView]:
    with db.sessions() as session:
        users = session.scalars(select(UserRow).order_by(UserRow.name)).all()
        live = (
            session.execute(select(UserTokenRow.user_id).where(UserTokenRow.revoked_at.is_(None)))
            .scalars()
            .all()
        )
    return [UserView(u.name, u.role, u.disabled, live.count(u.id), u.created_at) for u in users]


def authenticate_user(db: Database, token: str) -> Principal:
    """The user a token belongs to (AuthenticationError if unknown, revoked or disabled)."""
    with db.sessions() as session:
        row = session.execute(
            select(UserRow.name, UserRow.role)
            .join(UserTokenRow, UserTokenRow.user_id == UserRow.id)
            .where(
                UserTokenRow.token_hash == token_hash(token),
                UserTokenRow.revoked_at.is_(None),
                UserRow.disabled.is_(False),
            )
        ).one_or_none()
    if row is None:
        raise AuthenticationError("unknown, revoked or disabled user token")
    return Principal(row.name, Role(row.role))


def _issue(session: Session, user: UserRow, label: str, now: dt.datetime) -> str:
    token = new_token(USER_PREFIX)
    session.add(UserTokenRow(token_hash=token_hash(token), user_id=user.id, label=label, created_at=now))
    return token


def _user(session: Session, name: str) -> UserRow:
    user = session.scalars(select(UserRow).where(UserRow.name == name)).one_or_none()
    if user is None:
        raise NotFoundError(f"no user named {name}")
    return user

"""The engine, sessions, and bringing the schema up to date.

`open_database(url)` returns a `Database`: an engine and a session factory, with the schema
migrated to the newest Alembic revision. On PostgreSQL the migration holds an advisory lock,
so several server processes starting at once migrate one after the other.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["Database", "open_database"]

MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK = 0x65766F7461  # "evota": the advisory lock key held while migrating


@dataclasses.dataclass(frozen=True)
class Database:
    url: str
    engine: Engine
    sessions: sessionmaker[Session]

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: object, _: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite_not_durable(dbapi_connection: object, _: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA synchronous=OFF")
    cursor.close()


def make_engine(url: str, *, durable: bool = True) -> Engine:
    """`durable=False` (the fleet simulator's own throw-away homes only) lets SQLite skip
    fsync on commit: a crash of the host may lose the simulation, never a real fleet."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        if not durable:
            event.listen(engine, "connect", _sqlite_not_durable)
        return engine
    return create_engine(url, pool_pre_ping=True)


def migrate(engine: Engine) -> None:
    """Upgrade the schema to the newest revision (idempotent)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def open_database(url: str, *, durable: bool = True) -> Database:
    engine = make_engine(url, durable=durable)
    migrate(engine)
    return Database(url, engine, sessionmaker(engine, expire_on_commit=False))

"""The schema comes from migrations only, and they match the models, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from evota.server.store.db import Database, open_database
from evota.server.store.models import Base


def test_migrations_create_the_schema_and_are_idempotent(db: Database, database_url: str) -> None:
    assert {"vehicles", "ecus", "vehicle_tags", "alembic_version"} <= set(
        inspect(db.engine).get_table_names()
    )
    again = open_database(database_url)  # a second server process starting on the same database
    again.dispose()


def test_models_and_migrations_agree(db: Database) -> None:
    with db.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == [], f"the models drifted from the migrations: {diff}"

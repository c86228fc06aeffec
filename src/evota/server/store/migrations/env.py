"""Alembic environment: runs on the connection evota hands it (see evota.server.store.db)."""

from __future__ import annotations

from alembic import context

from evota.server.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("evota runs its migrations through evota.server.store.db.migrate()")

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()

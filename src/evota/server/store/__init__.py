"""Persistence: SQLAlchemy 2 models, the engine, and Alembic migrations.

SQLite in the home folder by default; PostgreSQL when EVOTA_DATABASE_URL says so. The schema
is only ever changed by a migration in `migrations/versions/`.
"""

"""The ledger: the only shared state (SQLAlchemy Core, Alembic migrations)."""

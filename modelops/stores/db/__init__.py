"""The platform database (SQLite or PostgreSQL): engine, schema and alembic migrations,
shared by the registry and the production log."""

-- Runs once, when the PostgreSQL volume is new: the platform's own database beside
-- Dagster's (POSTGRES_DB). `modelops init` then creates its tables (alembic).
CREATE DATABASE modelops;

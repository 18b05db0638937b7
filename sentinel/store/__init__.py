"""The findings store: one row per distinct secret (Finding), one per place it appears
(Occurrence), one per scan (Scan), plus API tokens, the audit log and alert deliveries.
SQLAlchemy 2 with Alembic migrations; SQLite by default, PostgreSQL by URL."""

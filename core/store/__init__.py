"""The store: SQLAlchemy Core tables, migrations and queries."""

"""The database: models, sessions, the tenant-scoped repository, migrations."""

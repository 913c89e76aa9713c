"""The database: one table module per domain on a shared base, sessions, migrations."""

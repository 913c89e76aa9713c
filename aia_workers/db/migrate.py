"""Run Alembic migrations from code (``aia db upgrade``) without an alembic.ini."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from aia_workers.db.session import make_engine
from aia_workers.settings import Settings

__all__ = ["alembic_config", "upgrade"]

_MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the database at ``settings.database_url`` up to ``revision``."""
    engine = make_engine(settings)
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()

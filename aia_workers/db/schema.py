"""The whole schema: every table module imported, so ``metadata`` holds every table.

A table module defines its tables on the shared ``Base`` when it is imported;
whatever needs all of them at once (Alembic's autogenerate and comparison, a
``create_all``) takes the metadata from here rather than from whichever table
modules it happened to import. A new domain's table module is added below.
"""

from __future__ import annotations

from sqlalchemy import MetaData

from aia_workers.db import agents, drift, identity, ml, schedules, tasks, webhooks, workflows
from aia_workers.db.base import Base

__all__ = ["TABLE_MODULES", "Base", "metadata"]

TABLE_MODULES = (identity, tasks, ml, webhooks, drift, schedules, agents, workflows)

metadata: MetaData = Base.metadata

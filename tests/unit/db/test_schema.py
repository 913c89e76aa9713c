"""The schema: one table module per domain, all of them in the metadata Alembic compares."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import aia_workers.db
from aia_workers.db.base import Base
from aia_workers.db.schema import TABLE_MODULES, metadata


def _table_modules_in_db() -> set[str]:
    found = set()
    for info in pkgutil.iter_modules(aia_workers.db.__path__, "aia_workers.db."):
        if info.ispkg:
            continue
        importlib.import_module(info.name)
    for mapper in Base.registry.mappers:
        found.add(mapper.class_.__module__)
    return found


def test_every_module_that_defines_tables_is_in_the_schema() -> None:
    # A table module left out of schema.py would be missing from Alembic's
    # comparison and from any create_all, without an error anywhere.
    assert _table_modules_in_db() == {m.__name__ for m in TABLE_MODULES}
    assert metadata is Base.metadata
    tables = {mapper.local_table.name for mapper in Base.registry.mappers}
    assert set(metadata.tables) == tables


def test_a_table_module_loads_only_its_own_domain() -> None:
    code = (
        "import sys, aia_workers.db.ml;"
        "print(','.join(sorted(m for m in sys.modules if m.startswith('aia_workers.db.'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().split(",") == ["aia_workers.db.base", "aia_workers.db.ml"]

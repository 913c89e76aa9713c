"""Times as the API shows them; the task view itself is ``aia_workers.backbone.view``."""

from __future__ import annotations

from aia_workers.backbone.view import iso_time

__all__ = ["iso_time"]

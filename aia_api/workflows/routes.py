"""Every route of workflows, in the order the app mounts them.

Run paths (``/v1/workflows/runs/...``) come before ``/v1/workflows/{workflow_id}``.
"""

from aia_api.workflows import runs, workflows

__all__ = ["routes"]

routes = [*runs.routes, *workflows.routes]

"""The API's OpenAPI 3.1 document, assembled from the routes the app mounts.

Each handler declares its operation beside it (``aia_api.http.openapi``); the
schemas come from the pydantic models those declarations name, and the task
payloads from the catalog. tests/unit/ops/test_openapi_assembly.py refuses a
route without a declaration; tests/e2e/ops/test_openapi.py checks the served
document against the running API and fuzzes it.
"""

from aia_api.ops.openapi.document import API_VERSION, build_openapi, openapi_document

__all__ = ["API_VERSION", "build_openapi", "openapi_document"]

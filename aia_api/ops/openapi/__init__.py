"""The API's OpenAPI 3.1 document, built from the request and response models.

Paths and their error responses are declared here, next to each other, in the
order of the route modules; the schemas come from the pydantic models (request
models beside their routes, response models in aia_api.http.responses, payloads from
the task catalog). tests/e2e/ops/test_openapi.py checks that every route of the app
is described and fuzzes the running API against this document.
"""

from aia_api.ops.openapi.document import API_VERSION, build_openapi, openapi_document

__all__ = ["API_VERSION", "build_openapi", "openapi_document"]

"""Operations: liveness, status, Prometheus metrics and the API's OpenAPI document."""

"""Property-based run of the OpenAPI schema: no generated request gets a 5xx.

schemathesis' pytest plugin does not work with pytest 9, so its Hypothesis strategies
are driven directly, one operation at a time.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings

from aerialseg.api.app import ServeLimits, create_app


def test_no_server_errors(loaded):
    app = create_app(loaded, ServeLimits(max_upload_bytes=200_000, max_pixels=250_000))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} == {"/healthz", "/v1/model", "/v1/segment"}
    seen: dict[int, int] = {}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case):
            response = case.call()
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
            assert response.status_code < 500, (
                case.path,
                response.status_code,
                response.text[:200],
            )

        check()
    assert 200 in seen and (415 in seen or 422 in seen)  # both good and bad requests were made

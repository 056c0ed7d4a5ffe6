"""The served API describes itself truthfully: schemathesis with every check (`--checks all`:
status codes, content types, response schemas, 405 for undeclared methods, valid data accepted,
invalid data rejected, ...) against the document each tenant's server serves at /openapi.json
(serving/openapi.py amends KServe's), for both tenants' servers."""

from __future__ import annotations

import pytest

from tests.reliability.api_conformance import run_all_checks
from tests.reliability.figures import record
from tests.serving.server_helpers import running_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def search_server(trained_search, tmp_path_factory):
    with running_server(trained_search.tenant_file, trained_search.home, tmp_path_factory.mktemp("search")) as s:
        yield s


@pytest.mark.parametrize("tenant", ["fraud", "search"])
def test_schemathesis_all_checks_pass(tenant, request):
    base_url = request.getfixturevalue("server" if tenant == "fraud" else "search_server").base_url
    result = run_all_checks(base_url)
    record("openapi", **{tenant: {"cases": result.cases, "operations": result.operations,
                                  "unique_failures": len(result.failures), "engine_errors": len(result.errors)}})
    assert result.operations >= 10 and result.cases > 100, result  # the run really exercised the API
    assert not result.errors, "\n".join(result.errors)
    assert not result.failures, f"{len(result.failures)} unique failures:\n" + "\n".join(result.failures)

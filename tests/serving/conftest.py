"""A real ModelServer process for the trained fraud workspace, started once per test session."""

from __future__ import annotations

import pytest

from server_helpers import RunningServer, running_server


@pytest.fixture(scope="session")
def fraud_server(trained_fraud, tmp_path_factory) -> RunningServer:
    with running_server(trained_fraud.tenant_file, trained_fraud.home, tmp_path_factory.mktemp("server")) as server:
        yield server

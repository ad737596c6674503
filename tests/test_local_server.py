"""Which Prefect API local mode talks to, without starting anything (the real server: tests/test_demo.py)."""

from __future__ import annotations

import pytest

from autoresearch import local_server
from autoresearch.errors import UserError


def test_a_users_own_api_url_wins(monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "https://api.prefect.cloud/api/accounts/a/workspaces/w")
    assert local_server.ensure() == "https://api.prefect.cloud/api/accounts/a/workspaces/w"


def test_port_from_the_environment_and_bad_ports(monkeypatch):
    monkeypatch.delenv(local_server.PORT_VARIABLE, raising=False)
    assert local_server.default_port() == 4200
    monkeypatch.setenv(local_server.PORT_VARIABLE, "4300")
    assert local_server.default_port() == 4300
    monkeypatch.setenv(local_server.PORT_VARIABLE, "http")
    with pytest.raises(UserError, match="AUTORESEARCH_SERVER_PORT"):
        local_server.default_port()


def test_no_recorded_server_in_a_new_home(monkeypatch, tmp_path):
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "home"))
    assert local_server.prefect_home() == tmp_path / "home"
    assert local_server.recorded() is None and local_server.running() is None
    assert local_server.stop() is None
    info = local_server.ServerInfo(pid=1, port=4300)
    assert (info.api_url, info.ui_url) == ("http://127.0.0.1:4300/api", "http://127.0.0.1:4300")
    assert local_server.ui_address(info.api_url) == info.ui_url

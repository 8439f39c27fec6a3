"""The settings that decide which events a deployment admits: tenants and body size."""

from __future__ import annotations

import pytest
from coaching_shared.settings import ServiceSettings
from pydantic import ValidationError
from pydantic_settings import SettingsError


def test_by_default_every_tenant_and_bodies_up_to_256_kib_are_admitted(monkeypatch):
    monkeypatch.delenv("TENANTS", raising=False)
    monkeypatch.delenv("MAX_EVENT_BYTES", raising=False)
    settings = ServiceSettings(service_name="goals")
    assert settings.tenants == []
    assert settings.max_event_bytes == 256 * 1024


def test_served_tenants_and_the_size_limit_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("TENANTS", '["acme", "globex"]')
    monkeypatch.setenv("MAX_EVENT_BYTES", "65536")
    settings = ServiceSettings(service_name="goals")
    assert settings.tenants == ["acme", "globex"]
    assert settings.max_event_bytes == 65536


@pytest.mark.parametrize(("field", "value"), [
    ("max_event_bytes", 0),
    ("max_event_bytes", -1),
    # An empty tenant id would let events without a tenant through the allowlist.
    ("tenants", [""]),
    ("tenants", ["acme corp"]),
    ("tenants", ["x" * 65]),
])
def test_malformed_limits_are_refused(field, value):
    with pytest.raises(ValidationError, match=field):
        ServiceSettings(service_name="goals", **{field: value})


def test_a_tenant_list_that_is_not_json_stops_the_start(monkeypatch):
    # Read as characters or as one tenant "acme,globex", it would silently serve the wrong set.
    monkeypatch.setenv("TENANTS", "acme,globex")
    with pytest.raises(SettingsError, match="tenants"):
        ServiceSettings(service_name="goals")

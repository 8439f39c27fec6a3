"""A service's ASGI app run inside the test process, against the real Kafka and MongoDB.

Faster than a process per service, and the app is the very one the entry point serves:
lifespan, consumer, outbox relay and all. Use processes (support.processes) where the
test is about processes (crashes, several replicas).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from coaching_shared.auth import mint_token
from coaching_shared.settings import ServiceSettings
from fastapi import FastAPI

from support.infra import Infrastructure


def service_settings(settings_class: type[ServiceSettings], infra: Infrastructure, prefix: str,
                     **overrides: Any) -> ServiceSettings:
    """Settings for a service under test: this test's topics and database."""
    service = settings_class.model_fields["service_name"].default
    values = {"kafka_bootstrap_servers": infra.kafka_bootstrap_servers,
              "mongodb_url": infra.mongodb_url, "topic_prefix": prefix,
              "mongodb_database": f"{prefix.rstrip('.')}_{service}",
              "outbox_sweep_seconds": 0.5, "retry_backoff_seconds": 0.05,
              "retry_backoff_max_seconds": 0.5, **overrides}
    return settings_class(**values)


@asynccontextmanager
async def running_service(create_app: Callable[[ServiceSettings], FastAPI],
                          settings: ServiceSettings) -> AsyncIterator[httpx.AsyncClient]:
    """Start the app (connected and consuming) and yield an HTTP client bound to it."""
    app = create_app(settings)
    # Shutdown waits for the batch in hand; on a loaded 2-core machine that can take a while.
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=90):
        await asyncio.wait_for(app.state.runtime.ready.wait(), timeout=60)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


def bearer(tenant_id: str, subject: str, *roles: str) -> dict[str, str]:
    """Authorization header with a dev token (same default secret as the services)."""
    token = mint_token(ServiceSettings(service_name="tests"), tenant_id, subject, list(roles))
    return {"Authorization": f"Bearer {token}"}

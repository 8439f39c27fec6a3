"""The demo `make up` plays: a small cohort flowing through the platform, one step a module.

Each step is `async def run(demo: Demo) -> None`, printing what it shows. Steps run in the
order of STEPS and may use what earlier steps left in `demo.state`. Events carry fixed ids
and HTTP commands fixed idempotency keys, so running the demo twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from coaching_shared.auth import mint_token
from coaching_shared.events import EventMessage
from coaching_shared.settings import ServiceSettings

TENANT = "demo"


@dataclass
class Demo:
    """What a demo step can use: the services' URLs, Kafka, tokens and shared state."""

    urls: dict[str, str]
    kafka_bootstrap_servers: str
    state: dict[str, Any] = field(default_factory=dict)

    def headers(self, subject: str, *roles: str) -> dict[str, str]:
        token = mint_token(ServiceSettings(service_name="demo"), TENANT, subject, list(roles))
        return {"Authorization": f"Bearer {token}"}

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=10)

    async def publish(self, messages: list[EventMessage]) -> None:
        """Publish events as an outside system (e.g. the HRIS) would."""
        producer = AIOKafkaProducer(bootstrap_servers=self.kafka_bootstrap_servers,
                                    enable_idempotence=True)
        await producer.start()
        try:
            for message in messages:
                await producer.send_and_wait(
                    message.topic(), message.body(), key=message.key(),
                    headers=[(n, v.encode()) for n, v in message.headers().items()])
        finally:
            await producer.stop()


def _steps() -> list[Callable[[Demo], Awaitable[None]]]:
    from demo_steps import assessment, enrolment, feedback, goals, notifier

    return [enrolment.run, assessment.run, goals.run, feedback.run, notifier.run]


async def run_demo(demo: Demo) -> None:
    for step in _steps():
        await step(demo)

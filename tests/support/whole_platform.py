"""All four services in the test process, on one topic prefix: the whole platform in miniature."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
from coaching_assessment.app import create_app as assessment_app
from coaching_assessment.settings import AssessmentSettings
from coaching_feedback.app import create_app as feedback_app
from coaching_feedback.settings import FeedbackSettings
from coaching_goals.app import create_app as goals_app
from coaching_goals.settings import GoalsSettings
from coaching_notifier.app import create_app as notifier_app
from coaching_notifier.settings import NotifierSettings
from coaching_shared.settings import ServiceSettings
from fastapi import FastAPI

from support.infra import Infrastructure
from support.inprocess import running_service, service_settings

AppFactory = Callable[[Any], FastAPI]

SERVICES: dict[str, tuple[AppFactory, type[ServiceSettings]]] = {
    "assessment": (assessment_app, AssessmentSettings),
    "goals": (goals_app, GoalsSettings),
    "feedback": (feedback_app, FeedbackSettings),
    "notifier": (notifier_app, NotifierSettings),
}


def platform_settings(infra: Infrastructure, prefix: str, name: str,
                      **overrides: Any) -> ServiceSettings:
    """One service's settings on this platform's topics and databases."""
    return service_settings(SERVICES[name][1], infra, prefix, **overrides)


@asynccontextmanager
async def running_platform(infra: Infrastructure, prefix: str,
                           per_service: dict[str, dict[str, Any]] | None = None,
                           apps: dict[str, AppFactory] | None = None,
                           **overrides: Any) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """Start the four services (consuming, relaying) and yield an HTTP client per service.

    `overrides` apply to every service, `per_service[name]` to one (e.g. the SMTP port);
    `apps[name]` replaces a service's app factory (e.g. to hand the feedback service a clock).
    """
    async with AsyncExitStack() as stack:
        clients = {}
        for name, (default_app, _) in SERVICES.items():
            create_app = (apps or {}).get(name, default_app)
            settings = platform_settings(infra, prefix, name, **overrides,
                                         **(per_service or {}).get(name, {}))
            clients[name] = await stack.enter_async_context(running_service(create_app,
                                                                            settings))
        yield clients

"""HTTP commands that are safe to retry: the `Idempotency-Key` header.

A client that retries a POST after a timeout sends the same key; the command then gets the
same cause id, and `mongo.apply_once` applies it once. Without a key every request is new.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Header

from coaching_shared.auth import Principal
from coaching_shared.events import derived_event_id

IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=200,
           description="Retry a request with the same key and it takes effect once"),
]


def command_id(principal: Principal, idempotency_key: str | None, operation: str) -> str:
    """The cause id of a command: stable per caller, key and operation."""
    if idempotency_key is None:
        return str(uuid.uuid4())
    return derived_event_id(f"{principal.tenant_id}|{principal.subject}|{idempotency_key}",
                            operation)


# OpenAPI `responses` of a creating command that answers 200 when it repeats an earlier one.
REPEATED_COMMAND: dict[int | str, dict[str, Any]] = {
    200: {"description": "a repeat of an earlier request (same Idempotency-Key or identical "
                         "content): what it created then, created nothing new",
          "content": {"application/json": {"schema": {"type": "object"}}}}}

"""Structured JSON logs carrying the event id, and the Prometheus metrics every service exports."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from prometheus_client import Counter, Gauge, Histogram

_event_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("event_id", default=None)
_event_type: contextvars.ContextVar[str | None] = contextvars.ContextVar("event_type",
                                                                         default=None)
_service: str = "coaching"


@contextmanager
def event_log_context(event_id: str, event_type: str) -> Iterator[None]:
    """Every log line written inside carries this event's id and type."""
    id_token = _event_id.set(event_id)
    type_token = _event_type.set(event_type)
    try:
        yield
    finally:
        _event_id.reset(id_token)
        _event_type.reset(type_token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line. Messages must not contain personal content or secrets."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "service": _service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if (event_id := _event_id.get()) is not None:
            entry["event_id"] = event_id
            entry["event_type"] = _event_type.get()
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(service_name: str, level: str = "INFO") -> None:
    """Route all logging (ours, FastStream's, uvicorn's) to stdout as JSON lines."""
    global _service
    _service = service_name
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # aiokafka logs every reconnect attempt at ERROR during an outage; keep them but quieter.
    logging.getLogger("aiokafka").setLevel("WARNING")
    logging.getLogger("pymongo").setLevel("WARNING")


class _Metrics:
    """The platform's metric families (one process = one service, so no service label)."""

    def __init__(self) -> None:
        self.events_in = Counter("coaching_events_in_total",
                                 "Consumed events by type and outcome",
                                 ["type", "outcome"])
        self.events_out = Counter("coaching_events_out_total", "Published events by type",
                                  ["type"])
        self.handler_retries = Counter("coaching_handler_retries_total",
                                       "Handler retries by type and kind (error or outage)",
                                       ["type", "kind"])
        self.handler_seconds = Histogram("coaching_handler_seconds",
                                         "Handler latency in seconds", ["type"])
        self.outbox_pending = Gauge("coaching_outbox_pending_documents",
                                    "Documents with outbox entries still to publish")
        self.consumer_lag = Gauge("coaching_consumer_lag_messages",
                                  "Messages behind the end of each partition",
                                  ["topic", "partition"])


METRICS = _Metrics()

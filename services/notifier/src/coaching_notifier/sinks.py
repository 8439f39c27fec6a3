"""Local receivers for development: an SMTP sink and a webhook sink that record what arrives.

`make up`'s demo and the integration tests deliver to these instead of a real mail relay or
a customer's endpoint. The webhook sink can be scripted to answer an error or to hang, to
see retries and take-overs happen. Not used by the service itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

HANG = "hang"


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    recipients: list[str]
    message: EmailMessage
    received_at: float = field(default_factory=time.monotonic)  # when it arrived (monotonic)

    @property
    def notification_id(self) -> str:
        return str(self.message["X-Coaching-Notification-Id"])

    def part(self, subtype: str) -> str:
        """The text/<subtype> body (plain or html)."""
        body = self.message.get_body(preferencelist=(subtype,))
        return body.get_content() if body is not None else ""


class _MailHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        refusal = self._sink.next_refusal()
        if refusal is not None:
            return refusal
        message = message_from_bytes(envelope.content, policy=policy.default)
        self._sink.record(ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


class SmtpSink:
    """An aiosmtpd server on its own thread; `messages` is what it accepted.

    `refuse(...)` queues SMTP replies (e.g. "451 4.3.0 try again later") for the next
    messages, to exercise retries.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **controller_options: Any
                 ) -> None:
        self._lock = threading.Lock()
        self._messages: list[ReceivedMail] = []
        self._refusals: list[str] = []
        if port == 0:
            port = _free_port(host)
        self.host, self.port = host, port
        self._controller = Controller(_MailHandler(self), hostname=host, port=port,
                                      **controller_options)

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def refuse(self, *replies: str) -> None:
        with self._lock:
            self._refusals.extend(replies)

    def next_refusal(self) -> str | None:
        with self._lock:
            return self._refusals.pop(0) if self._refusals else None

    def record(self, mail: ReceivedMail) -> None:
        with self._lock:
            self._messages.append(mail)

    @property
    def messages(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self._messages)

    def to(self, address: str, event_type: str | None = None) -> list[ReceivedMail]:
        """Messages for one address, optionally of one event type."""
        return [m for m in self.messages if address in m.recipients and
                (event_type is None or m.message["X-Coaching-Event-Type"] == event_type)]


@dataclass
class WebhookCall:
    headers: dict[str, str]  # names in lower case
    body: bytes
    status: int | None = None  # None: the sink never answered (hung or cut off)
    received_at: float = field(default_factory=time.monotonic)  # when it arrived (monotonic)


@dataclass
class WebhookSink:
    """A minimal HTTP/1.1 server on the event loop that records every POST it gets.

    `script` lists what to do with the next calls, in order: a status code to answer, or
    `HANG` to never answer; after it, calls get `default_status`.
    """

    host: str = "127.0.0.1"
    port: int = 0
    default_status: int = 200
    script: list[int | str] = field(default_factory=list)
    calls: list[WebhookCall] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _hanging: set[asyncio.Task[Any]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hooks/coaching"

    @property
    def accepted(self) -> list[WebhookCall]:
        """Calls the sink answered with a 2xx: the deliveries a receiver took in."""
        return [c for c in self.calls if c.status is not None and 200 <= c.status < 300]

    def then(self, actions: Iterable[int | str]) -> None:
        self.script.extend(actions)

    async def start(self) -> WebhookSink:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        for task in list(self._hanging):
            task.cancel()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                headers, body = request
                call = WebhookCall(headers, body)
                self.calls.append(call)
                action = self.script.pop(0) if self.script else self.default_status
                if action == HANG:
                    if task is not None:
                        self._hanging.add(task)
                    await asyncio.Event().wait()
                call.status = int(action)
                writer.write(f"HTTP/1.1 {call.status} X\r\ncontent-length: 0\r\n\r\n".encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            if task is not None:
                self._hanging.discard(task)
            writer.close()


async def _read_request(reader: asyncio.StreamReader) -> tuple[dict[str, str], bytes] | None:
    head = await reader.readuntil(b"\r\n\r\n") if not reader.at_eof() else b""
    if not head:
        return None
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return headers, body


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]

"""Schemathesis cases against a service's own OpenAPI, sent to the app running in this process.

The service runs under asgi-lifespan in the test's event loop (its consumer, relay and database
client belong to that loop), so the cases cannot go through schemathesis' own ASGI transport,
which runs the app in a loop of its own. Hypothesis runs in a worker thread instead; each case
is serialized by schemathesis, sent through the test's httpx client on the service's loop, and
the answer is judged by schemathesis' checks and the platform's own problem-details check.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

PROBLEM_JSON = "application/problem+json"
# Derandomized examples per operation (reproducible); FUZZ_EXAMPLES=<n> runs a larger campaign.
# Generating a case costs ~30 ms on a loaded 2-core machine: 20 keeps the four services within
# about two minutes of `make test`.
EXAMPLES_PER_OPERATION = int(os.environ.get("FUZZ_EXAMPLES", "20"))
# Operations without inputs, or whose answer is not an API document, fuzz to nothing.
NOT_FUZZED = frozenset({"GET /metrics", "GET /asyncapi", "GET /asyncapi.json"})


@schemathesis.check
def problem_details_name_the_field(ctx: schemathesis.CheckContext, response: Response,
                                   case: schemathesis.Case) -> bool | None:
    """Every 4xx answers problem details; every 422 names the fields at fault."""
    if not 400 <= response.status_code < 500:
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    assert content_type.startswith(PROBLEM_JSON), (
        f"{response.status_code} answered {content_type!r}, not {PROBLEM_JSON}")
    body = json.loads(response.content)
    assert body.get("status") == response.status_code and body.get("title"), (
        f"not a problem-details body: {body}")
    if response.status_code == 422:
        named = [item.get("field") for item in body.get("errors", [])]
        assert named and all(named), f"a 422 that names no field: {body}"
    return None


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, problem_details_name_the_field]


@dataclass
class FuzzTarget:
    """A running service as the fuzzer sees it: where to send, who may call, what exists."""

    client: httpx.AsyncClient
    loop: asyncio.AbstractEventLoop
    callers: Sequence[Mapping[str, str]]
    known_ids: Mapping[str, Sequence[str]]
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    def send(self, case: schemathesis.Case) -> Response:
        """Send the case through the service's own loop and return schemathesis' response."""
        request = case.as_transport_kwargs(base_url=str(self.client.base_url))
        body = {"json": request["json"]} if "json" in request else {
            "content": request.get("data")}
        call = self.client.request(request["method"], request["url"],
                                   params=request.get("params"),
                                   headers=request.get("headers"), **body)
        answer = asyncio.run_coroutine_threadsafe(call, self.loop).result(timeout=60)
        return Response.from_httpx(answer, verify=True)


def _with_known_ids(case: schemathesis.Case, target: FuzzTarget,
                    data: st.DataObject) -> schemathesis.Case:
    """Point path parameters at seeded resources part of the time, so handlers find them."""
    for name in list(case.path_parameters or {}):
        known = target.known_ids.get(name)
        if known and data.draw(st.booleans(), label=f"known {name}"):
            case.path_parameters[name] = data.draw(st.sampled_from(list(known)), label=name)
    return case


def fuzz_operation(operation: schemathesis.APIOperation, target: FuzzTarget,
                   examples: int = EXAMPLES_PER_OPERATION) -> None:
    """Run generated cases (valid and invalid) against one operation; raise on a failed check."""
    cases = st.one_of(operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
                      operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    seen = target.statuses.setdefault(operation.label, Counter())

    @settings(max_examples=examples, derandomize=True, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate, Phase.shrink],
              suppress_health_check=list(HealthCheck))
    @given(case=cases, caller=st.sampled_from(list(target.callers)), data=st.data())
    def exchange(case: schemathesis.Case, caller: Mapping[str, str],
                 data: st.DataObject) -> None:
        case = _with_known_ids(case, target, data)
        case.headers = {**(case.headers or {}), **caller}
        response = target.send(case)
        seen[response.status_code] += 1
        case.validate_response(response, checks=CHECKS)

    exchange()


def fuzz_schema(document: dict, target: FuzzTarget) -> None:
    """Fuzz every operation of an OpenAPI document, recording failures by operation."""
    schema = schemathesis.openapi.from_dict(document)
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.label in NOT_FUZZED:
            continue
        try:
            fuzz_operation(operation, target)
        except (Exception, FailureGroup) as error:  # every operation's failure, not the first
            target.failures[operation.label] = str(error)


async def fuzz_service(client: httpx.AsyncClient, callers: Sequence[Mapping[str, str]],
                       known_ids: Mapping[str, Sequence[str]]) -> FuzzTarget:
    """Fuzz the running service behind `client`; the target carries statuses and failures."""
    target = FuzzTarget(client, asyncio.get_running_loop(), callers, known_ids)
    document = client.app.openapi()  # type: ignore[attr-defined]
    await asyncio.to_thread(fuzz_schema, document, target)
    return target

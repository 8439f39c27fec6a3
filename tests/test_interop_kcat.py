"""Clients we did not write read our events: kcat shows key and `ce_*` headers of every type."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from coaching_shared.contracts.examples import EXAMPLES
from support.kafka_tools import publish_events

pytestmark = pytest.mark.integration


@pytest.fixture
def kcat() -> str:
    path = shutil.which("kcat")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("kcat is missing; make install (deploy/local/bootstrap.sh) installs it")
        pytest.skip("kcat not installed (sudo apt-get install kcat)")
    return path


async def test_kcat_consumes_every_event_type_with_key_and_cloudevents_headers(kcat, infra,
                                                                                prefix):
    sent = await publish_events(infra.kafka_bootstrap_servers, prefix, EXAMPLES)
    seen = {}
    for topic in sorted({message.topic(prefix) for message in sent}):
        output = subprocess.run(
            [kcat, "-b", infra.kafka_bootstrap_servers, "-C", "-t", topic, "-o", "beginning",
             "-e", "-q", "-f", "key=%k\\nheaders=%h\\nvalue=%s\\n--\\n"],
            capture_output=True, text=True, timeout=60, check=True).stdout
        for block in filter(None, output.split("--\n")):
            lines = dict(line.split("=", 1) for line in block.strip().splitlines())
            headers = dict(pair.split("=", 1) for pair in lines["headers"].split(","))
            seen[headers["ce_id"]] = (lines["key"], headers, json.loads(lines["value"]))
    assert len(seen) == len(sent)
    for message in sent:
        key, headers, data = seen[message.id]
        assert key == message.subject
        assert headers["ce_type"] == message.type
        assert headers["ce_specversion"] == "1.0"
        assert headers["ce_tenant"] == message.tenant
        assert headers["ce_subject"] == message.subject
        assert headers["content-type"] == "application/json"
        assert data == message.data

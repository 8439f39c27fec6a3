"""Clients we did not write read our events: kcat shows the key and the `ce_*` headers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from coaching_shared.contracts import ClientOffboarded
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


async def test_kcat_consumes_a_topic_with_key_and_cloudevents_headers(kcat, infra, prefix):
    sent = await publish_events(infra.kafka_bootstrap_servers, prefix,
                                [ClientOffboarded(tenant_id="acme", client_id="c-7",
                                                  reason="left the company")])
    output = subprocess.run(
        [kcat, "-b", infra.kafka_bootstrap_servers, "-C", "-t", sent[0].topic(prefix),
         "-o", "beginning", "-e", "-q", "-f", "key=%k\\nheaders=%h\\nvalue=%s\\n"],
        capture_output=True, text=True, timeout=60, check=True).stdout
    lines = dict(line.split("=", 1) for line in output.strip().splitlines())
    headers = dict(pair.split("=", 1) for pair in lines["headers"].split(","))
    assert lines["key"] == "c-7"
    assert headers["ce_id"] == sent[0].id
    assert headers["ce_type"] == "coaching.ClientOffboarded.v1"
    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_tenant"] == "acme"
    assert headers["ce_subject"] == "c-7"
    assert headers["content-type"] == "application/json"
    assert json.loads(lines["value"])["reason"] == "left the company"

"""The CloudEvents envelope in Kafka binary mode, and contract validation."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from coaching_shared.contracts import AssessmentCompleted, ClientEnrolled, CoachContact
from coaching_shared.events import (
    BadEvent,
    EventMessage,
    dead_letter_topic,
    derived_event_id,
    event_class,
    registered_events,
    topic_name,
    unknown_type_reason,
)


def enrolment(**overrides) -> ClientEnrolled:
    values = {"tenant_id": "acme", "client_id": "c-1", "program_id": "p-1",
              "display_name": "Ada", "email": "ada@example.com", "timezone": "Europe/Berlin",
              "coach": CoachContact(coach_id="k-1", display_name="Kim", email="kim@example.com")}
    return ClientEnrolled(**{**values, **overrides})


def test_binary_mode_headers_key_and_body():
    moment = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
    message = EventMessage.wrap(enrolment(), "/hris/acme", event_id="e-1", time=moment)
    assert message.headers() == {
        "ce_specversion": "1.0", "ce_id": "e-1", "ce_source": "/hris/acme",
        "ce_type": "coaching.ClientEnrolled.v1", "ce_time": "2026-11-27T09:30:00Z",
        "ce_subject": "c-1", "ce_tenant": "acme", "content-type": "application/json"}
    assert message.key() == b"c-1"
    assert json.loads(message.body())["email"] == "ada@example.com"
    assert message.topic("t.") == "t.coaching.enrolment"


def test_round_trip_through_kafka_form():
    original = EventMessage.wrap(enrolment(), "/hris/acme")
    read = EventMessage.from_kafka(original.headers(), original.body(), "enrolment")
    assert read.id == original.id and read.type == original.type
    assert read.time == original.time
    assert read.parse(ClientEnrolled) == enrolment()


def test_round_trip_through_outbox_document():
    original = EventMessage.wrap(enrolment(), "/hris/acme")
    assert EventMessage.from_document(original.to_document()) == original


def test_registry_knows_every_contract():
    assert event_class("coaching.ClientEnrolled.v1") is ClientEnrolled
    assert event_class("coaching.AssessmentCompleted.v1") is AssessmentCompleted
    assert event_class("coaching.Unknown.v1") is None


def test_topic_naming_rule():
    assert topic_name("goals") == "coaching.goals"
    assert dead_letter_topic("notifier", "stage.") == "stage.coaching.notifier.dlq"


def test_derived_ids_are_stable_and_distinct():
    assert derived_event_id("e-1", "a") == derived_event_id("e-1", "a")
    assert derived_event_id("e-1", "a") != derived_event_id("e-1", "b")
    assert derived_event_id("e-1", "a") != derived_event_id("e-2", "a")


@pytest.mark.parametrize(("headers", "body", "reason"), [
    ({}, b"{}", "missing CloudEvents header"),
    ({"ce_id": "1", "ce_type": "t", "ce_source": "s", "ce_specversion": "0.3"}, b"{}",
     "unsupported ce_specversion"),
    ({"ce_id": "1", "ce_type": "t", "ce_source": "s", "ce_specversion": "1.0"}, b"[1]",
     "JSON object"),
    ({"ce_id": "1", "ce_type": "t", "ce_source": "s", "ce_specversion": "1.0"}, b"\xff",
     "not JSON"),
    ({"ce_id": "1", "ce_type": "t", "ce_source": "s", "ce_specversion": "1.0",
      "ce_time": "yesterday"}, b"{}", "RFC 3339"),
])
def test_unreadable_messages_are_bad_events(headers, body, reason):
    with pytest.raises(BadEvent, match=reason):
        EventMessage.from_kafka(headers, body, "enrolment")


def test_invalid_data_names_the_field():
    message = EventMessage.wrap(enrolment(), "/hris/acme")
    broken = EventMessage.from_kafka(
        message.headers(), json.dumps({**message.data, "email": "not-an-email"}).encode(),
        "enrolment")
    with pytest.raises(BadEvent, match="email"):
        broken.parse(ClientEnrolled)


def test_envelope_and_data_must_agree_on_tenant_and_subject():
    message = EventMessage.wrap(enrolment(), "/hris/acme")
    headers = {**message.headers(), "ce_tenant": "globex"}
    with pytest.raises(BadEvent, match="ce_tenant"):
        EventMessage.from_kafka(headers, message.body(), "enrolment").parse(ClientEnrolled)


def test_unknown_fields_are_ignored_for_additive_changes():
    message = EventMessage.wrap(enrolment(), "/hris/acme")
    newer = json.dumps({**message.data, "cost_center": "CC-9"}).encode()
    event = EventMessage.from_kafka(message.headers(), newer, "enrolment").parse(ClientEnrolled)
    assert event.client_id == "c-1"


def test_unknown_timezone_is_rejected():
    with pytest.raises(ValueError, match="timezone"):
        enrolment(timezone="Mars/Olympus")


def test_every_registered_type_is_known():
    assert all(unknown_type_reason(ce_type) is None for ce_type in registered_events())


@pytest.mark.parametrize(("ce_type", "reason"), [
    ("coaching.ClientEnrolled.v2",
     "unsupported version of coaching.ClientEnrolled: 'coaching.ClientEnrolled.v2' (known: v1)"),
    ("coaching.ClientEnrolled.v1.beta",
     "unsupported version of coaching.ClientEnrolled: 'coaching.ClientEnrolled.v1.beta' "
     "(known: v1)"),
    ("coaching.ClientEnrolled",
     "unsupported version of coaching.ClientEnrolled: 'coaching.ClientEnrolled' (known: v1)"),
    ("coaching.ClientTeleported.v1", "unknown event type 'coaching.ClientTeleported.v1'"),
    ("coaching.clientenrolled.v1", "unknown event type 'coaching.clientenrolled.v1'"),
    ("com.acme.hris.ClientEnrolled.v1", "unknown event type 'com.acme.hris.ClientEnrolled.v1'"),
    ("", "unknown event type ''"),
])
def test_unknown_types_and_versions_are_named(ce_type, reason):
    assert unknown_type_reason(ce_type) == reason

"""The notifier's rules: routing, preferences, quiet hours, retries, webhook signing."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, time, timedelta

import pytest
from coaching_notifier.domain import (
    Audience,
    Channel,
    DeliveryStatus,
    Preferences,
    QuietHours,
    RetryPolicy,
    SendOutcome,
    TenantDefaults,
    WebhookSubscriptionRequest,
    chosen_channels,
    cloudevent_body,
    next_step,
    notification_id,
    planned_delivery,
    recipients_of,
    rotated_secrets,
    send_after,
    signature_header,
    subscribed,
    valid_secrets,
    webhook_headers,
    webhook_status_retryable,
    webhook_url_problem,
)
from coaching_notifier.settings import NotifierSettings
from coaching_shared.contracts import CheckInDue, ClientAtRisk, FeedbackGiven, GoalAchieved
from coaching_shared.events import EventMessage
from pydantic import ValidationError

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
NIGHT = QuietHours(start=time(21, 0), end=time(7, 0))
NO_PREFERENCES = Preferences()
NO_DEFAULTS = TenantDefaults()


def checkin_due() -> CheckInDue:
    return CheckInDue(tenant_id="acme", client_id="c-1", checkin_id="ci-1", goal_id="g-1",
                      period=1, due_at=NOW, respond_by=NOW + timedelta(days=2))


# -- quiet hours ------------------------------------------------------------------------------


@pytest.mark.parametrize(("utc", "zone", "expected"), [
    # 22:30 in Berlin (UTC+1 in winter): ends 07:00 Berlin next day = 06:00 UTC.
    (datetime(2026, 11, 30, 21, 30, tzinfo=UTC), "Europe/Berlin",
     datetime(2026, 12, 1, 6, 0, tzinfo=UTC)),
    # 02:00 in Berlin: the same night's end, the same local day.
    (datetime(2026, 12, 1, 1, 0, tzinfo=UTC), "Europe/Berlin",
     datetime(2026, 12, 1, 6, 0, tzinfo=UTC)),
    # 21:30 UTC is 16:30 in New York: not quiet there.
    (datetime(2026, 11, 30, 21, 30, tzinfo=UTC), "America/New_York", None),
    # 06:59:59 local is still quiet, 07:00 is not.
    (datetime(2026, 12, 1, 5, 59, 59, tzinfo=UTC), "Europe/Berlin",
     datetime(2026, 12, 1, 6, 0, tzinfo=UTC)),
    (datetime(2026, 12, 1, 6, 0, tzinfo=UTC), "Europe/Berlin", None),
    # Singapore (UTC+8): 23:00 local ends 07:00 local = 23:00 UTC the same UTC day.
    (datetime(2026, 11, 30, 15, 0, tzinfo=UTC), "Asia/Singapore",
     datetime(2026, 11, 30, 23, 0, tzinfo=UTC)),
])
def test_quiet_hours_end_in_the_persons_timezone(utc, zone, expected):
    assert NIGHT.deferred_until(utc, zone) == expected


def test_quiet_hours_across_a_dst_change_end_at_local_wall_clock_time():
    # The night of 28/29 March 2026: Berlin moves from UTC+1 to UTC+2.
    ends = NIGHT.deferred_until(datetime(2026, 3, 28, 22, 0, tzinfo=UTC), "Europe/Berlin")
    assert ends == datetime(2026, 3, 29, 5, 0, tzinfo=UTC)  # 07:00 summer time


def test_daytime_quiet_hours_and_empty_quiet_hours():
    lunch = QuietHours(start=time(12, 0), end=time(13, 0))
    assert lunch.deferred_until(NOW, "UTC") == NOW.replace(hour=13)
    assert lunch.deferred_until(NOW.replace(hour=13), "UTC") is None
    assert QuietHours(start=time(9), end=time(9)).deferred_until(NOW, "UTC") is None


def test_quiet_hours_hold_email_but_not_the_inbox():
    late = datetime(2026, 11, 30, 21, 30, tzinfo=UTC)
    preferences = Preferences(quiet_hours=NIGHT)
    assert send_after(Channel.EMAIL, late, "Europe/Berlin", preferences, NO_DEFAULTS) == \
        datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
    assert send_after(Channel.INBOX, late, "Europe/Berlin", preferences, NO_DEFAULTS) == late
    # The tenant's quiet hours apply when the person set none.
    assert send_after(Channel.EMAIL, late, "Europe/Berlin", NO_PREFERENCES,
                      TenantDefaults(quiet_hours=NIGHT)) > late
    assert send_after(Channel.EMAIL, late, "Europe/Berlin", NO_PREFERENCES, NO_DEFAULTS) == late


# -- channels and recipients ------------------------------------------------------------------


def test_person_beats_tenant_beats_built_in():
    tenant = TenantDefaults(channels={"CheckInDue": {Audience.CLIENT: [Channel.INBOX]}})
    person = Preferences(channels={"CheckInDue": [Channel.EMAIL]})
    assert chosen_channels("CheckInDue", Audience.CLIENT, NO_PREFERENCES, NO_DEFAULTS) == [
        Channel.EMAIL, Channel.INBOX]
    assert chosen_channels("CheckInDue", Audience.CLIENT, NO_PREFERENCES, tenant) == [
        Channel.INBOX]
    assert chosen_channels("CheckInDue", Audience.CLIENT, person, tenant) == [Channel.EMAIL]
    muted = Preferences(channels={"CheckInDue": []})
    assert chosen_channels("CheckInDue", Audience.CLIENT, muted, NO_DEFAULTS) == []


def test_opt_out_removes_email_only():
    opted_out = Preferences(opted_out=True)
    assert chosen_channels("CheckInDue", Audience.CLIENT, opted_out, NO_DEFAULTS) == [
        Channel.INBOX]


def test_preferences_refuse_webhooks_unknown_types_and_timezones():
    with pytest.raises(ValidationError, match="subscribed per tenant"):
        Preferences(channels={"CheckInDue": [Channel.WEBHOOK]})
    with pytest.raises(ValidationError, match="unknown event type"):
        Preferences(channels={"CheckInDoo": [Channel.EMAIL]})
    with pytest.raises(ValidationError, match="unknown IANA timezone"):
        Preferences(timezone="Mars/Olympus")
    with pytest.raises(ValidationError, match="subscriptions"):
        TenantDefaults(channels={"CheckInDue": {Audience.CLIENT: [Channel.WEBHOOK]}})


def test_recipients_follow_the_route_and_the_coach_named_in_the_event():
    due = checkin_due()
    assert [(r.audience, r.person_id) for r in recipients_of(due, "coach-9")] == [
        (Audience.CLIENT, "c-1")]
    at_risk = ClientAtRisk(tenant_id="acme", client_id="c-1", coach_id="coach-2",
                           reasons=["missed_twice"], detected_at=NOW)
    assert [(r.audience, r.person_id) for r in recipients_of(at_risk, "coach-9")] == [
        (Audience.COACH, "coach-2")]
    achieved = GoalAchieved(tenant_id="acme", client_id="c-1", goal_id="g", achieved_at=NOW)
    assert [r.person_id for r in recipients_of(achieved, "coach-9")] == ["c-1", "coach-9"]
    assert [r.person_id for r in recipients_of(achieved, None)] == ["c-1"]
    feedback = FeedbackGiven(tenant_id="acme", client_id="c-1", feedback_id="f", coach_id="k",
                             subject_kind="goal", subject_id="g")
    assert [r.person_id for r in recipients_of(feedback, None)] == ["c-1"]


def test_notification_ids_are_stable_and_distinct_per_recipient_and_channel():
    first = notification_id("acme", "evt-1", "c-1", Channel.EMAIL)
    assert first == notification_id("acme", "evt-1", "c-1", Channel.EMAIL)
    assert len({first, notification_id("acme", "evt-1", "c-1", Channel.INBOX),
                notification_id("acme", "evt-1", "c-2", Channel.EMAIL),
                notification_id("globex", "evt-1", "c-1", Channel.EMAIL)}) == 4


def test_planned_delivery_records_deferral_and_skips():
    message = EventMessage.wrap(checkin_due(), "/feedback", event_id="evt-1")
    later = NOW + timedelta(hours=3)
    deferred = planned_delivery(
        tenant_id="acme", client_id="c-1", cause=message, event_type="CheckInDue",
        recipient_id="c-1", audience=Audience.CLIENT, channel=Channel.EMAIL, now=NOW,
        due_at=later, content={"to": "a@example.com"})
    assert deferred["status"] == "pending" and deferred["deferred_until"] == later
    assert deferred["email"] == {"to": "a@example.com"}
    assert deferred["cause_type"] == "coaching.CheckInDue.v1"
    skipped = planned_delivery(
        tenant_id="acme", client_id="c-1", cause=message, event_type="CheckInDue",
        recipient_id="c-1", audience=Audience.CLIENT, channel=Channel.EMAIL, now=NOW,
        due_at=NOW, content={}, skip_reason="no email address known")
    assert skipped["status"] == "skipped" and "deferred_until" not in skipped


# -- retries ----------------------------------------------------------------------------------


def test_backoff_doubles_is_capped_and_jittered_in_the_upper_half():
    policy = RetryPolicy(max_attempts=8, backoff_seconds=5, backoff_max_seconds=60)
    highest = [policy.delay(n, uniform=lambda low, high: high).total_seconds()
               for n in range(1, 6)]
    lowest = [policy.delay(n, uniform=lambda low, high: low).total_seconds()
              for n in range(1, 6)]
    assert highest == [5, 10, 20, 40, 60]
    assert lowest == [2.5, 5, 10, 20, 30]


def test_next_step_after_an_attempt():
    policy = RetryPolicy(max_attempts=3, backoff_seconds=1, backoff_max_seconds=10)
    transient = SendOutcome(False, True, "HTTP 503")
    assert next_step(SendOutcome(True, False, "HTTP 200"), 1, policy) is DeliveryStatus.SENT
    assert next_step(transient, 2, policy) is DeliveryStatus.PENDING
    assert next_step(transient, 3, policy) is DeliveryStatus.FAILED
    assert next_step(SendOutcome(False, False, "HTTP 404"), 1, policy) is DeliveryStatus.FAILED


@pytest.mark.parametrize(("status", "retryable"), [
    (500, True), (502, True), (503, True), (408, True), (429, True),
    (400, False), (401, False), (404, False), (410, False)])
def test_which_receiver_answers_are_retried(status, retryable):
    assert webhook_status_retryable(status) is retryable


# -- webhooks ---------------------------------------------------------------------------------


def test_signature_is_hmac_sha256_over_timestamp_and_body():
    body = b'{"id":"evt-1"}'
    headers = webhook_headers("n-1", ["whsec_a"], NOW, body)
    timestamp = headers["Coaching-Webhook-Timestamp"]
    expected = hmac.new(b"whsec_a", f"{timestamp}.".encode() + body,
                        hashlib.sha256).hexdigest()
    assert timestamp == str(int(NOW.timestamp()))
    assert headers["Coaching-Webhook-Signature"] == f"v1={expected}"
    assert headers["Coaching-Webhook-Id"] == "n-1"
    assert signature_header(["whsec_a", "whsec_b"], 1, body).count("v1=") == 2


def test_rotation_keeps_two_secrets_during_the_overlap_only():
    original = [{"secret": "whsec_old", "created_at": NOW, "retires_at": None}]
    rotated = rotated_secrets(original, "whsec_new", NOW, timedelta(hours=24))
    assert valid_secrets(rotated, NOW) == ["whsec_new", "whsec_old"]
    assert valid_secrets(rotated, NOW + timedelta(hours=24)) == ["whsec_new"]
    again = rotated_secrets(rotated, "whsec_newest", NOW + timedelta(hours=1),
                            timedelta(hours=24))
    assert valid_secrets(again, NOW + timedelta(hours=1)) == ["whsec_newest", "whsec_new"]
    assert valid_secrets(rotated_secrets(original, "whsec_x", NOW, timedelta(0)), NOW) == [
        "whsec_x"]


@pytest.mark.parametrize(("url", "problem"), [
    ("https://hooks.example.com/coaching", None),
    ("http://127.0.0.1:9000/hook", None),
    ("http://localhost/hook", None),
    ("http://hooks.example.com/coaching", "must use https"),
    ("ftp://hooks.example.com/", "must be an absolute http(s) URL"),
    ("https://user:pw@hooks.example.com/", "must not carry credentials; the signature "
                                           "authenticates the platform"),
])
def test_webhook_urls(url, problem):
    assert webhook_url_problem(url, allow_http_loopback=True) == problem


def test_http_loopback_can_be_forbidden():
    assert webhook_url_problem("http://127.0.0.1/h", allow_http_loopback=False) == \
        "must use https"


def test_subscriptions_name_known_event_types():
    assert WebhookSubscriptionRequest(url="https://x.example/h",
                                      event_types=["CheckInDue", "CheckInDue"]).event_types == [
        "CheckInDue"]
    with pytest.raises(ValidationError, match="unknown event type"):
        WebhookSubscriptionRequest(url="https://x.example/h", event_types=["Nope"])
    assert subscribed("CheckInDue", {"event_types": ["*"]})
    assert not subscribed("GoalSet", {"event_types": ["CheckInDue"]})


def test_webhook_body_is_a_structured_cloudevent():
    message = EventMessage.wrap(checkin_due(), "/feedback", event_id="evt-1", time=NOW)
    body = cloudevent_body(message)
    assert body.startswith(b'{"specversion":"1.0","id":"evt-1","type":"coaching.CheckInDue.v1"')
    assert b'"time":"2026-11-30T12:00:00Z"' in body and b'"checkin_id":"ci-1"' in body


def test_a_lease_shorter_than_a_send_is_refused():
    with pytest.raises(ValidationError, match="must exceed the longest send timeout"):
        NotifierSettings(delivery_lease_seconds=10, smtp_timeout_seconds=30)

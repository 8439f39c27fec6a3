"""What notifications say: built-in texts, locales, escaping, overrides, the email itself."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy

import pytest
from coaching_notifier.channels import email_message
from coaching_notifier.domain import ROUTES, Audience
from coaching_notifier.messages import (
    BUILT_IN,
    TemplateOverride,
    check_override,
    locales_for,
    message_context,
    notification_link,
    render_notification,
)

DATA = {"checkin_id": "ci-7", "goal_id": "g-1", "period": 3,
        "due_at": "2026-11-30T08:00:00Z", "respond_by": "2026-12-02T08:00:00Z",
        "client_id": "c-1"}


def context(locale: str = "en", timezone: str = "Europe/Berlin",
            name: str = "Ada Lovelace", data: dict | None = None,
            event_type: str = "CheckInDue") -> dict:
    return message_context(event_type=event_type, data=data or DATA,
                           recipient={"display_name": name}, client={"display_name": name},
                           coach={"display_name": "Grace"}, timezone=timezone, locale=locale,
                           app_url="https://coach.example/")


def test_every_routed_audience_has_an_english_and_a_german_text():
    routed = {(event_type, audience) for event_type, audiences in ROUTES.items()
              for audience in audiences}
    assert routed == set(BUILT_IN)
    assert all({"en", "de"} <= set(texts) for texts in BUILT_IN.values())


def test_checkin_reminder_in_english_with_local_times_and_a_link():
    message = render_notification("CheckInDue", Audience.CLIENT, context(), "en", None)
    assert message.subject == "Time for your check-in"
    assert "check-in #3 is due Mon 30 Nov 2026, 09:00 (Europe/Berlin)" in message.text
    assert "respond by Wed 02 Dec 2026, 09:00 (Europe/Berlin)" in message.text
    assert message.link == "https://coach.example/check-ins/ci-7"
    assert message.text.endswith("Open in the coaching app: https://coach.example/check-ins/ci-7\n")
    assert '<a href="https://coach.example/check-ins/ci-7">' in message.html


def test_locale_falls_back_from_region_to_language_to_english():
    assert locales_for("de-AT") == ["de-AT", "de", "en"]
    assert locales_for(None) == ["en"]
    german = render_notification("CheckInDue", Audience.CLIENT, context("de-AT"), "de-AT", None)
    assert german.subject == "Zeit für Ihren Check-in"
    assert "fällig am 30.11.2026 um 09:00 (Europe/Berlin)" in german.text
    assert 'lang="de"' in german.html
    french = render_notification("CheckInDue", Audience.CLIENT, context("fr"), "fr", None)
    assert french.subject == "Time for your check-in"


def test_html_escapes_names_and_values():
    message = render_notification("CheckInDue", Audience.CLIENT,
                                  context(name='<script>alert("x")</script>'), "en", None)
    assert "<script>" not in message.html
    assert "&lt;script&gt;" in message.html
    assert '<script>alert("x")</script>' in message.text  # plain text stays as it is


def test_every_built_in_text_renders_with_its_events_fields():
    samples = {
        "CheckInDue": DATA, "CheckInMissed": DATA,
        "CheckInCompleted": {**DATA, "confidence": 4},
        "GoalSuggested": {"goal_id": "g", "title": "Lead a project"},
        "GoalSet": {"goal_id": "g", "title": "Lead a project", "due_date": "2027-03-31"},
        "GoalAchieved": {"goal_id": "g", "achieved_at": "2027-03-01T10:00:00Z"},
        "GoalAbandoned": {"goal_id": "g", "abandoned_at": "2027-03-01T10:00:00Z"},
        "ProgressReviewed": {"review_id": "r", "adherence": 0.75},
        "ClientAtRisk": {"client_id": "c-1", "reasons": ["missed_twice", "low_confidence"]},
        "AssessmentAssigned": {"assignment_id": "a", "instrument_title": "Work interests",
                               "item_count": 30},
    }
    for (event_type, audience), texts in BUILT_IN.items():
        for locale in texts:
            data = samples.get(event_type, {})
            message = render_notification(event_type, audience,
                                          context(locale, data=data, event_type=event_type),
                                          locale, None)
            assert message.subject and message.body and "{{" not in message.text
    review = render_notification("ProgressReviewed", Audience.CLIENT,
                                 context(data=samples["ProgressReviewed"],
                                         event_type="ProgressReviewed"), "en", None)
    assert "75% of your check-ins" in review.text


def test_tenant_override_wins_and_a_broken_one_falls_back():
    override = TemplateOverride(subject="Check-in {{ event.period }}",
                                text="Hi {{ recipient.name }}!\n\nSee you.")
    message = render_notification("CheckInDue", Audience.CLIENT, context(), "en", override)
    assert message.subject == "Check-in 3"
    assert message.html.count("<p>") == 3  # two paragraphs and the link
    unknown_variable = TemplateOverride(subject="{{ nothing.here }}", text="x")
    fallback = render_notification("CheckInDue", Audience.CLIENT, context(), "en",
                                   unknown_variable)
    assert fallback.subject == "Time for your check-in"


def test_overrides_run_sandboxed_and_html_overrides_are_autoescaped():
    escape_attempt = TemplateOverride(
        subject="{{ ''.__class__.__mro__ }}", text="x")
    assert render_notification("CheckInDue", Audience.CLIENT, context(), "en",
                               escape_attempt).subject == "Time for your check-in"
    custom_html = TemplateOverride(subject="s", text="t",
                                   html="<h1>{{ recipient.name }}</h1>")
    message = render_notification("CheckInDue", Audience.CLIENT, context(name="<i>A</i>"),
                                  "en", custom_html)
    assert message.html == "<h1>&lt;i&gt;A&lt;/i&gt;</h1>"


def test_override_syntax_is_checked_when_saved():
    assert check_override(TemplateOverride(subject="ok {{ event.period }}", text="t")) is None
    problem = check_override(TemplateOverride(subject="s", text="{% for %}"))
    assert problem is not None and problem.startswith("text:")


@pytest.mark.parametrize(("event_type", "data", "path"), [
    ("GoalSet", {"goal_id": "g-2"}, "/goals/g-2"),
    ("FeedbackGiven", {"feedback_id": "f-1"}, "/feedback/f-1"),
    ("ClientAtRisk", {"client_id": "c-9"}, "/clients/c-9"),
    ("ClientEnrolled", {}, "/inbox"),
])
def test_links_point_to_the_right_page(event_type, data, path):
    assert notification_link("https://coach.example", event_type, data) == \
        f"https://coach.example{path}"


def test_email_carries_both_parts_and_a_stable_message_id():
    message = render_notification("CheckInDue", Audience.CLIENT, context(), "en", None)
    delivery = {"notification_id": "n-1", "event_type": "CheckInDue",
                "email": {"to": "ada@example.com", "to_name": "Ada Lovelace",
                          "subject": message.subject, "text": message.text,
                          "html": message.html}}
    email = email_message(delivery, "Coaching <n@coaching.example>", "https://coach.example",
                          datetime(2026, 11, 30, tzinfo=UTC))
    parsed = message_from_bytes(email.as_bytes(), policy=policy.default)
    assert parsed["Message-ID"] == "<n-1@notifier.coaching>"
    assert parsed["To"] == "Ada Lovelace <ada@example.com>"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed.get_body(("plain",)).get_content() == message.text
    assert "<p>Hello Ada Lovelace,</p>" in parsed.get_body(("html",)).get_content()

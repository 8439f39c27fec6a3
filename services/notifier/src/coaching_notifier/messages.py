"""What notifications say: built-in texts per event type, audience and locale; rendering.

Texts are Jinja2 templates rendered in a sandbox (tenant admins may override them, and an
override must not reach into Python). Email goes out as plain text and HTML; the HTML is built
with autoescaping, so names and values can never inject markup. A locale falls back from
`de-AT` to `de` to `en`. Pure functions: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import StrictUndefined, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field

from coaching_notifier.domain import Audience

DEFAULT_LOCALE = "en"

_TEXT = SandboxedEnvironment(autoescape=False, undefined=StrictUndefined,
                             keep_trailing_newline=False)
_HTML = SandboxedEnvironment(autoescape=True, undefined=StrictUndefined)

_HTML_LAYOUT = _HTML.from_string(
    "<!doctype html>\n<html lang=\"{{ locale }}\"><head><meta charset=\"utf-8\">"
    "<title>{{ subject }}</title></head>\n"
    "<body style=\"font-family:sans-serif;line-height:1.5;max-width:36em\">\n"
    "{% for paragraph in paragraphs %}<p>{{ paragraph }}</p>\n{% endfor %}"
    "{% if link %}<p><a href=\"{{ link }}\">{{ link_label }}</a></p>\n{% endif %}"
    "</body></html>\n")


@dataclass(frozen=True, slots=True)
class Text:
    subject: str
    body: str  # paragraphs separated by blank lines


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    subject: str
    text: str  # the email's plain-text part: body and link
    html: str
    body: str  # the message alone, for the inbox (which shows the link as a button)
    link: str | None


class TemplateOverride(BaseModel):
    """A tenant's own wording for one event type and locale (body of PUT /v1/templates)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subject: str = Field(min_length=1, max_length=300)
    text: str = Field(min_length=1, max_length=20_000,
                      description="plain text; paragraphs separated by blank lines")
    html: str | None = Field(default=None, max_length=50_000,
                             description="full HTML body; autoescaped; derived from text "
                             "when absent")


LINK_LABEL = {"en": "Open in the coaching app", "de": "In der Coaching-App öffnen"}

# (event type, audience) -> locale -> text. Variables: recipient, client, event, link, local().
BUILT_IN: dict[tuple[str, Audience], dict[str, Text]] = {
    ("ClientEnrolled", Audience.CLIENT): {
        "en": Text("Welcome to your coaching program",
                   "Hello {{ recipient.name }},\n\nyou are now part of your organisation's "
                   "coaching program. You will start with a short intake assessment; your "
                   "coach will then work with you on goals that fit your strengths."),
        "de": Text("Willkommen in Ihrem Coaching-Programm",
                   "Hallo {{ recipient.name }},\n\nSie sind jetzt Teil des Coaching-Programms "
                   "Ihrer Organisation. Zu Beginn steht eine kurze Einstiegsbefragung; danach "
                   "erarbeitet Ihr Coach mit Ihnen Ziele, die zu Ihren Stärken passen."),
    },
    ("CoachAssigned", Audience.CLIENT): {
        "en": Text("You have a coach",
                   "Hello {{ recipient.name }},\n\n{{ coach.name }} is now your coach."),
        "de": Text("Ihr Coach steht fest",
                   "Hallo {{ recipient.name }},\n\n{{ coach.name }} ist jetzt Ihr Coach."),
    },
    ("CoachAssigned", Audience.COACH): {
        "en": Text("New client: {{ client.name }}",
                   "Hello {{ recipient.name }},\n\n{{ client.name }} has been assigned to you. "
                   "Their intake results will appear in your caseload once available."),
        "de": Text("Neue Klientin / neuer Klient: {{ client.name }}",
                   "Hallo {{ recipient.name }},\n\n{{ client.name }} wurde Ihnen zugeordnet. "
                   "Die Ergebnisse der Einstiegsbefragung erscheinen in Ihrer Übersicht, "
                   "sobald sie vorliegen."),
    },
    ("AssessmentAssigned", Audience.CLIENT): {
        "en": Text("New assessment: {{ event.instrument_title }}",
                   "Hello {{ recipient.name }},\n\nplease complete "
                   "\"{{ event.instrument_title }}\" ({{ event.item_count }} questions). "
                   "There are no right or wrong answers; answer as you usually are, not as "
                   "you would like to be."),
        "de": Text("Neue Befragung: {{ event.instrument_title }}",
                   "Hallo {{ recipient.name }},\n\nbitte füllen Sie „{{ event.instrument_title }}“ "
                   "aus ({{ event.item_count }} Fragen). Es gibt keine richtigen oder falschen "
                   "Antworten; antworten Sie so, wie Sie gewöhnlich sind, nicht wie Sie gern "
                   "wären."),
    },
    ("AssessmentCompleted", Audience.CLIENT): {
        "en": Text("Your assessment results are ready",
                   "Hello {{ recipient.name }},\n\nthank you for completing the assessment. "
                   "Your strengths and development areas are ready to review; goal "
                   "suggestions will follow."),
        "de": Text("Ihre Auswertung liegt vor",
                   "Hallo {{ recipient.name }},\n\ndanke, dass Sie die Befragung abgeschlossen "
                   "haben. Ihre Stärken und Entwicklungsfelder stehen bereit; Zielvorschläge "
                   "folgen."),
    },
    ("GoalSuggested", Audience.CLIENT): {
        "en": Text("A goal suggestion for you: {{ event.title }}",
                   "Hello {{ recipient.name }},\n\nbased on your assessment we suggest the "
                   "goal \"{{ event.title }}\". Review it with your coach and make it yours."),
        "de": Text("Ein Zielvorschlag für Sie: {{ event.title }}",
                   "Hallo {{ recipient.name }},\n\nauf Grundlage Ihrer Auswertung schlagen wir "
                   "das Ziel „{{ event.title }}“ vor. Besprechen Sie es mit Ihrem Coach und "
                   "machen Sie es zu Ihrem eigenen."),
    },
    ("GoalSet", Audience.CLIENT): {
        "en": Text("Your goal is set: {{ event.title }}",
                   "Hello {{ recipient.name }},\n\nyour goal \"{{ event.title }}\" is active "
                   "until {{ event.due_date }}. Regular check-ins will help you keep track."),
        "de": Text("Ihr Ziel steht: {{ event.title }}",
                   "Hallo {{ recipient.name }},\n\nIhr Ziel „{{ event.title }}“ läuft bis "
                   "{{ event.due_date }}. Regelmäßige Check-ins helfen Ihnen, dranzubleiben."),
    },
    ("GoalSet", Audience.COACH): {
        "en": Text("{{ client.name }} set a goal",
                   "{{ client.name }} set the goal \"{{ event.title }}\" "
                   "(due {{ event.due_date }})."),
        "de": Text("{{ client.name }} hat ein Ziel gesetzt",
                   "{{ client.name }} hat das Ziel „{{ event.title }}“ gesetzt "
                   "(fällig am {{ event.due_date }})."),
    },
    ("GoalAchieved", Audience.CLIENT): {
        "en": Text("Goal achieved - well done!",
                   "Hello {{ recipient.name }},\n\nyou reached your goal. Take a moment to "
                   "reflect on what made the difference, and talk with your coach about "
                   "what comes next."),
        "de": Text("Ziel erreicht - herzlichen Glückwunsch!",
                   "Hallo {{ recipient.name }},\n\nSie haben Ihr Ziel erreicht. Halten Sie kurz "
                   "fest, was den Unterschied gemacht hat, und besprechen Sie mit Ihrem Coach "
                   "die nächsten Schritte."),
    },
    ("GoalAchieved", Audience.COACH): {
        "en": Text("{{ client.name }} achieved a goal",
                   "{{ client.name }} achieved a goal on {{ local(event.achieved_at) }}."),
        "de": Text("{{ client.name }} hat ein Ziel erreicht",
                   "{{ client.name }} hat am {{ local(event.achieved_at) }} ein Ziel "
                   "erreicht."),
    },
    ("GoalAbandoned", Audience.COACH): {
        "en": Text("{{ client.name }} abandoned a goal",
                   "{{ client.name }} abandoned a goal on {{ local(event.abandoned_at) }}. "
                   "A conversation about what got in the way may help."),
        "de": Text("{{ client.name }} hat ein Ziel aufgegeben",
                   "{{ client.name }} hat am {{ local(event.abandoned_at) }} ein Ziel "
                   "aufgegeben. Ein Gespräch darüber, was im Weg stand, kann helfen."),
    },
    ("CheckInDue", Audience.CLIENT): {
        "en": Text("Time for your check-in",
                   "Hello {{ recipient.name }},\n\nyour check-in #{{ event.period }} is due "
                   "{{ local(event.due_at) }}. It takes a few minutes: record your KPIs and "
                   "how confident you feel.\n\nPlease respond by "
                   "{{ local(event.respond_by) }}."),
        "de": Text("Zeit für Ihren Check-in",
                   "Hallo {{ recipient.name }},\n\nIhr Check-in Nr. {{ event.period }} ist "
                   "fällig am {{ local(event.due_at) }}. Es dauert nur wenige Minuten: "
                   "Tragen Sie Ihre Kennzahlen ein und wie zuversichtlich Sie sind.\n\n"
                   "Bitte antworten Sie bis {{ local(event.respond_by) }}."),
    },
    ("CheckInCompleted", Audience.COACH): {
        "en": Text("{{ client.name }} completed a check-in",
                   "{{ client.name }} completed check-in #{{ event.period }} "
                   "(confidence {{ event.confidence }}/5)."),
        "de": Text("{{ client.name }} hat einen Check-in abgeschlossen",
                   "{{ client.name }} hat Check-in Nr. {{ event.period }} abgeschlossen "
                   "(Zuversicht {{ event.confidence }}/5)."),
    },
    ("CheckInMissed", Audience.CLIENT): {
        "en": Text("You missed a check-in",
                   "Hello {{ recipient.name }},\n\ncheck-in #{{ event.period }}, due "
                   "{{ local(event.due_at) }}, was not submitted. The next one is a fresh "
                   "start; your coach is there if something is in the way."),
        "de": Text("Ein Check-in wurde verpasst",
                   "Hallo {{ recipient.name }},\n\nCheck-in Nr. {{ event.period }}, fällig am "
                   "{{ local(event.due_at) }}, wurde nicht abgegeben. Der nächste ist ein "
                   "neuer Anfang; Ihr Coach hilft, wenn etwas im Weg steht."),
    },
    ("CheckInMissed", Audience.COACH): {
        "en": Text("{{ client.name }} missed a check-in",
                   "{{ client.name }} missed check-in #{{ event.period }} "
                   "(due {{ local(event.due_at) }})."),
        "de": Text("{{ client.name }} hat einen Check-in verpasst",
                   "{{ client.name }} hat Check-in Nr. {{ event.period }} verpasst "
                   "(fällig am {{ local(event.due_at) }})."),
    },
    ("ProgressReviewed", Audience.CLIENT): {
        "en": Text("Your progress review",
                   "Hello {{ recipient.name }},\n\nyour progress review is ready: you "
                   "completed {{ (event.adherence * 100) | round | int }}% of your "
                   "check-ins in this period."),
        "de": Text("Ihr Fortschrittsbericht",
                   "Hallo {{ recipient.name }},\n\nIhr Fortschrittsbericht liegt vor: Sie "
                   "haben in diesem Zeitraum {{ (event.adherence * 100) | round | int }} % "
                   "Ihrer Check-ins abgeschlossen."),
    },
    ("ProgressReviewed", Audience.COACH): {
        "en": Text("Progress review for {{ client.name }}",
                   "{{ client.name }} completed {{ (event.adherence * 100) | round | int }}% "
                   "of the check-ins due in the review period."),
        "de": Text("Fortschrittsbericht für {{ client.name }}",
                   "{{ client.name }} hat {{ (event.adherence * 100) | round | int }} % der "
                   "fälligen Check-ins im Berichtszeitraum abgeschlossen."),
    },
    ("FeedbackGiven", Audience.CLIENT): {
        "en": Text("New feedback from your coach",
                   "Hello {{ recipient.name }},\n\nyour coach left feedback for you. You can "
                   "read it in the coaching app."),
        "de": Text("Neues Feedback von Ihrem Coach",
                   "Hallo {{ recipient.name }},\n\nIhr Coach hat Ihnen Feedback gegeben. Sie "
                   "finden es in der Coaching-App."),
    },
    ("ClientAtRisk", Audience.COACH): {
        "en": Text("{{ client.name }} may need your attention",
                   "{{ client.name }} shows signs of disengaging "
                   "({{ event.reasons | join(', ') }}). A short personal message often "
                   "helps."),
        "de": Text("{{ client.name }} braucht vielleicht Ihre Aufmerksamkeit",
                   "Bei {{ client.name }} gibt es Anzeichen nachlassender Beteiligung "
                   "({{ event.reasons | join(', ') }}). Eine kurze persönliche Nachricht hilft "
                   "oft."),
    },
}

# Where a notification's link leads, per event type (front-end routes).
_LINK_PATHS: dict[str, tuple[str, str]] = {
    "CheckInDue": ("check-ins", "checkin_id"),
    "CheckInMissed": ("check-ins", "checkin_id"),
    "CheckInCompleted": ("check-ins", "checkin_id"),
    "GoalSuggested": ("goals", "goal_id"),
    "GoalSet": ("goals", "goal_id"),
    "GoalAchieved": ("goals", "goal_id"),
    "GoalAbandoned": ("goals", "goal_id"),
    "AssessmentAssigned": ("assessments", "assignment_id"),
    "AssessmentCompleted": ("assessments", "assessment_id"),
    "FeedbackGiven": ("feedback", "feedback_id"),
    "ProgressReviewed": ("reviews", "review_id"),
}


def locales_for(locale: str | None) -> list[str]:
    """The fallback chain of a locale: `de-AT` -> `de` -> `en`."""
    chain = []
    if locale:
        chain.append(locale)
        if "-" in locale:
            chain.append(locale.split("-", 1)[0])
    chain.append(DEFAULT_LOCALE)
    return list(dict.fromkeys(chain))


def built_in_text(event_type: str, audience: Audience, locale: str | None) -> tuple[Text, str]:
    """The built-in text in the best available locale, and that locale."""
    texts = BUILT_IN[(event_type, audience)]
    for candidate in locales_for(locale):
        if candidate in texts:
            return texts[candidate], candidate
    return texts[DEFAULT_LOCALE], DEFAULT_LOCALE


def notification_link(app_url: str, event_type: str, data: Mapping[str, Any]) -> str:
    """The front-end page a notification points to."""
    base = app_url.rstrip("/")
    path = _LINK_PATHS.get(event_type)
    if path and data.get(path[1]):
        return f"{base}/{path[0]}/{data[path[1]]}"
    if event_type == "ClientAtRisk":
        return f"{base}/clients/{data.get('client_id', '')}"
    return f"{base}/inbox"


def local_time_formatter(timezone: str, locale: str):
    """A `local(value)` helper for templates: a timestamp in the recipient's time and style."""
    zone = ZoneInfo(timezone)

    def local(value: str | datetime) -> str:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        moment = moment.astimezone(zone)
        if locale.startswith("de"):
            return f"{moment:%d.%m.%Y um %H:%M} ({timezone})"
        return f"{moment:%a %d %b %Y, %H:%M} ({timezone})"

    return local


def message_context(*, event_type: str, data: Mapping[str, Any], recipient: Mapping[str, Any],
                    client: Mapping[str, Any] | None, coach: Mapping[str, Any] | None,
                    timezone: str, locale: str, app_url: str) -> dict[str, Any]:
    """What templates may use: recipient, client, coach (names), event data, link, local()."""
    return {
        "recipient": {"name": recipient.get("display_name") or "there"},
        "client": {"name": (client or {}).get("display_name") or "your client"},
        "coach": {"name": (coach or {}).get("display_name") or "your coach"},
        "event": dict(data), "event_type": event_type,
        "link": notification_link(app_url, event_type, data),
        "local": local_time_formatter(timezone, locale), "locale": locale,
    }


def render(text: Text | TemplateOverride, context: Mapping[str, Any],
           locale: str) -> RenderedMessage:
    """Subject, plain text and autoescaped HTML of a notification."""
    subject = " ".join(_TEXT.from_string(text.subject).render(context).split())
    body = text.body if isinstance(text, Text) else text.text
    plain = _TEXT.from_string(body).render(context).strip()
    paragraphs = [p.strip() for p in plain.split("\n\n") if p.strip()]
    link = context.get("link")
    label = LINK_LABEL.get(locale.split("-")[0], LINK_LABEL[DEFAULT_LOCALE])
    if isinstance(text, TemplateOverride) and text.html is not None:
        html = _HTML.from_string(text.html).render(context)
    else:
        html = _HTML_LAYOUT.render(locale=locale, subject=subject, paragraphs=paragraphs,
                                   link=link, link_label=label)
    text_part = f"{plain}\n\n{label}: {link}\n" if link else f"{plain}\n"
    return RenderedMessage(subject=subject, text=text_part, html=html, body=plain, link=link)


def render_notification(event_type: str, audience: Audience, context: Mapping[str, Any],
                        locale: str | None,
                        override: TemplateOverride | None) -> RenderedMessage:
    """Render with the tenant's override when it renders, else the built-in text."""
    text, chosen = built_in_text(event_type, audience, locale)
    if override is not None:
        try:
            return render(override, context, locale or chosen)
        except Exception:  # unknown variable, wrong type, sandbox refusal, ...
            pass  # a broken override must not cost the person their reminder
    return render(text, context, chosen)


def check_override(override: TemplateOverride) -> str | None:
    """Why an override cannot be used (a syntax error), or None when it parses."""
    for name in ("subject", "text", "html"):
        source = getattr(override, name)
        if source is None:
            continue
        try:
            (_HTML if name == "html" else _TEXT).parse(source)
        except TemplateSyntaxError as error:
            return f"{name}: {error.message} (line {error.lineno})"
    return None

"""The reflective-exercise library: prompts written for this platform, chosen by context.

Each prompt has a stable id (answers refer to it) and one context in which it is offered.
Choosing is deterministic: the same check-in always gets the same prompts, and consecutive
check-ins rotate through the context's prompts instead of repeating one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PromptContext(StrEnum):
    """The moment in the coaching journey a reflection is asked at."""

    FIRST_CHECKIN = "first_checkin"
    REGULAR = "regular"
    AFTER_MISSED = "after_missed"
    AFTER_ACHIEVEMENT = "after_achievement"
    REVIEW = "review"


@dataclass(frozen=True)
class ReflectionPrompt:
    prompt_id: str
    context: PromptContext
    text: str


_LIBRARY = (
    ReflectionPrompt("first-why", PromptContext.FIRST_CHECKIN,
                     "Why does this goal matter to you right now, in one or two sentences?"),
    ReflectionPrompt("first-picture", PromptContext.FIRST_CHECKIN,
                     "Picture the day you reach this goal. What will you be doing differently?"),
    ReflectionPrompt("first-support", PromptContext.FIRST_CHECKIN,
                     "Who or what could make this goal easier, and how will you ask for it?"),
    ReflectionPrompt("regular-progress", PromptContext.REGULAR,
                     "What moved you forward since the last check-in, however small?"),
    ReflectionPrompt("regular-energy", PromptContext.REGULAR,
                     "Which activity for this goal gave you energy, and which drained it?"),
    ReflectionPrompt("regular-next", PromptContext.REGULAR,
                     "What is the one action with the most impact you can take before the "
                     "next check-in?"),
    ReflectionPrompt("regular-learning", PromptContext.REGULAR,
                     "What did you learn about the way you work on this goal?"),
    ReflectionPrompt("missed-context", PromptContext.AFTER_MISSED,
                     "The last check-in slipped by. What got in the way, without judging it?"),
    ReflectionPrompt("missed-restart", PromptContext.AFTER_MISSED,
                     "What would make restarting easy this week: a smaller step, a different "
                     "time, a reminder?"),
    ReflectionPrompt("missed-fit", PromptContext.AFTER_MISSED,
                     "Does the goal or its rhythm still fit your situation? What would you "
                     "change?"),
    ReflectionPrompt("achieved-strengths", PromptContext.AFTER_ACHIEVEMENT,
                     "Which of your strengths carried you to this result?"),
    ReflectionPrompt("achieved-keep", PromptContext.AFTER_ACHIEVEMENT,
                     "Which new habit from this goal do you want to keep, and how?"),
    ReflectionPrompt("achieved-next", PromptContext.AFTER_ACHIEVEMENT,
                     "Looking at what you achieved, what would a next stretch look like?"),
    ReflectionPrompt("review-pattern", PromptContext.REVIEW,
                     "Looking back over these check-ins, which pattern do you notice?"),
    ReflectionPrompt("review-obstacle", PromptContext.REVIEW,
                     "Which obstacle keeps coming back, and what is one experiment to test "
                     "against it?"),
    ReflectionPrompt("review-proud", PromptContext.REVIEW,
                     "What are you proudest of in this stretch, and who noticed it?"),
)

PROMPTS = {prompt.prompt_id: prompt for prompt in _LIBRARY}
PROMPTS_PER_CHECKIN = 2


def prompts_for(context: PromptContext) -> list[ReflectionPrompt]:
    """The library's prompts for a context, in library order."""
    return [prompt for prompt in _LIBRARY if prompt.context is context]


def choose_prompts(context: PromptContext, sequence: int,
                   count: int = PROMPTS_PER_CHECKIN) -> list[ReflectionPrompt]:
    """`count` prompts of the context, rotating with `sequence` (e.g. the check-in period)."""
    candidates = prompts_for(context)
    count = min(count, len(candidates))
    offset = (sequence * count) % len(candidates)
    return [candidates[(offset + index) % len(candidates)] for index in range(count)]


def checkin_context(period: int, previous_missed: bool) -> PromptContext:
    """The reflection context of a check-in: the first one, after a missed one, or regular."""
    if period == 1:
        return PromptContext.FIRST_CHECKIN
    if previous_missed:
        return PromptContext.AFTER_MISSED
    return PromptContext.REGULAR

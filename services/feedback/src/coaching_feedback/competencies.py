"""Competencies a client can ask raters about in a multi-rater (360) feedback round.

The ids are O*NET skill ids, the same the assessment service's skills instrument scores, so a
360 result sits next to the client's self-assessment of the same skill. The behavioural
descriptions, phrased for an observer, were written for this platform.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Competency:
    competency_id: str
    label: str
    observed_behaviour: str


_LIBRARY = (
    Competency("active_listening", "Active listening",
               "Gives people full attention, checks understanding and lets them finish."),
    Competency("speaking", "Speaking",
               "Explains things out loud so that others can follow and act on them."),
    Competency("writing", "Writing",
               "Writes messages and documents that readers understand quickly."),
    Competency("critical_thinking", "Critical thinking",
               "Weighs options on their merits and spots weak reasoning, including their own."),
    Competency("complex_problem_solving", "Complex problem solving",
               "Untangles messy problems and carries a workable solution through."),
    Competency("judgment_and_decision_making", "Judgment and decision making",
               "Makes timely decisions that take costs, benefits and people into account."),
    Competency("social_perceptiveness", "Social perceptiveness",
               "Notices how people react and adjusts to what lies behind their reactions."),
    Competency("coordination", "Coordination",
               "Aligns their work with colleagues so that joint work comes together."),
    Competency("persuasion", "Persuasion",
               "Brings others round to a view or a change with sound arguments."),
    Competency("negotiation", "Negotiation",
               "Reconciles differing interests and reaches agreements people keep."),
    Competency("instructing", "Instructing",
               "Helps others learn how to do something, patiently and clearly."),
    Competency("monitoring", "Monitoring",
               "Keeps track of how work is going and corrects course early."),
    Competency("time_management", "Time management",
               "Manages their own time and others' well; meets commitments."),
    Competency("management_of_personnel_resources", "Leading people",
               "Motivates, develops and directs people, and matches work to strengths."),
)

COMPETENCIES: dict[str, Competency] = {c.competency_id: c for c in _LIBRARY}

"""Demo step: one client completes the skills, personality and interest instruments over HTTP.

The answers come from a persona (a people-minded team lead who is new to budgets and
technology) with a little seeded noise, so they look like a real person's and are the same
on every run. Partial answers are saved first and the rest submitted with a fixed
Idempotency-Key: a second `make up` returns the same results and publishes nothing new.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import httpx

from demo_steps import Demo

CLIENT = "client-01"
PAGE = 25
# The persona, per instrument: the level (1-5) each scale's answers centre on.
SKILL_PROFICIENCY = {"speaking": 4.6, "active_listening": 4.4, "social_perceptiveness": 4.3,
                     "coordination": 4.2, "instructing": 4.0, "writing": 3.8,
                     "programming": 1.4, "management_of_financial_resources": 1.8,
                     "systems_evaluation": 2.2, "negotiation": 2.4}
SKILL_IMPORTANCE = {"management_of_personnel_resources": 5.0, "negotiation": 4.7,
                    "management_of_financial_resources": 4.6, "judgment_and_decision_making": 4.6,
                    "time_management": 4.4, "systems_evaluation": 4.0, "speaking": 4.2,
                    "installation": 1.2, "repairing": 1.1, "equipment_maintenance": 1.2}
BIG_FIVE = {"extraversion": 4.1, "agreeableness": 4.0, "conscientiousness": 3.3,
            "emotional_stability": 2.6, "intellect": 3.8}
INTERESTS = {"social": 4.4, "enterprising": 4.0, "artistic": 3.3, "investigative": 2.9,
             "conventional": 2.1, "realistic": 1.6}


def persona_answer(rng: random.Random, level: float, reverse: bool) -> int:
    """A 1-5 answer near the persona's level (reverse-keyed items answered the other way)."""
    value = min(5, max(1, round(rng.gauss(level, 0.45))))
    return 6 - value if reverse else value


def persona_answers(definition: dict[str, Any]) -> dict[str, int]:
    """The persona's answers to every item of one built-in instrument."""
    rng = random.Random(f"{CLIENT}|{definition['instrument_id']}")
    answers = {}
    for item in definition["items"]:
        if item["response_scale"] == "importance":
            level = SKILL_IMPORTANCE.get(item["scale"], 3.2)
        elif item["response_scale"] == "proficiency":
            level = SKILL_PROFICIENCY.get(item["scale"], 3.0)
        else:
            level = {**BIG_FIVE, **INTERESTS}.get(item["scale"], 3.0)
        answers[item["item_id"]] = persona_answer(rng, level, item["keying"] == "-")
    return answers


async def complete(http: httpx.AsyncClient, demo: Demo, assignment: dict[str, Any],
                   ) -> dict[str, Any]:
    """Page through the items, save half the answers, then submit the rest."""
    base = f"{demo.urls['assessment']}/v1/clients/{CLIENT}/assignments/" \
           f"{assignment['assignment_id']}"
    me = demo.headers(CLIENT, "client")
    shown: list[dict[str, Any]] = []
    while len(shown) < assignment["item_count"]:
        page = await http.get(f"{base}/items", params={"offset": len(shown), "limit": PAGE},
                              headers=me)
        page.raise_for_status()
        shown.extend(page.json()["items"])
    definition = (await http.get(
        f"{demo.urls['assessment']}/v1/instruments/{assignment['instrument_id']}/versions/"
        f"{assignment['instrument_version']}", headers=me)).json()
    answers = persona_answers(definition)
    ids = [item["item_id"] for item in shown]
    version = assignment["instrument_version"]
    if assignment["status"] != "completed":
        half = {item_id: answers[item_id] for item_id in ids[:len(ids) // 2]}
        saved = await http.put(f"{base}/answers", headers=me,
                               json={"instrument_version": version, "answers": half})
        saved.raise_for_status()
    rest = {item_id: answers[item_id] for item_id in ids[len(ids) // 2:]}
    submitted = await http.post(
        f"{base}/submission", json={"instrument_version": version, "answers": rest},
        headers={**me, "Idempotency-Key": f"demo-{CLIENT}-{assignment['instrument_id']}"})
    submitted.raise_for_status()
    return submitted.json()


def describe(result: dict[str, Any]) -> None:
    print(f"  {result['instrument_title']} (v{result['instrument_version']}):")
    for kind, title in (("strengths", "strengths"), ("development_areas", "development")):
        for finding in result[kind]:
            print(f"    {title:<12} {finding['label']}: {finding['reason']}")
    for code in result["codes"]:
        shown = code["code"] or " / ".join(code["codes"]) + " (tied)"
        ranking = ", ".join(f"{r['letter']}={r['score']:g}" for r in code["ranking"])
        print(f"    {code['label']:<12} {shown}   [{ranking}]")


async def run(demo: Demo) -> None:
    print(f"\n{CLIENT} completes the three assessments over the HTTP API:")
    deadline = time.monotonic() + 60
    async with demo.http() as http:
        assignments: list[dict[str, Any]] = []
        while len(assignments) < 3 and time.monotonic() < deadline:
            response = await http.get(
                f"{demo.urls['assessment']}/v1/clients/{CLIENT}/assignments",
                headers=demo.headers(CLIENT, "client"))
            assignments = response.json() if response.status_code == 200 else []
            await asyncio.sleep(0.3)
        results = [await complete(http, demo, assignment) for assignment in assignments]
    for result in results:
        describe(result)
    demo.state["assessments"] = {CLIENT: [r["assessment_id"] for r in results]}

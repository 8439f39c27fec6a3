"""Demo step: goal suggestions from the assessments, one goal accepted, its SMART check and
the client's ranked next actions.

Commands carry fixed Idempotency-Keys, so a second run shows the same goal, not a new one.
If no assessment has named development areas (yet), the step writes one goal itself.
"""

from __future__ import annotations

import asyncio
import time
from datetime import date, timedelta
from typing import Any

import httpx

from demo_steps import Demo

WAIT_SECONDS = 45


async def _goals_by_client(demo: Demo, http: httpx.AsyncClient) -> dict[str, list[dict]]:
    """Each demo client's goals that came from assessments, waiting a while for them."""
    found: dict[str, list[dict]] = {}
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        for client_id in demo.state.get("clients", {}):
            response = await http.get(f"{demo.urls['goals']}/v1/clients/{client_id}/goals",
                                      headers=demo.headers(client_id, "client"))
            drafted = [g for g in response.json() if g.get("source_assessment_id")] \
                if response.status_code == 200 else []
            if drafted:
                found[client_id] = drafted
        if found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(1)


def _print_suggestions(found: dict[str, list[dict]]) -> None:
    print("\nGoal suggestions drafted from the assessments (GoalSuggested on coaching.goals):")
    for client_id, goals in found.items():
        for goal in goals:
            levers = ", ".join(goal["levers"]) or "none"
            print(f"  {client_id:<10} [{goal['status']:<9}] {goal['title']}  "
                  f"(area {goal['development_area']}, template {goal['template_id']}, "
                  f"levers {levers})")


async def _written_goal(demo: Demo, http: httpx.AsyncClient, client_id: str) -> dict:
    """A goal the demo client writes when no assessment drafted one."""
    url = f"{demo.urls['goals']}/v1/clients/{client_id}/goals"
    today = date.today()
    body = {"title": "Lead the quarterly business review myself",
            "description": "Prepare and present the quarterly business review to the "
                           "leadership team without my manager's help",
            "kpis": [{"kpi_id": "rehearsals", "name": "Presentation rehearsals with feedback",
                      "unit": "per month", "baseline": 0, "target": 4,
                      "frequency": "monthly"}],
            "start_date": today.isoformat(),
            "due_date": (today + timedelta(weeks=12)).isoformat(),
            "relevant_to": {"kind": "aspiration", "ref": "move into a team lead role"}}
    headers = {**demo.headers(client_id, "client"), "Idempotency-Key": "demo-written-goal"}
    goal = (await http.post(url, json=body, headers=headers)).json()
    for number, (title, impact, effort) in enumerate([
            ("Ask last quarter's presenter for their deck and notes", 4, 1),
            ("Rehearse the review with a colleague and take notes", 5, 2),
            ("Rebuild the revenue charts from the raw data", 3, 4)], start=1):
        await http.post(f"{url}/{goal['goal_id']}/actions",
                        json={"title": title, "impact": impact, "effort": effort},
                        headers={**demo.headers(client_id, "client"),
                                 "Idempotency-Key": f"demo-action-{number}"})
    return goal


def _print_check(check: dict[str, Any]) -> None:
    verdict = "passes" if check["passed"] else "fails"
    print(f"  SMART check {verdict}:")
    for letter in check["letters"]:
        print(f"    {letter['letter']} {'ok  ' if letter['passed'] else 'FAIL'} "
              f"{letter['message']}")


async def run(demo: Demo) -> None:
    goals_url = demo.urls["goals"]
    async with demo.http() as http:
        found = await _goals_by_client(demo, http)
        if found:
            _print_suggestions(found)
            client_id = next(iter(found))
            goal = found[client_id][0]
        else:
            print("\nNo assessment named development areas yet: a demo client writes a goal.")
            client_id = next(iter(demo.state.get("clients", {})), "client-01")
            goal = await _written_goal(demo, http, client_id)
        headers = demo.headers(client_id, "client")
        url = f"{goals_url}/v1/clients/{client_id}/goals/{goal['goal_id']}"
        print(f"\n{client_id} accepts \"{goal['title']}\":")
        _print_check((await http.get(f"{url}/smart-check", headers=headers)).json())
        accepted = await http.post(f"{url}/accept", json={},
                                   headers={**headers, "Idempotency-Key": "demo-accept"})
        if accepted.status_code == 200:
            state = accepted.json()
            print(f"  -> {state['status']} (GoalSet published once), due {state['due_date']}, "
                  f"KPIs: " + "; ".join(f"{k['name']} {k['baseline']:g} -> {k['target']:g} "
                                        f"{k['unit']}" for k in state["kpis"]))
        else:
            print(f"  -> not accepted: {accepted.json().get('detail')}")
        ranked = (await http.get(f"{goals_url}/v1/clients/{client_id}/next-actions",
                                 headers=headers)).json()
    print(f"Next actions of {client_id}, high impact and low effort first:")
    for action in ranked:
        print(f"  {action['rank']}. [impact {action['impact']}, effort {action['effort']}, "
              f"priority {action['priority']:>2}] {action['title']}")
    demo.state["accepted_goal"] = {"client_id": client_id, "goal_id": goal["goal_id"]}
    await _rest_of_cohort_sets_goals(demo, exclude=client_id)


async def _rest_of_cohort_sets_goals(demo: Demo, exclude: str) -> None:
    """Every other demo client writes and accepts a goal, so the whole cohort has check-ins."""
    active = 0
    async with demo.http() as http:
        for client_id in demo.state.get("clients", {}):
            if client_id == exclude:
                continue
            goal = await _written_goal(demo, http, client_id)
            accepted = await http.post(
                f"{demo.urls['goals']}/v1/clients/{client_id}/goals/{goal['goal_id']}/accept",
                json={}, headers={**demo.headers(client_id, "client"),
                                  "Idempotency-Key": "demo-accept"})
            active += accepted.status_code == 200
    print(f"The other {active} clients of the cohort wrote and set a goal too (GoalSet each).")

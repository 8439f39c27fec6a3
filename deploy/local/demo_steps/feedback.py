"""Demo step: the feedback service plans a goal's check-ins, one falls due, the client submits.

Uses the goal the goals step accepted; if there is none, it publishes a GoalSet itself (as the
goals service would). Check-ins fall due on the service's clock: started with
`CLOCK_SPEED=20160` (two weeks per minute) the demo sees one within a minute; at real speed it
shows when the first one will come.
"""

from __future__ import annotations

import asyncio
import time
from datetime import date, timedelta
from typing import Any

import httpx
from coaching_shared.contracts import Direction, GoalSet, KpiSpec
from coaching_shared.events import EventMessage

from demo_steps import TENANT, Demo

WAIT_FOR_SCHEDULE_SECONDS = 30
WAIT_FOR_DUE_SECONDS = 75


def demo_goal(client_id: str) -> EventMessage:
    today = date.today()
    event = GoalSet(tenant_id=TENANT, client_id=client_id, goal_id=f"demo-goal-{client_id}",
                    title="Run a weekly one-to-one with each direct report",
                    start_date=today, due_date=today + timedelta(weeks=12),
                    kpis=[KpiSpec(kpi_id="one-to-ones", name="One-to-ones held", unit="per week",
                                  baseline=0, target=5, direction=Direction.UP)])
    return EventMessage.wrap(event, "/coaching/goals", event_id=f"demo-goalset-{client_id}")


async def _poll(fetch, seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = await fetch()
        if found:
            return found
        await asyncio.sleep(0.5)
    return None


async def run(demo: Demo) -> None:
    feedback = demo.urls["feedback"]
    accepted = demo.state.get("accepted_goal")
    client_id = accepted["client_id"] if accepted else "client-01"
    headers = demo.headers(client_id, "client")
    async with demo.http() as http:
        async def schedules() -> list[dict[str, Any]]:
            response = await http.get(f"{feedback}/v1/clients/{client_id}/schedules",
                                      headers=headers)
            return response.json() if response.status_code == 200 else []

        planned = await _poll(schedules, WAIT_FOR_SCHEDULE_SECONDS if accepted else 2)
        if not planned:
            print(f"\nNo goal of {client_id} reached the feedback service; publishing a GoalSet.")
            await demo.publish([demo_goal(client_id)])
            planned = await _poll(schedules, WAIT_FOR_SCHEDULE_SECONDS)
        print(f"\nCheck-in schedules the feedback service planned for {client_id} (GoalSet):")
        for schedule in planned or []:
            plan = schedule["plan"]
            print(f"  goal {schedule['goal_id']}: {plan['cadence']} on weekday {plan['weekday']} "
                  f"at {plan['hour']:02d}:00 {plan['timezone']}; period "
                  f"{schedule['next_period']} due {schedule['next_due_at']}")
        if not planned:
            print("  (none yet: the goal is still in flight)")
            return
        await _check_in(demo, http, client_id, headers, planned[0])


async def _check_in(demo: Demo, http: httpx.AsyncClient, client_id: str,
                    headers: dict[str, str], schedule: dict[str, Any]) -> None:
    feedback = demo.urls["feedback"]

    async def open_checkins() -> list[dict[str, Any]]:
        response = await http.get(f"{feedback}/v1/clients/{client_id}/checkins?status=open",
                                  headers=headers)
        return response.json() if response.status_code == 200 else []

    print(f"Waiting up to {WAIT_FOR_DUE_SECONDS}s for a check-in to fall due (CheckInDue) ...")
    due = await _poll(open_checkins, WAIT_FOR_DUE_SECONDS)
    if not due:
        print(f"  none yet: the next one is due {schedule['next_due_at']}. Start the feedback "
              "service with CLOCK_SPEED=20160 to let two weeks pass per minute.")
        return
    checkin = due[0]
    print(f"  check-in {checkin['checkin_id']} (goal {checkin['goal_id']}, period "
          f"{checkin['period']}) due {checkin['due_at']}, answer by {checkin['respond_by']}")
    for prompt in checkin["prompts"]:
        print(f"    reflection prompt: {prompt['text']}")
    kpis = [k["kpi_id"] for k in schedule.get("kpis", [])][:1]
    submission = {
        "confidence": 4, "progress_notes": "Held the first one-to-ones; two went well.",
        "kpi_readings": [{"kpi_id": kpi, "value": 2} for kpi in kpis],
        "blockers": ["calendar conflicts"], "wins": ["a report raised a concern early"],
        "reflections": [{"prompt_id": prompt["prompt_id"],
                         "answer": "It matters because my team grew this quarter."}
                        for prompt in checkin["prompts"][:1]]}
    response = await http.post(
        f"{feedback}/v1/checkins/{checkin['checkin_id']}/submission", json=submission,
        headers={**headers, "Idempotency-Key": f"demo-{checkin['checkin_id']}"})
    if response.status_code != 201:
        print(f"  submission refused: {response.json().get('detail')}")
        return
    done = response.json()
    print(f"  {client_id} submitted it over the API: status {done['status']}, late "
          f"{done['late']}, confidence {done['submission']['confidence']}, KPI readings "
          f"{[(r['kpi_id'], r['value']) for r in done['submission']['kpi_readings']]} "
          "(CheckInCompleted carries them to the goals service; notes and reflections stay "
          "private to the client and their coach)")

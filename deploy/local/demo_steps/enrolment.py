"""Demo step: the HRIS enrols twelve clients with three coaches; every service learns of them."""

from __future__ import annotations

import asyncio
import time

from coaching_shared.contracts import ClientEnrolled, CoachContact
from coaching_shared.events import EventMessage

from demo_steps import TENANT, Demo

COACHES = [("coach-ana", "Ana Ribeiro"), ("coach-ben", "Ben Okafor"), ("coach-chen", "Chen Wei")]
FIRST_NAMES = ["Ada", "Bruno", "Chiara", "Dev", "Elif", "Femi", "Greta", "Hiro", "Ines", "Jonas",
               "Kaia", "Luis"]
TIMEZONES = ["Europe/Berlin", "America/New_York", "Asia/Singapore"]


def demo_cohort() -> list[EventMessage]:
    """Twelve clients of a leadership program, four per coach."""
    messages = []
    for number, name in enumerate(FIRST_NAMES):
        coach_id, coach_name = COACHES[number % len(COACHES)]
        event = ClientEnrolled(
            tenant_id=TENANT, client_id=f"client-{number + 1:02d}", program_id="leaders-2027",
            display_name=f"{name} Demo", email=f"{name.lower()}@demo.example",
            timezone=TIMEZONES[number % len(TIMEZONES)], locale="en",
            coach=CoachContact(coach_id=coach_id, display_name=coach_name,
                               email=f"{coach_id}@demo.example"))
        messages.append(EventMessage.wrap(event, "/hris/demo",
                                          event_id=f"demo-enrolment-{number + 1:02d}"))
    return messages


async def run(demo: Demo) -> None:
    messages = demo_cohort()
    demo.state["clients"] = {m.subject: m.data["coach"]["coach_id"] for m in messages}
    demo.state["coaches"] = [coach_id for coach_id, _ in COACHES]
    await demo.publish(messages)
    print("\nDemo cohort enrolled by the HRIS (ClientEnrolled on coaching.enrolment):")
    deadline = time.monotonic() + 90
    async with demo.http() as http:
        caseloads: dict[str, list[str]] = {}
        while time.monotonic() < deadline:
            for coach_id in demo.state["coaches"]:
                response = await http.get(f"{demo.urls['feedback']}/v1/caseload",
                                          headers=demo.headers(coach_id, "coach"))
                caseloads[coach_id] = [c["client_id"] for c in response.json()]
            if sum(len(c) for c in caseloads.values()) >= len(messages):
                break
            await asyncio.sleep(0.5)
    for coach_id, clients in caseloads.items():
        print(f"  caseload of {coach_id:<10} {', '.join(clients)}")
    # The assessment service assigns each new client the program's instruments.
    assigned: dict[str, list[str]] = {}
    async with demo.http() as http:
        while len(assigned) < len(messages) and time.monotonic() < deadline:
            for client_id in demo.state["clients"]:
                if client_id in assigned:
                    continue
                response = await http.get(
                    f"{demo.urls['assessment']}/v1/clients/{client_id}/assignments",
                    headers=demo.headers(client_id, "client"))
                if response.status_code == 200 and len(response.json()) >= 3:
                    assigned[client_id] = [a["instrument_id"] for a in response.json()]
            await asyncio.sleep(0.3)
    print("Instruments assigned on enrolment (AssessmentAssigned on coaching.assessment):")
    for client_id in demo.state["clients"]:
        print(f"  {client_id:<10} {', '.join(assigned.get(client_id, ['(still in flight)']))}")

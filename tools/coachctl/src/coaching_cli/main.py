"""coachctl: enrol cohorts, tail streams, inspect and replay dead letters, report, mint tokens.

Everything goes through the event streams, as an integrator's tools would; connection
settings come from `--bootstrap` / `KAFKA_BOOTSTRAP_SERVERS` and `--topic-prefix` /
`TOPIC_PREFIX`.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from coaching_shared.auth import Role, mint_token
from coaching_shared.events import dead_letter_topic, topic_name
from coaching_shared.messaging import DLQ_HEADERS
from coaching_shared.settings import ServiceSettings
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from coaching_cli import cohort, contracts
from coaching_cli.kafka_io import Publisher, follow, headers_of, read_to_end
from coaching_cli.report import Observed, program_report, render_svg

app = typer.Typer(help=__doc__, no_args_is_help=True, pretty_exceptions_show_locals=False)
dlq = typer.Typer(help="Dead-letter topics: what failed, why, and replaying it.",
                  no_args_is_help=True)
app.add_typer(dlq, name="dlq")
contracts_app = typer.Typer(help="The committed integration contracts under contracts/.",
                            no_args_is_help=True)
app.add_typer(contracts_app, name="contracts")
console = Console()

STREAMS = ("enrolment", "assessment", "goals", "feedback", "notifier")
SERVICES = ("assessment", "goals", "feedback", "notifier")
Bootstrap = Annotated[str, typer.Option("--bootstrap", envvar="KAFKA_BOOTSTRAP_SERVERS",
                                        help="Kafka bootstrap servers")]
Prefix = Annotated[str, typer.Option("--topic-prefix", envvar="TOPIC_PREFIX",
                                     help="Topic prefix of the installation")]


@app.command()
def enroll(tenant: Annotated[str, typer.Option(help="Tenant id")],
           program: Annotated[str, typer.Option(help="Program id")],
           csv: Annotated[Path | None, typer.Option(help="HRIS export: client_id, display_name,"
                                                    " email, timezone, locale, coach_id, "
                                                    "coach_name, coach_email")] = None,
           demo: Annotated[int, typer.Option(help="Generate a demo cohort of this size")] = 0,
           bootstrap: Bootstrap = "127.0.0.1:9092", topic_prefix: Prefix = "") -> None:
    """Publish ClientEnrolled for a cohort. Enrolling the same people again is harmless."""
    if (csv is None) == (demo == 0):
        raise typer.BadParameter("give either --csv FILE or --demo N")
    try:
        events = (cohort.read_csv(csv, tenant, program) if csv
                  else list(cohort.demo_cohort(tenant, program, demo)))
    except cohort.CohortError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from error
    messages = [cohort.enrolment_message(event) for event in events]

    async def publish() -> None:
        async with Publisher(bootstrap) as publisher:
            with Progress(console=console) as progress:
                task = progress.add_task("enrolling", total=len(messages))
                for start in range(0, len(messages), 500):
                    chunk = messages[start:start + 500]
                    await publisher.send_events(chunk, topic_prefix)
                    progress.advance(task, len(chunk))

    asyncio.run(publish())
    console.print(f"enrolled {len(messages)} client(s) in {program} ({tenant}) on "
                  f"{topic_name('enrolment', topic_prefix)}")


@app.command()
def tail(stream: Annotated[str, typer.Argument(help=f"one of {', '.join(STREAMS)}, "
                                                    "or a topic name")],
         tenant: Annotated[str | None, typer.Option(help="Only this tenant")] = None,
         client: Annotated[str | None, typer.Option(help="Only this client")] = None,
         event_type: Annotated[str | None, typer.Option("--type",
                                                        help="Only this type, e.g. GoalSet")
                               ] = None,
         from_beginning: Annotated[bool, typer.Option(help="Start at the oldest event")] = False,
         limit: Annotated[int, typer.Option(help="Stop after this many (0: follow)")] = 0,
         bootstrap: Bootstrap = "127.0.0.1:9092", topic_prefix: Prefix = "") -> None:
    """Pretty-print events as they arrive: envelope and data."""
    topic = topic_name(stream, topic_prefix) if stream in STREAMS else stream

    async def run() -> None:
        shown = 0
        async for record in follow(bootstrap, [topic], from_beginning):
            headers = headers_of(record)
            if tenant and headers.get("ce_tenant") != tenant:
                continue
            if client and headers.get("ce_subject") != client:
                continue
            if event_type and event_type not in headers.get("ce_type", ""):
                continue
            console.rule(f"{headers.get('ce_type', '?')}  {headers.get('ce_time', '')}")
            console.print(f"id {headers.get('ce_id')}  source {headers.get('ce_source')}  "
                          f"tenant {headers.get('ce_tenant')}  subject "
                          f"{headers.get('ce_subject')}  key "
                          f"{(record.key or b'').decode()}  partition {record.partition} "
                          f"offset {record.offset}")
            console.print_json((record.value or b"null").decode("utf-8", "replace"))
            shown += 1
            if limit and shown >= limit:
                return

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


async def _dead_letters(bootstrap: str, service: str, prefix: str) -> list:
    return [record async for record in read_to_end(bootstrap,
                                                    [dead_letter_topic(service, prefix)])]


@dlq.command("list")
def dlq_list(service: Annotated[str, typer.Argument(help=", ".join(SERVICES))],
             as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line")
                                ] = False,
             bootstrap: Bootstrap = "127.0.0.1:9092", topic_prefix: Prefix = "") -> None:
    """Dead letters of a service with the reason each failed."""
    records = asyncio.run(_dead_letters(bootstrap, service, topic_prefix))
    if as_json:
        for record in records:
            headers = headers_of(record)
            print(json.dumps({"offset": record.offset, "event_id": headers.get("ce_id"),
                              "type": headers.get("ce_type"),
                              **{name: headers[name] for name in DLQ_HEADERS
                                 if name in headers}}))
        return
    table = Table(title=f"{dead_letter_topic(service, topic_prefix)}: {len(records)} message(s)")
    for column in ("offset", "event id", "type", "from", "attempts", "reason"):
        table.add_column(column)
    for record in records:
        headers = headers_of(record)
        table.add_row(str(record.offset), headers.get("ce_id", "-"),
                      headers.get("ce_type", "-"),
                      f"{headers.get('dlq_original_topic')}[{headers.get('dlq_original_partition')}]"
                      f"@{headers.get('dlq_original_offset')}",
                      headers.get("dlq_attempts", "-"), headers.get("dlq_reason", "-"))
    console.print(table)


@dlq.command("replay")
def dlq_replay(service: Annotated[str, typer.Argument(help=", ".join(SERVICES))],
               event_id: Annotated[list[str] | None, typer.Option(
                   "--id", help="Replay only these event ids (repeatable)")] = None,
               replay_all: Annotated[bool, typer.Option("--all", help="Replay every one")] = False,
               bootstrap: Bootstrap = "127.0.0.1:9092", topic_prefix: Prefix = "") -> None:
    """Send dead letters back to their original topic, unchanged, once the cause is fixed.

    Events already applied are skipped by the services (same event id), so replaying a
    message twice is harmless.
    """
    if not event_id and not replay_all:
        raise typer.BadParameter("give --id EVENT_ID (repeatable) or --all")
    records = asyncio.run(_dead_letters(bootstrap, service, topic_prefix))
    chosen = [r for r in records if replay_all or headers_of(r).get("ce_id") in event_id]

    async def replay() -> None:
        async with Publisher(bootstrap) as publisher:
            for record in chosen:
                headers = headers_of(record)
                original = {k: v for k, v in headers.items() if k not in DLQ_HEADERS}
                await publisher.send_raw(headers["dlq_original_topic"], record.value,
                                         record.key, original)

    asyncio.run(replay())
    console.print(f"replayed {len(chosen)} of {len(records)} dead letter(s)")


@app.command()
def report(tenant: Annotated[str, typer.Option(help="Tenant id")],
           program: Annotated[str | None, typer.Option(help="Program id (default: all)")] = None,
           chart: Annotated[Path, typer.Option(help="Where to write the SVG chart")] = Path(
               "program-report.svg"),
           bootstrap: Bootstrap = "127.0.0.1:9092", topic_prefix: Prefix = "") -> None:
    """A program's funnel and check-in adherence, from the event streams."""

    async def collect() -> list[Observed]:
        topics = [topic_name(stream, topic_prefix) for stream in STREAMS[:4]]
        observed = []
        async for record in read_to_end(bootstrap, topics):
            headers = headers_of(record)
            try:
                data = json.loads(record.value or b"{}")
            except ValueError:
                continue
            observed.append(Observed(headers.get("ce_type", ""), headers.get("ce_tenant", ""),
                                     headers.get("ce_subject", ""), data))
        return observed

    result = program_report(asyncio.run(collect()), tenant, program)
    table = Table(title=f"Program {program or '(all)'} of {tenant}")
    table.add_column("stage")
    table.add_column("clients", justify="right")
    table.add_column("of enrolled", justify="right")
    enrolled = result.funnel[0][1] or 1
    for label, count in result.funnel:
        table.add_row(label, str(count), f"{100 * count / enrolled:.0f}%")
    console.print(table)
    if result.offboarded:
        console.print(f"offboarded since: {result.offboarded}")
    weeks = Table(title="Check-in adherence by week (completed / due)")
    for column in ("week", "due", "completed", "adherence"):
        weeks.add_column(column)
    for week, due, done in result.adherence:
        weeks.add_row(week, str(due), str(done), f"{100 * done / due:.0f}%")
    console.print(weeks)
    chart.write_text(render_svg(result))
    console.print(f"chart written to {chart}")


ContractsRoot = Annotated[Path, typer.Option("--root", help="The contracts folder")]


@contracts_app.command("write")
def contracts_write(root: ContractsRoot = Path("contracts")) -> None:
    """Regenerate event schemas, AsyncAPI and OpenAPI documents and the event catalog."""
    for relative in contracts.write(root):
        console.print(f"wrote {root / relative}")


@contracts_app.command("check")
def contracts_check(root: ContractsRoot = Path("contracts")) -> None:
    """Fail on breaking event changes without a new version, or on stale documents."""
    problems = contracts.check(root)
    for problem in problems:
        console.print(f"[red]{problem}[/red]")
    if problems:
        raise typer.Exit(1)
    console.print("contracts are current and compatible")


@app.command()
def token(tenant: Annotated[str, typer.Option(help="Tenant id")],
          subject: Annotated[str, typer.Option(help="Who: a client, coach or system id")],
          role: Annotated[list[Role], typer.Option(help="Role (repeatable)")],
          hours: Annotated[float, typer.Option(help="Validity")] = 12) -> None:
    """Print a development JWT signed with JWT_SECRET (never for production)."""
    settings = ServiceSettings(service_name="coachctl")
    print(mint_token(settings, tenant, subject, [r.value for r in role],
                     ttl=timedelta(hours=hours)))

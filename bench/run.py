"""`make bench`: raw limits, the by-the-book baseline and the services, measured in one run.

Knobs (environment): BENCH_EVENTS (events in the pre-filled topic, default 20000),
BENCH_CAP_SECONDS (longest a consuming scenario may take, default 90: the whole run stays
under 15 minutes on 2 cores),
BENCH_WARMUP_SHARE (share of events left out at the start of consuming scenarios, 0.05),
BENCH_SCHEDULES (check-in schedules falling due at once for the scheduler, default 10000;
the issue's 100000 takes about 10 minutes more on FerretDB, so it is a run of its own:
`BENCH_SCHEDULES=100000 BENCH_ONLY="raw claim-and-produce,feedback scheduler" make bench`),
BENCH_ONLY (comma-separated scenario names to run, e.g. "raw claim-and-produce,feedback
scheduler"; the raw consuming ones need "aiokafka produce", which fills their topic),
BENCH_LATENCY_* and BENCH_E2E_* (bench/scenarios/latency.py),
KAFKA_BOOTSTRAP_SERVERS + MONGODB_URL (use running servers instead of starting local ones).
Prints the table; writes .bench/results-<timestamp>.json and .bench/latest.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from pymongo import AsyncMongoClient  # noqa: E402
from support.infra import infrastructure, local_module  # noqa: E402

from bench.context import Bench, env_float, env_int  # noqa: E402
from bench.measure import Result, add_ratios, format_table, is_latency  # noqa: E402
from bench.scenarios import baseline, latency, raw, scheduler, services  # noqa: E402
from bench.workload import assessment_messages, encode  # noqa: E402

RESULTS = REPO / ".bench"


def machine_facts() -> dict[str, Any]:
    """What the numbers were measured on."""
    memory_kb = next((int(line.split()[1]) for line in
                      Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal:")), 0) if Path("/proc/meminfo").exists() else 0
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) \
        if Path("/proc/cpuinfo").exists() else platform.processor()
    return {"cores": os.cpu_count(), "cpu": cpu, "memory_gb": round(memory_kb / 1024 ** 2, 1),
            "os": platform.platform(), "python": platform.python_version(),
            "libraries": {name: metadata.version(name)
                          for name in ("aiokafka", "faststream", "pymongo", "pydantic")}}


async def server_facts(infra: Any) -> dict[str, Any]:
    client = AsyncMongoClient(infra.mongodb_url)
    try:
        info = await client.admin.command("buildInfo")
    finally:
        await client.close()
    ferret = info.get("ferretdbVersion") or info.get("ferretdbFeatures", {})
    kafka = (local_module("local_kafka").KAFKA_VERSION if infra.kind == "local"
             else f"{infra.kind} (version not probed)")
    return {"infrastructure": infra.kind, "kafka": kafka,
            "mongodb_wire": {"version": info.get("version"), "ferretdb": ferret or None}}


async def run(bench: Bench, log_dir: Path, schedules: int) -> list[Result]:
    steps = [("aiokafka produce", raw.produce), ("aiokafka consume", raw.consume),
             ("PyMongo insert_one", raw.insert_one), ("PyMongo insert_many", raw.insert_many),
             ("raw pipeline", raw.pipeline), ("FastStream by the book", baseline.by_the_book)]
    for service_run in services.service_runs(bench):
        steps.append((f"{service_run.service} service",
                      partial(services.service_throughput, run=service_run, log_dir=log_dir)))
    steps += [
        ("raw claim-and-produce", lambda b: scheduler.raw_claim_and_produce(b, schedules)),
        ("feedback scheduler", lambda b: scheduler.scheduler_run(b, schedules, log_dir)),
        ("Kafka hop latency", latency.kafka_hop),
        ("end-to-end latency", lambda b: latency.end_to_end(b, log_dir))]
    only = {name.strip() for name in os.environ.get("BENCH_ONLY", "").split(",") if name.strip()}
    results = []
    for name, step in steps:
        if only and name not in only:
            continue
        started = time.monotonic()
        print(f"- {name} ...", flush=True)
        result = await step(bench)
        figure = (f"p50 {result.extra['p50_ms']} ms, p99 {result.extra['p99_ms']} ms"
                  if is_latency(result) else f"{result.rate:,.0f} events/s")
        print(f"  {figure} over {result.events:,} events "
              f"({time.monotonic() - started:.0f}s with set-up)", flush=True)
        results.append(result)
    add_ratios(results)
    return results


def main() -> int:
    total = env_int("BENCH_EVENTS", 20_000)
    schedules = env_int("BENCH_SCHEDULES", 10_000)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(exist_ok=True)
    log_dir = RESULTS / f"logs-{stamp}"
    began = time.monotonic()
    print(f"Preparing {total:,} AssessmentCompleted events ...", flush=True)
    messages = assessment_messages(total)
    with tempfile.TemporaryDirectory(prefix="bench-infra-") as workdir, \
            infrastructure(Path(workdir)) as infra:
        bench = Bench(infra.kafka_bootstrap_servers, infra.mongodb_url,
                      prefix=f"b{uuid.uuid4().hex[:8]}.", messages=messages,
                      encoded=[encode(message) for message in messages],
                      warmup_share=env_float("BENCH_WARMUP_SHARE", 0.05),
                      cap_seconds=env_float("BENCH_CAP_SECONDS", 90))
        facts = {**machine_facts(), **asyncio.run(server_facts(infra))}
        load_before = os.getloadavg()
        results = asyncio.run(run(bench, log_dir, schedules))
    table = format_table(results)
    report = {"started_at": stamp, "events": total, "schedules": schedules,
              "load_average": {"before": load_before, "after": os.getloadavg()},
              "warmup_share": bench.warmup_share,
              "cap_seconds": bench.cap_seconds, "machine": facts,
              "wall_seconds": round(time.monotonic() - began, 1),
              "results": [result.as_dict() for result in results], "table": table}
    text = json.dumps(report, indent=2, default=str)
    (RESULTS / f"results-{stamp}.json").write_text(text)
    (RESULTS / "latest.json").write_text(text)
    print()
    print(f"{facts['cores']} cores, {facts['memory_gb']} GB, Python {facts['python']}, "
          f"Kafka {facts['kafka']}, {facts['mongodb_wire']}")
    print(table)
    for result in results:
        if result.extra:
            print(f"  {result.scenario}: {result.note}; {result.extra}")
    print(f"\nWritten to {RESULTS / f'results-{stamp}.json'} "
          f"(whole run {report['wall_seconds']:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

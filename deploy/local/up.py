"""`make up`: Kafka, FerretDB and the four services as separate processes, then a demo cohort.

Runs in the project's environment (`uv run`). Data lives in `.infra/run/` and survives
restarts; the demo's events carry fixed ids, so running it again changes nothing: that is
the platform's exactly-once-in-effect rule at work. Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import infra
import local_ferretdb
import local_kafka
import procs
from coaching_shared.auth import mint_token
from coaching_shared.settings import ServiceSettings
from demo_steps import TENANT, Demo, run_demo

SERVICES = {"assessment": 8001, "goals": 8002, "feedback": 8003, "notifier": 8004}
# The demo compresses the feedback service's calendar (two weeks a minute) so check-ins fall
# due while you watch; every other clock is real.
DEMO_ENVIRONMENT = {"feedback": {"CLOCK_SPEED": "20160"}}


def port_or_free(preferred: int) -> int:
    return preferred if not procs.port_open(preferred) else procs.free_port()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exit-after-demo", action="store_true",
                        help="stop everything after the demo instead of waiting for Ctrl-C")
    args = parser.parse_args()

    run_dir = procs.infra_home() / "run"
    logs = run_dir / "logs"
    started: list = []
    stopping = False

    def stop_all(*_: object) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        print("\nstopping ...", flush=True)
        for thing in reversed(started):
            thing.stop()
        print("stopped.")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        reused = infra.running_servers()
        if reused is not None:
            kafka_url, mongo_url = reused["kafka"]["url"], reused["ferretdb"]["url"]
            print(f"==> reusing the servers of `make infra-start`: {kafka_url}, {mongo_url}")
        else:
            ferretdb = local_ferretdb.FerretDBServer(run_dir / "ferretdb",
                                                     port=port_or_free(27017))
            kafka = local_kafka.KafkaServer(run_dir / "kafka", port=port_or_free(9092))
            print(f"==> FerretDB on {ferretdb.url}")
            ferretdb.start()
            started.append(ferretdb)
            print(f"==> Kafka on {kafka.bootstrap_servers}")
            kafka.start()
            started.append(kafka)
            kafka_url, mongo_url = kafka.bootstrap_servers, ferretdb.url

        urls = {}
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_url, "MONGODB_URL": mongo_url}
        for name, preferred in SERVICES.items():
            port = port_or_free(preferred)
            urls[name] = f"http://127.0.0.1:{port}"
            service = procs.ManagedProcess(
                name, [str(Path(sys.executable).parent / f"coaching-{name}")],
                logs / f"{name}.log",
                env={**env, **DEMO_ENVIRONMENT.get(name, {}), "HTTP_PORT": str(port)})
            service.start()
            started.append(service)
        for name, service in zip(SERVICES, started[-len(SERVICES):], strict=True):
            wait_ready(name, service, urls[name])
            print(f"==> {name} ready on {urls[name]}")

        asyncio.run(run_demo(Demo(urls, kafka_url)))

        coach_token = mint_token(ServiceSettings(service_name="demo"), TENANT, "coach-ana",
                                 ["coach"])
        print("\nAPI and event docs:")
        for name, url in urls.items():
            print(f"  {name:<11} OpenAPI {url}/docs   AsyncAPI {url}/asyncapi   "
                  f"health {url}/health/ready   metrics {url}/metrics")
        print(f"\nKafka {kafka_url}   MongoDB wire (FerretDB) {mongo_url}")
        print(f"Logs in {logs}")
        print("\nTry it (a dev token for coach-ana, valid 12 h):")
        print(f"  curl -H 'Authorization: Bearer {coach_token}' {urls['feedback']}/v1/caseload")
        if args.exit_after_demo:
            return
        print("\nPlatform running. Ctrl-C stops everything.")
        while all(thing.running() for thing in started):
            time.sleep(1)
        crashed = [thing for thing in started if not thing.running()]
        print(f"\n{', '.join(getattr(t, 'name', type(t).__name__) for t in crashed)} "
              "stopped unexpectedly; see the logs")
        sys.exit(1)
    except KeyboardInterrupt:
        pass
    finally:
        stop_all()


def wait_ready(name: str, service: procs.ManagedProcess, url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not service.running():
            raise procs.InfraError(f"{name} exited; last lines of {service.log_path}:\n"
                                   f"{procs.log_tail(service.log_path)}")
        try:
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise procs.InfraError(f"{name} not ready within {timeout:.0f}s; last lines of "
                           f"{service.log_path}:\n{procs.log_tail(service.log_path)}")


if __name__ == "__main__":
    main()

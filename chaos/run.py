"""`make chaos`: the large fault-injection run (tests/test_chaos.py runs the small one).

Knobs (environment): CHAOS_CLIENTS (default 24), CHAOS_CHECKINS (check-in periods per client,
3), CHAOS_FAULT_SECONDS (faults spread over, 240), CHAOS_KILLS_PER_KIND (5), CHAOS_PAUSES (5),
CHAOS_SEED (8), CHAOS_CLOCK_SPEED (coaching seconds per real second, 10080),
CHAOS_SETTLE_SECONDS (600).
Prints the summary; writes .chaos/results-large-<timestamp>.json and .chaos/latest-large.json,
and keeps the processes' data and logs in .chaos/run-large-<timestamp>/.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from chaos.scenario import ChaosConfig, run_chaos  # noqa: E402
from chaos.summary import format_summary, write_report  # noqa: E402


def large_config() -> ChaosConfig:
    env = os.environ
    return ChaosConfig(name="large", clients=int(env.get("CHAOS_CLIENTS", 24)), instruments=2,
                       checkins_per_client=int(env.get("CHAOS_CHECKINS", 3)),
                       fault_seconds=float(env.get("CHAOS_FAULT_SECONDS", 240)),
                       kills_per_kind=int(env.get("CHAOS_KILLS_PER_KIND", 5)),
                       pauses=int(env.get("CHAOS_PAUSES", 5)),
                       seed=int(env.get("CHAOS_SEED", 8)),
                       # A week per real minute: a check-in stays open about 17 s, time enough
                       # to answer it while processes die around it.
                       clock_speed=float(env.get("CHAOS_CLOCK_SPEED", 10080)),
                       settle_seconds=float(env.get("CHAOS_SETTLE_SECONDS", 600)))


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for chatty in ("httpx", "mail.log", "aiokafka"):  # one line per request or connection
        logging.getLogger(chatty).setLevel(logging.WARNING)
    config = large_config()
    print(f"Chaos run: {config}", flush=True)
    # Kept after the run: the processes' logs are what explains a failed verdict.
    workdir = REPO / ".chaos" / f"run-{config.name}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    workdir.mkdir(parents=True)
    verdict = run_chaos(config, workdir)
    print(format_summary(verdict))
    print(f"\nWritten to {write_report(verdict)}; process logs in {workdir}")
    return 0 if verdict.passed else 1


if __name__ == "__main__":
    sys.exit(main())

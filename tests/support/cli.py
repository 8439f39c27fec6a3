"""Running coachctl as an operator would, against the test's broker and topics."""

from __future__ import annotations

from coaching_cli.main import app
from typer.testing import CliRunner

from support.infra import Infrastructure

runner = CliRunner()


def coachctl(infra: Infrastructure, prefix: str, *args: str) -> str:
    """Run a coachctl command on this test's topics; its output, or fail with it."""
    result = runner.invoke(app, [*args, "--bootstrap", infra.kafka_bootstrap_servers,
                                 "--topic-prefix", prefix])
    assert result.exit_code == 0, result.output
    return result.output

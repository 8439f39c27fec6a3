"""The webhook verifier integrators are told to use, taken from the notifier's README."""

from __future__ import annotations

import re
import types
from collections.abc import Callable
from pathlib import Path

NOTIFIER_README = (Path(__file__).resolve().parents[2] / "services" / "notifier"
                   / "README.md")

Verifier = Callable[..., bool]


def receiver_verifier(clock: Callable[[], float] | None = None) -> Verifier:
    """`verify_coaching_webhook` exactly as the README shows it to receivers.

    `clock` stands in for the receiver's `time.time` (to replay a call later than it came).
    """
    source = re.search(r"```python\n(.*?)```", NOTIFIER_README.read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(source, str(NOTIFIER_README), "exec"), namespace)
    if clock is not None:
        namespace["time"] = types.SimpleNamespace(time=clock)
    return namespace["verify_coaching_webhook"]

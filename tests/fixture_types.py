"""Types of the shared test fixtures (importable from any test folder)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EventBundle:
    """A bundle with an event branch and the SeisBench-format folder it was trained on
    and indexed from."""

    bundle: Path
    events: Path

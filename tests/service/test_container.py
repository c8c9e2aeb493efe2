"""The container runs as a non-root user (read from the Dockerfile and compose file;
docker itself does not run in the suite)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _stage_users(dockerfile: str) -> dict[str, str]:
    """Each build stage's effective user at its end (inherited from its base stage)."""
    users: dict[str, str] = {}
    stage = None
    for line in dockerfile.splitlines():
        if m := re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.IGNORECASE):
            base, stage = m[1], m[2] or m[1]
            users[stage] = users.get(base, "root")  # an image starts as root
        elif m := re.match(r"USER\s+(\S+)", line, re.IGNORECASE):
            users[stage] = m[1]
    return users


def test_every_image_stage_runs_as_the_unprivileged_user():
    dockerfile = (ROOT / "Dockerfile").read_text()
    users = _stage_users(dockerfile)
    assert set(users) == {"serve", "gpu", "cluster", "default"}
    assert all(user == "seislens" for user in users.values()), users
    uid = re.search(r"useradd [^\n]*--uid (\d+) seislens", dockerfile)[1]
    assert int(uid) >= 1000
    assert "COPY --chown=seislens:seislens artifacts/default/ /bundles/default/" in dockerfile
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        assert service.get("user") == f"{uid}:{uid}", name

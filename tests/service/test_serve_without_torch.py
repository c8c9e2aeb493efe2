"""A serve-only install, simulated: torch, deepwave and onnx made unimportable
(tests/no_training/sitecustomize.py), the app imported, a real query answered, and the
service's API tests run on the committed fixture bundle (tests/fixtures/serving)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
BLOCKER = TESTS / "no_training"
FIXTURE = TESTS / "fixtures" / "serving"
SERVE_ONLY = "SEISLENS_TEST_SERVE_ONLY"

pytestmark = pytest.mark.skipif(
    os.environ.get(SERVE_ONLY) == "1", reason="already inside the serve-only run"
)


def _serve_only_env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(BLOCKER), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, SERVE_ONLY: "1", "OMP_NUM_THREADS": "1"}


ANSWER_ONE_QUERY = """
import io, json, sys
from pathlib import Path
import numpy as np
from fastapi.testclient import TestClient
from seislens.service.app import create_app
from seislens.service.settings import Settings

fixture = Path(sys.argv[1])
sample = np.load(fixture / "velocity_sample.npz")
buffer = io.BytesIO()
np.save(buffer, sample["gather"])
# lease_ttl_s=0: the committed fixture is served in place; no lease file is written into it
settings = Settings(bundle=fixture / "bundle", onnx_threads=1, prefer_gpu=False, lease_ttl_s=0)
with TestClient(create_app(settings)) as client:
    ready = client.get("/readyz").status_code
    r = client.post("/v1/velocity/search", files={"file": ("g.npy", buffer.getvalue())})
    bundle = client.get("/v1/bundle").json()
loaded = sorted(m for m in ("torch", "deepwave", "onnx") if m in sys.modules)
print(json.dumps({"ready": ready, "status": r.status_code, "results": len(r.json()["results"]),
                  "events": bundle.get("events") is not None, "loaded": loaded}))
"""


def test_app_answers_with_training_packages_unimportable():
    proc = subprocess.run(
        [sys.executable, "-c", ANSWER_ONE_QUERY, str(FIXTURE)],
        env=_serve_only_env(),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["loaded"] == []
    assert out["ready"] == 200 and out["status"] == 200 and out["results"] > 0
    assert out["events"], "the fixture bundle's event branch did not load"


def test_the_blocker_really_blocks():
    proc = subprocess.run(
        [sys.executable, "-c", "import torch"],
        env=_serve_only_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0 and "serve-only test" in proc.stderr


SAME_APP_OTHER_CLIENT = (
    "test_web_browser.py",
    "test_generated_client.py",
    "test_docs_offline.py",
    "test_server_slow_heads.py",
)
"""Tests that drive the same app through a browser, a generated client or raw sockets:
what they add is the client, not the import path, so the serve-only rerun skips them."""


def test_api_tests_pass_with_training_packages_unimportable():
    """The API tests (tests/service) in a fresh interpreter that cannot import torch:
    every test that does not build data with deepwave runs, and passes."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/service",
            "-q",
            "-p",
            "no:cacheprovider",
            "-x",
            "-m",
            "not slow",
            *(f"--ignore=tests/service/{name}" for name in SAME_APP_OTHER_CLIENT),
        ],
        env=_serve_only_env(),
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    tail = proc.stdout[-4000:]
    assert proc.returncode == 0, tail
    passed = re.search(r"(\d+) passed", tail)
    assert passed and int(passed.group(1)) >= 60, tail
    assert "failed" not in tail and "error" not in tail.lower().split("passed")[-1], tail


@pytest.mark.slow
def test_api_tests_pass_in_a_real_serve_only_install(tmp_path):
    """``pip install .[serve]`` into a new virtual environment (from the package
    registry: minutes), then the API tests run in it: torch is not there at all."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    install = [
        python,
        "-m",
        "pip",
        "install",
        "-q",
        f"{ROOT}[serve]",
        "pytest",
        "pytest-timeout",
        "httpx",
    ]
    subprocess.run(install, check=True, timeout=1800, cwd=tmp_path)
    probe = "import importlib.util as u; print(u.find_spec('torch') is None)"
    assert (
        subprocess.run(
            [python, "-c", probe], capture_output=True, text=True, check=True
        ).stdout.strip()
        == "True"
    )
    proc = subprocess.run(
        [
            python,
            "-m",
            "pytest",
            str(TESTS / "service"),
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(ROOT),
            "-c",
            str(ROOT / "pyproject.toml"),
        ],
        env={**os.environ, SERVE_ONLY: "1"},
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert re.search(r"(\d+) passed", proc.stdout[-4000:])

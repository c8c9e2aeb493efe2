"""The one local Ray cluster of a test session (``ray.init(num_cpus=2)``), shared by the
Ray tests of every folder: started by the first test that asks, stopped at exit.

``RAY_ADDRESS`` set: join that cluster instead (e.g. one started with ``ray start``).
"""

from __future__ import annotations

import atexit
import os

import pytest

SKIP_REASON = "the cluster extra is not installed (pip install -e '.[cluster]')"


_FAILED: list[str] = []
"""Why the session's cluster could not start (tried once a session: each try takes ~1 min)."""


def ray_cluster() -> str:
    """The session's Ray cluster, started if needed; its GCS address. Skips the test
    when ray is not installed, or when the cluster cannot start on this machine."""
    ray = pytest.importorskip("ray", reason=SKIP_REASON)
    if _FAILED:
        pytest.skip(_FAILED[0])
    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        options = (
            {"address": address}
            if address
            # "local": a new cluster even when a stale /tmp/ray/ray_current_cluster names one
            else {"address": "local", "num_cpus": 2, "include_dashboard": False}
        )
        try:
            ray.init(log_to_driver=False, configure_logging=False, **options)
        except Exception as exc:  # a loaded machine: the raylet's agents start too late
            _FAILED.append(f"a local Ray cluster could not start here: {exc}")
            pytest.skip(_FAILED[0])
        atexit.register(ray.shutdown)
    return ray.get_runtime_context().gcs_address

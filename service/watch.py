"""Reloading when the served bundle changes on disk (opt-in: SEISLENS_WATCH_INTERVAL_S).

``seislens index build`` (e.g. the compose ``rebuild`` job) switches a bundle's index by
rewriting its ``manifest.json``; with a watch interval set, the service notices and
reloads the bundle the same way ``POST /v1/admin/reload`` does.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from seislens.index.bundle import BundleError, read_manifest
from seislens.models.manifest import MANIFEST_FILE
from seislens.service.metrics import ServiceMetrics
from seislens.service.settings import Settings
from seislens.service.state import BundleHolder, LoadedBundle, ReloadInProgressError
from starlette.concurrency import run_in_threadpool

log = logging.getLogger("seislens.service")

Stamp = tuple[Path, int, int]


def manifest_stamp(bundle: Path) -> Stamp | None:
    """(bundle, mtime in ns, size) of the bundle's manifest; None when unreadable."""
    try:
        st = (bundle / MANIFEST_FILE).stat()
    except OSError:
        return None
    return bundle, st.st_mtime_ns, st.st_size


async def watch_bundle(holder: BundleHolder, settings: Settings, metrics: ServiceMetrics) -> None:
    """Poll the current bundle's manifest every ``settings.watch_interval_s`` seconds and
    reload when it changed; runs until cancelled."""
    current = holder.current
    seen = manifest_stamp(current.path) if current else None
    while True:
        await asyncio.sleep(settings.watch_interval_s)
        current = holder.current
        stamp = manifest_stamp(current.path) if current else None
        if stamp is None or stamp == seen:
            continue
        swapped = seen is None or stamp[0] != seen[0]  # another bundle was swapped in
        if swapped and await run_in_threadpool(serves_its_manifest, current):
            seen = stamp
            continue
        # changed since the last poll, or since the swapped-in bundle was loaded
        seen = stamp if await _reload(holder, stamp[0], settings, metrics) else seen


def serves_its_manifest(bundle: LoadedBundle) -> bool:
    """Whether ``bundle`` was loaded from the manifest now on disk: False when the
    manifest was rewritten after the load (an index switched between a reload to this
    bundle and the watch's next poll) or cannot be read."""
    try:
        return read_manifest(bundle.path) == bundle.manifest
    except BundleError:
        return False


async def _reload(
    holder: BundleHolder, path: Path, settings: Settings, metrics: ServiceMetrics
) -> bool:
    """Reload ``path``; False when it should be tried again at the next poll."""
    log.info("bundle %s changed on disk; reloading it", path)
    try:
        _, new = await run_in_threadpool(holder.reload, path, settings)
    except ReloadInProgressError:
        return False
    except BundleError as exc:
        metrics.reloads.labels("refused").inc()
        log.warning("changed bundle %s refused, still serving the previous load: %s", path, exc)
        return True
    metrics.reloads.labels("success").inc()
    sizes = new.library_sizes()
    metrics.bundle_loaded(sizes)
    log.info("reloaded %s: library items %s", new.name, sizes)
    return True

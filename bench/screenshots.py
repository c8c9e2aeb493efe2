"""Screenshots of the web page for the README: a real uvicorn process on a bundle, the
page driven by Debian's chromium through Playwright, one PNG per view.

    python bench/screenshots.py                       # artifacts/default → docs/page_*.png
    python bench/screenshots.py --bundle tests/fixtures/serving/bundle --out /tmp/shots

Writes ``page_gather.png`` (a SEG-Y search, desktop), ``page_recording.png`` (ObsPy's
real local event, desktop), ``page_scan.png`` (a 20-minute synthetic recording scanned
as a job) and ``page_phone.png`` (the gather result at 390 px). Each is reduced to a
256-colour palette so it stays small (the README's images must be under 300 KB).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import obspy
from PIL import Image
from seislens.data.event_continuous import ContinuousConfig, write_continuous
from seislens.data.gather_files import write_segy

from seislens.server_process import running_server

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CER = Path(obspy.__file__).parent / "io/seisan/tests/data/2005-07-23-1452-04S.CER___030.mseed"
GATHER = ROOT / "tests/fixtures/serving/velocity_sample.npz"
DESKTOP = {"width": 1100, "height": 900}
PHONE = {"width": 390, "height": 844}
MAX_HEIGHT = 2400
"""Screenshots are cut at this many CSS pixels (the top of the page)."""


def shrink(path: Path) -> int:
    """Re-save a PNG with an adaptive 256-colour palette; its size in bytes."""
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)
    return path.stat().st_size


def shoot(page, path: Path) -> None:
    """A full-page screenshot, at most MAX_HEIGHT tall, shrunk."""
    height = min(page.evaluate("document.documentElement.scrollHeight"), MAX_HEIGHT)
    width = page.viewport_size["width"]
    page.screenshot(
        path=str(path), full_page=True, clip={"x": 0, "y": 0, "width": width, "height": height}
    )
    print(f"{path}: {shrink(path) / 1024:.0f} KiB")


def search_gather(page, gather: Path, k: int) -> None:
    page.fill("#gk", str(k))
    page.set_input_files("#gfile", str(gather))
    page.click("#gsubmit")
    page.wait_for_selector("#gout:not([hidden])")
    page.wait_for_selector("#gprogress", state="hidden")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", type=Path, default=ROOT / "artifacts/default")
    p.add_argument("--out", type=Path, default=ROOT / "docs")
    p.add_argument("--k", type=int, default=6)
    p.add_argument("--skip-scan", action="store_true", help="no page_scan.png")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        gather = tmp / "shot.sgy"
        write_segy(gather, np.load(GATHER)["gather"])
        env = {
            "SEISLENS_LEASE_TTL_S": "0",
            "SEISLENS_PREFER_GPU": "false",
            "SEISLENS_SCAN_JOBS_DIR": str(tmp / "jobs"),
        }
        with (
            running_server(args.bundle, tmp / "server.log", env=env, start_timeout_s=300) as srv,
            sync_playwright() as pw,
        ):
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport=DESKTOP)
            page.set_default_timeout(300_000)
            page.goto(srv.url + "/")
            search_gather(page, gather, args.k)
            shoot(page, args.out / "page_gather.png")

            page.click("#tab-recording")
            page.set_input_files("#rfile", str(CER))
            page.click("#rsubmit")
            page.wait_for_selector("#rout .station")
            page.wait_for_selector("#rprogress", state="hidden")
            shoot(page, args.out / "page_recording.png")

            if not args.skip_scan:
                config = ContinuousConfig(
                    duration_s=1200.0, stations=2, events=2, snr_db=(20.0, 25.0), seed=9
                )
                record = write_continuous(tmp / "long.mseed", config)
                page.set_input_files("#rfile", str(record.path))
                page.check("#rscan")
                page.click("#rsubmit")
                page.wait_for_selector("#timeline")
                page.wait_for_selector("#rprogress", state="hidden")
                page.locator("#scan").scroll_into_view_if_needed()
                top = page.evaluate(
                    "document.getElementById('scan').getBoundingClientRect().top + scrollY"
                )
                height = page.evaluate("document.getElementById('scan').scrollHeight")
                path = args.out / "page_scan.png"
                page.screenshot(
                    path=str(path),
                    full_page=True,
                    clip={
                        "x": 0,
                        "y": top - 8,
                        "width": DESKTOP["width"],
                        "height": min(height + 16, MAX_HEIGHT),
                    },
                )
                print(f"{path}: {shrink(path) / 1024:.0f} KiB")

            phone = browser.new_page(viewport=PHONE, device_scale_factor=1)
            phone.set_default_timeout(300_000)
            phone.goto(srv.url + "/")
            search_gather(phone, gather, args.k)
            shoot(phone, args.out / "page_phone.png")
            browser.close()


if __name__ == "__main__":
    main()

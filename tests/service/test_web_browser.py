"""The page at ``/`` in a real browser: Debian's chromium, headless, driven by
Playwright's Python package, against a real uvicorn process on the committed serving
fixture. A SEG-Y written by ``write_segy``, ObsPy's real local-event miniSEED and a
10-minute continuous recording (``write_continuous``; that scan test is marked slow: it
waits for a job's own process) are uploaded through the page's
own forms; the tests assert what the page shows, that no script logged an error and
that no request left the service's host.

Skipped, with the reason, only where chromium or Playwright cannot be found
(``.ci/run`` installs chromium with apt; ``pip install -e ".[dev]"`` installs
Playwright; never ``playwright install``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import obspy
import pytest
from seislens.data.event_continuous import ContinuousConfig, write_continuous
from seislens.data.gather_files import write_segy

from seislens.server_process import running_server

CHROMIUM = Path("/usr/bin/chromium")
CER = Path(obspy.__file__).parent / "io/seisan/tests/data/2005-07-23-1452-04S.CER___030.mseed"
K = 4
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 60_000

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright's Python package is not installed (dev extra)"
)
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"no chromium at {CHROMIUM} (apt-get install chromium; .ci/run does it)",
)


@pytest.fixture(scope="module")
def server(serving_fixture, tmp_path_factory) -> Iterator[str]:
    """The fixture bundle (both branches) served by uvicorn in a subprocess."""
    root = tmp_path_factory.mktemp("web-server")
    env = {
        "SEISLENS_LEASE_TTL_S": "0",
        "SEISLENS_PREFER_GPU": "false",
        "SEISLENS_SCAN_JOBS_DIR": str(root / "jobs"),
        "SEISLENS_PARSE_WORKERS": "1",
    }
    with running_server(
        serving_fixture / "bundle", root / "server.log", env=env, start_timeout_s=180
    ) as running:
        yield running.url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield b
        b.close()


class Watched:
    """A page with its console errors, uncaught exceptions and requested URLs."""

    def __init__(self, page: object, base: str) -> None:
        self.page = page
        self.base = base
        self.errors: list[str] = []
        self.urls: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("request", lambda r: self.urls.append(r.url))

    def assert_clean(self, allowed_errors: tuple[str, ...] = ()) -> None:
        """No console error (beyond those expected) and every request to the service."""
        host = urlsplit(self.base).netloc
        unexpected = [e for e in self.errors if not any(a in e for a in allowed_errors)]
        assert unexpected == []
        others = [u for u in self.urls if urlsplit(u).netloc != host and not u.startswith("data:")]
        assert others == [], f"requests to other hosts: {others}"
        assert any(u.endswith("/page/common.js") for u in self.urls)  # the page's own script


def open_page(browser, base: str, viewport: dict[str, int]) -> Watched:
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    watched = Watched(page, base)
    page.goto(base + "/")
    page.wait_for_function("document.getElementById('bundle').textContent.includes('bundle tiny')")
    return watched


def drawn(page, selector: str) -> int:
    """Pixels of a canvas that are neither white nor transparent."""
    return page.evaluate(
        """(sel) => { const c = document.querySelector(sel);
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 0; i < d.length; i += 4)
          if (d[i + 3] > 0 && (d[i] < 250 || d[i + 1] < 250 || d[i + 2] < 250)) n++;
        return n; }""",
        selector,
    )


def search_gather(watched: Watched, path: Path) -> None:
    page = watched.page
    page.fill("#gk", str(K))
    page.set_input_files("#gfile", str(path))
    page.click("#gsubmit")
    page.wait_for_selector("#gout:not([hidden])")
    page.wait_for_selector("#gprogress", state="hidden")


def test_gather_view_shows_the_evidence(server, browser, sample, tmp_path):
    gather = tmp_path / "shot.sgy"
    gather.write_bytes(sample.segy)  # written by write_segy from the fixture's gather
    with httpx.Client(base_url=server, timeout=60) as http:
        api = http.post(
            "/v1/velocity/search", files={"file": ("shot.sgy", sample.segy)}, params={"k": K}
        ).json()
    watched = open_page(browser, server, DESKTOP)
    page = watched.page
    assert page.get_attribute("#docs-link", "href") == "docs"
    search_gather(watched, gather)

    matches = page.locator("#matches .match")
    assert matches.count() == K
    assert page.locator("#matches canvas").count() == K
    scores = page.locator("#matches .score").all_text_contents()
    assert scores == [f"{m['score']:.3f}" for m in api["results"]]
    families = page.locator("#matches .family").all_text_contents()
    assert families == [m["family"] for m in api["results"]]
    caption = page.text_content("#selected-caption")
    assert f"id {sample.model_id}" in caption and "match #1 of 4" in caption

    bar = page.locator("#colourbar")
    assert bar.is_visible() and "m/s" in bar.get_attribute("aria-label")
    vmin, vmax = float(bar.get_attribute("data-vmin")), float(bar.get_attribute("data-vmax"))
    assert 1000 <= vmin < vmax <= 5000
    for selector in ("#colourbar", "#gather-canvas", "#selected-canvas", "#estimate-canvas"):
        assert drawn(page, selector) > 1000, selector

    rows = page.locator("#descriptors tbody tr")
    assert rows.count() == len(api["inferred_descriptors"])
    first = rows.first.locator("td").all_text_contents()
    assert first[0] == "mean velocity" and "±" in first[2] and "±" in first[3]
    assert page.locator("#gfamiliar").text_content().startswith("familiarity")

    matches.nth(2).click()  # the toggle: the third match beside the estimate
    assert "match #3 of 4" in page.text_content("#selected-caption")
    page.click("#gnext")
    assert page.text_content("#selected-rank") == "#4 / 4"
    assert matches.nth(3).get_attribute("aria-pressed") == "true"
    watched.assert_clean()


def test_gather_view_shows_the_apis_refusal(server, browser, tmp_path):
    bad = tmp_path / "notes.sgy"
    bad.write_bytes(b"This is not seismic data.\n" * 200)
    watched = open_page(browser, server, DESKTOP)
    page = watched.page
    page.set_input_files("#gfile", str(bad))
    page.click("#gsubmit")
    page.wait_for_selector("#gerror:not([hidden])")
    text = page.text_content("#gerror")
    assert re.match(r"^4\d\d: ", text) and "notes.sgy" in text
    assert page.locator("#gout").is_hidden() and page.locator("#gprogress").is_hidden()
    # the browser logs the failed request itself; nothing else may be logged
    watched.assert_clean(allowed_errors=("status of 4",))


def test_recording_view_classifies_a_real_event(server, browser):
    watched = open_page(browser, server, DESKTOP)
    page = watched.page
    page.click("#tab-recording")
    page.fill("#rk", "3")
    page.set_input_files("#rfile", str(CER))
    assert not page.is_checked("#rscan")  # a short file: no scan by default
    page.click("#rsubmit")
    page.wait_for_selector("#rout .station")
    page.wait_for_selector("#rprogress", state="hidden")
    card = page.locator("#rout .station")
    assert card.count() == 1
    assert page.text_content("#rout .station h3").startswith(".CER: ")
    bars = page.locator("#rout .bar")
    assert bars.count() == 4
    probabilities = [float(b.get_attribute("data-probability")) for b in bars.all()]
    assert abs(sum(probabilities) - 1.0) < 1e-3
    labels = page.locator("#rout .bar-label").all_text_contents()
    assert sorted(labels) == ["earthquake", "explosion", "noise", "surface"]
    assert drawn(page, "#rout canvas.waveform") > 500
    assert drawn(page, "#rout canvas.spectrogram") > 5000
    source = page.locator("#rout table.source td").all_text_contents()
    assert source[0].endswith(" km") and " km" in source[1] and len(source) == 3
    note = page.text_content("#rout .station .cols p.muted")
    assert "S − P check" in note or "S pick" in note  # the depth's S − P check, said
    assert page.locator("#rout table.similar tbody tr").count() == 3
    watched.assert_clean()


@pytest.mark.slow  # waits for a scan job's own process: ~30 s on a busy 2-core machine
def test_recording_view_scans_a_long_recording(server, browser, tmp_path):
    config = ContinuousConfig(duration_s=600.0, events=1, snr_db=(25.0, 30.0), seed=4)
    record = write_continuous(tmp_path / "long.mseed", config)
    watched = open_page(browser, server, DESKTOP)
    page = watched.page
    page.click("#tab-recording")
    page.set_input_files("#rfile", str(record.path))
    page.check("#rscan")
    page.fill("#rstride", "20")
    page.click("#rsubmit")
    page.wait_for_selector("#sprogress:not([hidden])")  # the job's progress while it runs
    page.wait_for_selector("#timeline", timeout=240_000)
    assert page.locator("#sprogress").is_hidden()
    label = page.get_attribute("#timeline", "aria-label")
    assert re.match(r"^\d+ detections over 10\.0 min$", label), label
    assert drawn(page, "#timeline") > 1000
    detections = int(label.split()[0])
    assert page.locator("#timeline-box table.detections tbody tr").count() == detections
    assert page.locator("#timeline-box a[href$='/detections.csv']").count() == 1
    page.wait_for_selector("#rout .station")
    watched.assert_clean()


def test_phone_width_and_the_familiarity_warning(server, browser, sample, tmp_path):
    gather = tmp_path / "two-shots.sgy"
    write_segy(gather, sample.gather[:2])  # slots 1 and 5 only: a partial frame
    watched = open_page(browser, server, PHONE)
    page = watched.page
    search_gather(watched, gather)
    warning = page.locator("#gwarning")
    assert warning.is_visible() and "part of the model frame" in warning.text_content()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"]
    box = page.locator("#selected-canvas").bounding_box()
    assert box is not None and box["width"] <= PHONE["width"] and box["width"] > 200
    watched.assert_clean()


def test_favicon_is_served(server):
    with httpx.Client(base_url=server, timeout=30) as http:
        r = http.get("/favicon.ico")
        assert r.status_code == 200 and r.headers["content-type"] == "image/x-icon"
        assert r.content[:4] == b"\x00\x00\x01\x00"  # an ICO file
        assert http.get("/page/nothing.js").status_code == 404

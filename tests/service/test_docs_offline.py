"""Swagger UI (/docs) and ReDoc (/redoc) come from files the package ships: their pages
reference only the service's own URLs, every asset they reference answers 200 with its
media type, the vendored files keep their licences, and the install ships them."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from seislens.service.routes_docs import VENDOR, VENDOR_FILES

from seislens.server_process import running_server

ROOT = Path(__file__).resolve().parents[2]
_REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url:\s*['"]([^'"]+)['"]""")
_MEDIA = {".js": "text/javascript", ".css": "text/css", ".ico": "image/x-icon"}


def _references(html: str) -> list[str]:
    """The URLs a page loads: ``src``/``href`` attributes and Swagger UI's ``url:``."""
    return [a or b for a, b in _REFERENCE.findall(html)]


@pytest.mark.parametrize(("page", "assets"), [("/docs", 3), ("/redoc", 2)])
def test_docs_pages_load_only_local_files(client, page, assets):
    r = client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert "://" not in r.text, "the page names an outside URL"
    refs = [u for u in _references(r.text) if u != "/openapi.json"]
    assert len(refs) == assets, refs  # the viewer's script (and stylesheet), the favicon
    for url in refs:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        expected = _MEDIA[Path(url).suffix]
        assert asset.headers["content-type"].split(";")[0] == expected, url
        assert len(asset.content) > 1000, url
    assert "/openapi.json" in r.text


def test_unknown_asset_is_a_404(client):
    r = client.get("/docs/assets/LICENSE")
    assert r.status_code == 404 and r.json()["reason"] == "unknown_asset"
    assert client.get("/docs/assets/..%2F..%2Fapp.py").status_code == 404


def test_vendored_files_keep_their_licences_and_are_package_data():
    for relative, _ in VENDOR_FILES.values():
        file = VENDOR / relative
        assert file.stat().st_size > 100_000, relative
        assert (file.parent / "LICENSE").is_file(), relative
    readme = (VENDOR / "README.md").read_text()
    assert "swagger-ui-dist" in readme and "redoc" in readme
    total = sum(p.stat().st_size for p in VENDOR.rglob("*") if p.is_file())
    assert total < 4 * 2**20, f"vendored files take {total / 2**20:.1f} MiB"
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_data = config["tool"]["setuptools"]["package-data"]["seislens.service"]
    for relative, _ in VENDOR_FILES.values():
        folder = Path("static/vendor") / relative
        assert any(folder.match(pattern) for pattern in package_data), relative


@pytest.mark.slow  # builds a wheel of a copy of the sources (~30 s)
def test_wheel_ships_the_vendored_files(tmp_path):
    source = tmp_path / "source"  # a copy: the build writes build/ and *.egg-info beside it
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    package_dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = sorted(set(package_dirs["package-dir"].values()))
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout: the sources are listed by git (data/ holds data sets)")
    listed = subprocess.run(  # the sources git knows (not the data sets beside them)
        ["git", "ls-files", "-co", "--exclude-standard", *folders],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    for name in listed.stdout.splitlines():
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / name, source / name)
    argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    proc = subprocess.run(
        [*argv, "-w", str(tmp_path), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("seislens-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for relative, _ in VENDOR_FILES.values():
        assert f"seislens/service/static/vendor/{relative}" in names, relative
        licence = Path(relative).parent / "LICENSE"
        assert f"seislens/service/static/vendor/{licence}" in names, licence


# --------------------------------------------------------------------------- in a browser

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def docs_server(serving_fixture, tmp_path_factory) -> Iterator[str]:
    """The fixture bundle served by uvicorn in a subprocess: its URL."""
    root = tmp_path_factory.mktemp("docs-server")
    env = {"SEISLENS_LEASE_TTL_S": "0", "SEISLENS_PARSE_WORKERS": "1"}
    with running_server(
        serving_fixture / "bundle", root / "server.log", env=env, start_timeout_s=180
    ) as running:
        yield running.url


def test_docs_render_in_a_browser_with_the_network_off(docs_server):
    """Headless chromium, every request to another host refused: Swagger UI lists every
    operation of the document and ReDoc renders them."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright's Python package is not installed (dev extra)"
    )
    if not CHROMIUM.exists():
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium; .ci/run does it)")
    doc = httpx.get(docs_server + "/openapi.json", timeout=120).json()
    operations = [(m, p) for p, item in doc["paths"].items() for m in item]
    host = urlsplit(docs_server).netloc
    refused: list[str] = []

    def offline(route) -> None:
        if urlsplit(route.request.url).netloc == host or route.request.url.startswith("data:"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_context().new_page()
            page.set_default_timeout(120_000)
            page.route("**/*", offline)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            blocked: list[str] = []  # by the pages' Content-Security-Policy
            page.on(
                "console", lambda m: "Content Security Policy" in m.text and blocked.append(m.text)
            )
            page.goto(docs_server + "/docs")
            page.wait_for_selector(".opblock-summary-path")
            listed = page.locator(".opblock").count()
            paths = set(page.locator(".opblock-summary-path").all_inner_texts())
            page.goto(docs_server + "/redoc")
            page.wait_for_selector("[data-section-id^='tag/']")
            redoc_text = page.inner_text("body")
        finally:
            browser.close()
    assert listed == len(operations)
    assert {path.replace("\u200b", "") for path in paths} == {p for _, p in operations}
    assert "A library velocity model" in redoc_text
    assert refused == [] and errors == []
    assert all("cdn.redoc.ly" in message for message in blocked), blocked  # only the logo

"""schemathesis over every operation, for long: a real uvicorn server on a copy of the
committed serving fixture (both branches), schema-valid and schema-invalid requests
generated for each operation, sent from several concurrent clients, every answer
checked against the OpenAPI document.

    python bench/schema_fuzz.py                         # 100 + 100 per operation, 4 clients
    python bench/schema_fuzz.py --examples 20 --clients 2

Prints one row per operation (cases, answers by status class, 5xx, check failures, the
slowest answer) and the totals; exits 1 when any answer is a 5xx, fails a check, or the
server died. The checks are those of the suite's bounded run
(tests/service/test_schema_fuzz.py: no 5xx; status code, content type, headers and body
as documented); it names the checks left out and why. Statuses an operation returns
but does not document show up as ``status_code_conformance`` failures.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import FailedHealthCheck, Unsatisfiable
from schemathesis import GenerationMode

from seislens.server_process import running_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "service"))
from test_schema_fuzz import CHECKS, LEFT_OUT

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "serving" / "bundle"
ADMIN_TOKEN = "schema-fuzz-token"


@dataclass
class OperationTally:
    """What one operation's generated requests got."""

    cases: int = 0
    statuses: collections.Counter = field(default_factory=collections.Counter)
    failures: collections.Counter = field(default_factory=collections.Counter)
    examples: list[str] = field(default_factory=list)
    slowest_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _generate(operation, mode: GenerationMode, count: int) -> list:
    """Up to ``count`` cases of ``operation`` in ``mode`` (hypothesis, generation only)."""
    cases: list = []

    @given(operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def collect(case) -> None:
        cases.append(case)

    with contextlib.suppress(Unsatisfiable, FailedHealthCheck):  # e.g. nothing invalid
        collect()
    return cases


def _send(case, url: str, session: requests.Session, tally: OperationTally) -> None:
    start = time.perf_counter()
    try:
        response = case.call(base_url=url, session=session, timeout=120)
    except requests.RequestException as exc:
        with tally.lock:
            tally.cases += 1
            tally.failures["request_failed"] += 1
            tally.examples.append(f"request failed: {exc}"[:200])
        return
    elapsed = time.perf_counter() - start
    failure = None
    try:
        case.validate_response(response, checks=CHECKS)
    except Exception as exc:  # schemathesis raises a failure (group) naming the checks
        failure = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
    with tally.lock:
        tally.cases += 1
        tally.statuses[f"{response.status_code // 100}xx"] += 1
        if response.status_code >= 500:
            tally.failures["5xx"] += 1
        if failure is not None:
            tally.failures["check"] += 1
            if len(tally.examples) < 3:
                tally.examples.append(f"{case.method} {case.formatted_path} → {failure}"[:300])
        tally.slowest_s = max(tally.slowest_s, elapsed)


def main() -> None:
    args = _parse()
    work = Path(tempfile.mkdtemp(prefix="schema-fuzz-"))
    bundle = work / "bundle"
    shutil.copytree(args.bundle, bundle)
    env = {"SEISLENS_PREFER_GPU": "false", "SEISLENS_ADMIN_TOKEN": ADMIN_TOKEN}
    t0 = time.perf_counter()
    try:
        with running_server(bundle, work / "server.log", env, start_timeout_s=300) as server:
            # the first build of the document runs the real readers on its examples: slow
            doc = requests.get(server.url + "/openapi.json", timeout=600).json()
            schema = schemathesis.openapi.from_dict(doc)
            operations = [op.ok() for op in schema.get_all_operations()]
            modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
            jobs = []
            tallies: dict[str, OperationTally] = {}
            for op in operations:
                name = f"{op.method.upper()} {op.path}"
                tallies[name] = OperationTally()
                for mode in modes:
                    jobs += [(c, tallies[name]) for c in _generate(op, mode, args.examples)]
            print(f"{len(jobs)} cases over {len(operations)} operations, {args.clients} clients")
            local = threading.local()

            def run(job) -> None:
                if not hasattr(local, "session"):
                    local.session = requests.Session()
                _send(job[0], server.url, local.session, job[1])

            with ThreadPoolExecutor(args.clients) as pool:
                list(pool.map(run, jobs))
            alive = requests.get(server.url + "/healthz", timeout=30).status_code == 200
    finally:
        log = (work / "server.log").read_text() if (work / "server.log").exists() else ""
        shutil.rmtree(work, ignore_errors=True)
    _report(tallies, alive, time.perf_counter() - t0, log)
    bad = sum(t.failures.total() for t in tallies.values())
    sys.exit(0 if alive and bad == 0 else 1)


def _report(tallies: dict[str, OperationTally], alive: bool, seconds: float, log: str) -> None:
    print("\n| operation | cases | answers | 5xx | check failures | slowest (s) |")
    print("|---|---|---|---|---|---|")
    for name, t in sorted(tallies.items()):
        answers = ", ".join(f"{k} {v}" for k, v in sorted(t.statuses.items()))
        print(
            f"| `{name}` | {t.cases} | {answers} | {t.failures['5xx']} | {t.failures['check']} "
            f"| {t.slowest_s:.2f} |"
        )
    total = sum(t.cases for t in tallies.values())
    five = sum(t.failures["5xx"] for t in tallies.values())
    checks = sum(t.failures["check"] for t in tallies.values())
    print(
        f"\n{total} cases, {five} 5xx, {checks} check failures, server alive: {alive}, "
        f"{seconds:.0f} s"
    )
    for name, t in sorted(tallies.items()):
        for example in t.examples:
            print(f"- {name}: {example}")
    print("\nchecks left out:")
    for check, why in LEFT_OUT.items():
        print(f"- {check}: {why}")
    crashes = [line for line in log.splitlines() if "Traceback" in line or "Exception" in line]
    if crashes:
        print(f"\nserver log: {len(crashes)} traceback lines")


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, default=FIXTURE, help="bundle to serve (copied)")
    p.add_argument(
        "--examples", type=int, default=100, help="cases per operation and generation mode"
    )
    p.add_argument("--clients", type=int, default=4, help="concurrent clients")
    return p.parse_args()


if __name__ == "__main__":
    main()

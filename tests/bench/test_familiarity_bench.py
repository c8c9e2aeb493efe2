"""bench/familiarity.py on the default bundle and a tiny generated in-family folder."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
DEFAULT_BUNDLE = ROOT / "artifacts" / "default"


def _load_bench():
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("bench_familiarity", BENCH / "familiarity.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(
    not (DEFAULT_BUNDLE / "manifest.json").exists(), reason="needs the default bundle"
)
def test_warning_rate_per_family_and_overall(tiny_velocity_data, capsys):
    rows = _load_bench().main(["--bundle", str(DEFAULT_BUNDLE), "--data", str(tiny_velocity_data)])
    families = [p.name for p in sorted(tiny_velocity_data.iterdir()) if p.is_dir()]
    assert [r[0].split()[-1] for r in rows] == [*families, "all"]
    counts = [int(r[1]) for r in rows]
    assert counts[-1] == sum(counts[:-1]) > 0
    for _, _, warned, median in rows:
        assert 0.0 <= float(warned) <= 1.0 and 0.0 <= float(median) <= 1.0
    assert "warn below" in capsys.readouterr().out

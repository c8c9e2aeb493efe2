"""bench/familiarity.py on the default bundle and a tiny generated in-family folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench_loader import load_bench

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BUNDLE = ROOT / "artifacts" / "default"


@pytest.mark.skipif(
    not (DEFAULT_BUNDLE / "manifest.json").exists(), reason="needs the default bundle"
)
def test_warning_rate_per_family_and_overall(tiny_velocity_data, capsys):
    rows = load_bench("familiarity").main(
        ["--bundle", str(DEFAULT_BUNDLE), "--data", str(tiny_velocity_data)]
    )
    families = [p.name for p in sorted(tiny_velocity_data.iterdir()) if p.is_dir()]
    assert [r[0].split()[-1] for r in rows] == [*families, "all"]
    counts = [int(r[1]) for r in rows]
    assert counts[-1] == sum(counts[:-1]) > 0
    for _, _, warned, median in rows:
        assert 0.0 <= float(warned) <= 1.0 and 0.0 <= float(median) <= 1.0
    assert "warn below" in capsys.readouterr().out

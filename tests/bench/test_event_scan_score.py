"""bench/event_scan.py's scoring of a scan against the inserted events (no scan run)."""

from __future__ import annotations

import pytest
from bench_loader import load_bench


def test_class_accuracy_is_split_by_onset_error():
    bench = load_bench("event_scan")
    p = 1000.0
    events = [{"label": "earthquake", "stations": {"S": {"p_time": p + 500 * i}}} for i in range(3)]
    dets = [  # right, on time; wrong, 5 s late; right, 2 s early
        {"station": "S", "start": p - 50, "end": p + 60, "onset": p + 0.3, "label": "earthquake"},
        {"station": "S", "start": p + 450, "end": p + 560, "onset": p + 505, "label": "explosion"},
        {
            "station": "S",
            "start": p + 950,
            "end": p + 1060,
            "onset": p + 998,
            "label": "earthquake",
        },
    ]
    out = bench.score(
        {"events": events, "stations": {"S": [0, 0]}, "duration_s": 86400.0},
        {"detections": dets, "events": []},
    )
    by = out["class_accuracy_by_onset"]
    assert by["within 1 s"] == {"detections": 1, "accuracy": 1.0}
    assert by["3 s or more late"] == {"detections": 1, "accuracy": 0.0}
    assert by["early > 1 s"] == {"detections": 1, "accuracy": 1.0}
    assert by["1-3 s late"]["detections"] == 0
    assert out["class_accuracy"] == pytest.approx(2 / 3)

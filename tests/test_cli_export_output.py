"""What `seislens export` prints of an encoder's parity check."""

from __future__ import annotations

from seislens.cli import _parity_line


def test_the_checked_difference_is_shown_when_it_differs_from_the_raw_one():
    scaled = {"max_abs_diff": 5.6e-4, "checked": 2.4e-6, "provider": "CPUExecutionProvider"}
    assert _parity_line(scaled) == "5.6e-04 (checked 2.4e-06) on CPUExecutionProvider"
    same = {"max_abs_diff": 6.3e-7, "checked": 6.3e-7, "provider": "CPUExecutionProvider"}
    assert _parity_line(same) == "6.3e-07 on CPUExecutionProvider"
    assert _parity_line({"max_abs_diff": 1e-6}) == "1.0e-06 on ?"

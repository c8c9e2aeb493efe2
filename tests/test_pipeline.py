"""The top-layer pipelines: every registry branch has an evaluation."""

from seislens.models.branches import BRANCH_NAMES

from seislens.pipeline import EVALUATIONS


def test_every_branch_has_an_evaluation():
    assert set(EVALUATIONS) == set(BRANCH_NAMES)
    for load, _ in EVALUATIONS.values():
        assert callable(load())

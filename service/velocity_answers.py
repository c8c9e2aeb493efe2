"""The answer every velocity search gives, whatever its query (a gather, a velocity
model, descriptors): the top-k matches with links, the inferred descriptors and the
estimated model, kept for download by query id.

The routes build their own ``query`` part and call :func:`velocity_answer` with it.
"""

from __future__ import annotations

from typing import TypeVar

from fastapi import Request
from pydantic import BaseModel
from seislens.models.estimation import ESTIMATE_METHOD
from seislens.service.estimation import Estimate, EstimateStore
from seislens.service.library_search import ranked_matches
from seislens.service.links import link
from seislens.service.schemas import (
    DescriptorEstimate,
    DescriptorPrediction,
    EstimatedModel,
    VelocityAnswer,
    VelocityMatch,
)
from seislens.service.velocity_search import SearchOutcome, descriptor_unit

AnswerT = TypeVar("AnswerT", bound=VelocityAnswer)


def keep_estimate(
    estimates: EstimateStore,
    query_id: str,
    outcome: SearchOutcome,
    bundle: str,
    temperature: float,
) -> None:
    """Keep the search's estimated model for ``GET /v1/velocity/estimates/{query_id}``
    (nothing to keep when nothing matched)."""
    if outcome.velocity is None:
        return
    estimates.put(
        Estimate(
            query_id=query_id,
            velocity=outcome.velocity,
            neighbour_ids=[int(r.id) for r in outcome.records],
            weights=[round(float(w), 6) for w in outcome.weights],
            bundle=bundle,
            temperature=temperature,
        )
    )


def velocity_answer(
    answer: type[AnswerT],
    request: Request,
    query: BaseModel,
    query_id: str,
    outcome: SearchOutcome,
    temperature: float,
) -> AnswerT:
    """The response ``answer`` (a :class:`VelocityAnswer`) of one search: ``query`` as
    the route describes it, the matches with their model links, the inferred
    descriptors, the descriptor head's prediction (gather answers of a bundle with a
    head) and the link to the estimated model."""
    # one url_for per answer, not per match: the links differ only in the trailing id
    model_base = link(request, "get_velocity_model", model_id="0")[:-1]
    results = [
        VelocityMatch(
            **shared,
            family=rec.family,
            descriptors=rec.descriptors,
            model_url=f"{model_base}{rec.id}",
        )
        for rec, shared in ranked_matches(outcome.records, outcome.scores)
    ]
    inferred = {
        name: DescriptorEstimate(mean=mean, std=std, neighbour_std=std, unit=descriptor_unit(name))
        for name, (mean, std) in outcome.descriptors.items()
    }
    estimated = None
    if outcome.velocity is not None:
        estimated = EstimatedModel(
            query_id=query_id,
            url=link(request, "get_velocity_estimate", query_id=query_id),
            shape=list(outcome.velocity.shape),
            method=ESTIMATE_METHOD,
            neighbours=len(outcome.records),
            temperature=temperature,
        )
    extra = {}
    if outcome.predicted and "predicted_descriptors" in answer.model_fields:
        extra["predicted_descriptors"] = {
            name: DescriptorPrediction(mean=mean, std=std, unit=descriptor_unit(name))
            for name, (mean, std) in outcome.predicted.items()
        }
    return answer(
        query=query,
        results=results,
        inferred_descriptors=inferred,
        estimated_model=estimated,
        **extra,
    )

"""The contract between the steps of an iteration: typed outputs, stored as JSON.

Each step module declares ``Outputs`` (a :class:`StepOutputs`), ``Inputs``
(the outputs of earlier steps it reads) and ``run(ctx, inputs) -> Outputs``;
:mod:`interphase.campaign.loop` lists the steps and wires the one to the other.
The outputs are stored on the step's row (``campaign_step.outputs``) with the
keys of the model's fields. Readers validate them back into the model: a key
it does not know is an error, a key older versions did not write takes its
default.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from interphase.campaign.records import StepName, step_row
from interphase.db.models import StepState


class StoredModel(BaseModel):
    """Data stored as JSON in a campaign's rows: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")


class StepOutputs(StoredModel):
    """What one step gives the steps after it (and `campaign show`)."""

    def note(self) -> str:
        """One line about what the step produced."""
        return "recorded"


class Candidates(Protocol):
    """Outputs that name candidates: how ``generate`` reads the previous ``explore``.

    The loop's one back edge; a protocol keeps the two modules from importing
    each other.
    """

    @property
    def candidate_ids(self) -> list[int]: ...


class MissingOutputsError(LookupError):
    """A step reads the outputs of an earlier step that has not succeeded."""


OutputsT = TypeVar("OutputsT", bound=StepOutputs)


def stored_outputs(
    session: Session, campaign_id: int, index: int, name: StepName, model: type[OutputsT]
) -> OutputsT | None:
    """The outputs of a succeeded step as ``model``; None when it has not succeeded."""
    row = step_row(session, campaign_id, index, name)
    if row is None or row.state != StepState.succeeded:
        return None
    return model.model_validate(row.outputs or {})


def required_outputs(
    session: Session, campaign_id: int, index: int, name: StepName, model: type[OutputsT]
) -> OutputsT:
    """The outputs of a step that must have succeeded (an earlier step of the loop)."""
    outputs = stored_outputs(session, campaign_id, index, name, model)
    if outputs is None:
        raise MissingOutputsError(
            f"campaign {campaign_id}: step {name.value} of iteration {index} has not "
            "succeeded, so the steps after it cannot run"
        )
    return outputs

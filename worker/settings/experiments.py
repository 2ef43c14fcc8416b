"""Experiments in the rules (`cadences[].experiment`): the arms (holdout, base, variants), their
weights, and what a variant may change in a step. The arm draw is worker.cadence.arms."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, Field, model_validator

from connectors.models import Channel, Priority
from connectors.settings import Ident, Model
from worker.settings.durations import DurationField, NonNegativeDuration, PositiveDuration

S = TypeVar("S", bound=BaseModel)

HOLDOUT, BASE = "holdout", "base"


def _percent(value: Any) -> Any:
    """A share of the deals: `10%` or `10` (percent); `0` is none."""
    if isinstance(value, str):
        text = value.strip().removesuffix("%").strip()
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{value!r} is not a percentage (expected e.g. 10% or 10)"
                             ) from None
    return value


Percent = Annotated[float, BeforeValidator(_percent), Field(ge=0, le=100)]
Weight = Annotated[float, Field(gt=0, le=100)]
OVERRIDE_KINDS: dict[str, tuple[str, ...]] = {
    # step field -> the step kinds (at, every, spread) it may be overridden on
    "at": ("at",), "every": ("every",), "spread": ("spread",), "from": ("every", "spread"),
    "until": ("every", "spread"), "channel": ("at", "every", "spread"),
    "priority": ("at", "every", "spread"), "max_wait": ("at", "every", "spread"),
}


class StepOverride(Model):
    """What an arm changes in one step (its timing within the step's kind, channel, priority).

    Templates and the step's kind stay as written."""

    at: DurationField | None = Field(None, description="New `at` (an `at` step)")
    every: PositiveDuration | None = Field(
        None, description="New `every` (an `every` step)")
    spread: Annotated[int, Field(ge=1, le=100)] | None = Field(
        None, description="New `spread` (a `spread` step)")
    from_: DurationField | None = Field(None, alias="from",
                                        description="New window start (every/spread)")
    until: DurationField | None = Field(None, description="New window end (every/spread)")
    channel: Channel | None = Field(None, description="New task type")
    priority: Priority | None = Field(None, description="New priority")
    max_wait: NonNegativeDuration | None = Field(
        None, description="New max_wait (a step with `after`)")

    def apply(self, step: S) -> S:
        """The step with this override (checked again as a step: an `until` before `from`
        is an error of the arm)."""
        data = step.model_dump(by_alias=True, exclude_unset=True)
        data.update(self.model_dump(by_alias=True, exclude_unset=True))
        return type(step).model_validate(data)


class Variant(Model):
    """An arm of an experiment: the cadence with some step fields changed."""

    weight: Weight = Field(description="Share of the deals, in percent")
    steps: dict[Ident, StepOverride] = Field(
        default_factory=dict, description="Step id -> the fields this arm changes")


class Experiment(Model):
    """Arms of a cadence (holdout, base, variants): a deal's arm is kept while the id stays.

    Each deal gets its arm from a hash of (connection, deal id, experiment id)."""

    id: Ident = Field(description="The experiment; a new id starts a new experiment (every "
                                  "deal drawn again)")
    holdout: Percent = Field(0, description="Share (e.g. 10%) of deals enrolled and watched "
                                            "but given NO follow-up tasks: a control group")
    variants: dict[Ident, Variant] = Field(
        default_factory=dict, description="Arm name -> its weight and step overrides")
    base_weight: Weight | None = Field(
        None, description="Share of the cadence as written (default: what holdout and the "
                          "variants leave)")

    @model_validator(mode="after")
    def _weights(self) -> Experiment:
        for name in self.variants:
            if name in (HOLDOUT, BASE):
                raise ValueError(f"a variant cannot be named {name!r} (the {name} arm is "
                                 "always there): rename it")
        given = self.holdout + sum(v.weight for v in self.variants.values())
        total = given + (self.base_weight or 0)
        if self.base_weight is None and given > 100 + 1e-9:
            raise ValueError(f"holdout and the variants' weights add up to {given:g}%, over "
                             "100%: lower them")
        if self.base_weight is not None and abs(total - 100) > 1e-9:
            raise ValueError(f"holdout, base_weight and the variants' weights add up to "
                             f"{total:g}%, not 100%: make them add up to 100 (or leave "
                             "base_weight out: it takes the rest)")
        return self

    def arms(self) -> tuple[tuple[str, float], ...]:
        """(arm, weight in percent), holdout first, then base, then the variants as written;
        zero weights left out."""
        base = self.base_weight if self.base_weight is not None else max(
            0.0, 100 - self.holdout - sum(v.weight for v in self.variants.values()))
        arms = ((HOLDOUT, self.holdout), (BASE, base),
                *((name, v.weight) for name, v in self.variants.items()))
        return tuple((name, weight) for name, weight in arms if weight > 0)

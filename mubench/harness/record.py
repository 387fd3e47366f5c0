"""The typed record of one run, and the canonical config whose hash is its id."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mubench.hashing import sha256_of

HParamValue = int | float | str | bool


class RunConfig(BaseModel):
    """Everything that determines a run's result. Its canonical hash is the record id, so the same
    run is never stored twice and an interrupted sweep resumes where it stopped."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: str
    task_version: str
    scenario: str
    method: str
    method_version: str
    hparams: dict[str, HParamValue]
    seed: int = Field(ge=0)
    profile: str
    # sha256 of the method's source file (Method.source_digest): changed code is a new run. Empty
    # in configs from before it was part of the identity; an empty digest is left out of the id,
    # so their records keep their ids and stay readable (and are rerun, not reused).
    method_digest: str = ""
    # N: the run also builds a population of N originals, each unlearned by the method, and N
    # oracles, for the population attacks (mubench.metrics.audit). 0 (no population) is left out of
    # the id, so configs from before it keep their ids.
    population: int = Field(default=0, ge=0)

    @field_validator("hparams")
    @classmethod
    def _finite_hparams(cls, values: dict[str, HParamValue]) -> dict[str, HParamValue]:
        bad = sorted(k for k, v in values.items() if isinstance(v, float) and not math.isfinite(v))
        if bad:
            raise ValueError(f"non-finite hyper-parameters: {bad}")
        return values

    @property
    def id(self) -> str:
        left_out = ({"method_digest"} if not self.method_digest else set()) | ({"population"} if not self.population else set())
        return sha256_of(self.model_dump(mode="json", exclude=left_out))

    @property
    def label(self) -> str:
        population = f"/population{self.population}" if self.population else ""
        return f"{self.task}/{self.scenario}/{self.method}/seed{self.seed}/{self.profile}{population}"


class Interval(BaseModel):
    """A metric value's 95 % interval and the samples behind it (mubench.metrics.intervals): how it
    was computed (`method`) and how many samples each side had (`sizes`, e.g. forget, heldout,
    models), so that a reader can tell a difference from sampling noise."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    low: float
    high: float
    method: str
    sizes: dict[str, int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _ordered(self) -> Interval:
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low > self.high:
            raise ValueError(f"an interval needs finite low <= high, got [{self.low}, {self.high}]")
        return self


class Record(BaseModel):
    """One run's outcome with provenance. Metric values are finite floats, validated on write and read."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    config: RunConfig
    status: Literal["ok", "failed"]
    error: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    # 95 % intervals of the metrics that report one (the population attacks), under the metric's key
    intervals: dict[str, Interval] = Field(default_factory=dict)
    split_id: str
    data_source: str = ""  # which form of the task's data was used (Task.data_source); empty: official, complete
    metrics_version: str
    mia_spec_version: str  # membership-inference attacks change together under one versioned spec
    mubench_version: str
    git_commit: str
    hardware: str
    device: str
    # The precision the method's own loop ran in (Engine.hosting): "bf16" under autocast (a bf16
    # recipe on any device), "fp32" otherwise; empty on records from before it was recorded and
    # where the run failed before its method started.
    method_precision: Literal["", "fp32", "bf16"] = ""
    # sha256 of the unlearned weights this record scored (mubench.hashing.sha256_tensors over the
    # model's state dict, on the CPU): the same config on the CPU gives the same weights, so a
    # rerun can be compared weight for weight. Empty where the run failed and on older records.
    weights_sha256: str = Field(default="", pattern="^([0-9a-f]{64})?$")
    seconds: float = Field(ge=0)
    peak_rss_mb: float = Field(ge=0)
    created_at: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @field_validator("metrics")
    @classmethod
    def _finite(cls, values: dict[str, float]) -> dict[str, float]:
        bad = sorted(k for k, v in values.items() if not math.isfinite(v))
        if bad:
            raise ValueError(f"non-finite metric values: {bad}")
        return values

    @model_validator(mode="after")
    def _consistent(self) -> Record:
        if self.id != self.config.id:
            raise ValueError(f"record id {self.id[:12]} is not the hash of its config ({self.config.id[:12]})")
        stray = sorted(set(self.intervals) - set(self.metrics))
        if stray:
            raise ValueError(f"intervals of metrics the record does not hold: {stray}")
        if self.status == "failed" and not self.error:
            raise ValueError("a failed record must say why (error)")
        return self

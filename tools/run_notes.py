"""The notes a run keeps beside its programs (the archive's `notes` table): their keys and shapes.

Notes cross layers: the built-in driver (server/driver.py) writes its status, its bandits and the
meta-recommendations; the tools and the web view read them. The contract lives here, in the lower
layer, so that a reader never guesses a shape another module writes.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..store import Archive

DRIVER = "driver"  # DriverNote: the built-in driver's status
META = "meta"  # MetaNote: the newest meta-recommendations
ARM_BANDIT = "bandit:arms"  # tools.bandit.BanditState over the driver's arms (models, the offline operator)
PATCH_BANDIT = "bandit:patch_types"  # tools.bandit.BanditState over the patch types
MIGRATION = "migrated_at_evaluation"  # int: the evaluations count at the last migration (tools/islands.py)

DriverState = Literal["running", "stopping", "finished", "stopped", "interrupted", "failed"]


class DriverNote(BaseModel):
    """What the built-in driver says of itself; server/driver.py's DriverStatus adds its config."""

    model_config = ConfigDict(extra="allow")  # the writer's own fields (its config) pass through readers

    state: DriverState
    reason: str | None = None
    baseline_evaluated: int | None = Field(None, description="evaluations the run had when driving began; "
                                           "budgets count from here, across restarts")
    evaluations: int = Field(0, description="candidates evaluated (evaluated or failed) since driving began, "
                                            "from the archive: what max_evaluations counts")
    refused: int = Field(0, description="steps that produced no candidate: proposals refused (duplicate, novelty, "
                                        "no change) and model calls that failed")
    failing_models: dict[str, str] = Field(default_factory=dict, description="models whose last call failed, "
                                           "with its reason (cleared by a good call)")
    cost_usd: float = 0.0
    reserved_usd: float = 0.0
    in_flight: int = 0
    calls_limit: int | None = Field(None, description="model calls the driver keeps in flight at most, when rate "
                                                      "limits lowered it below its concurrency")
    arms: dict[str, dict[str, float]] = Field(default_factory=dict)
    patch_types: dict[str, dict[str, float]] = Field(default_factory=dict)


class MetaNote(BaseModel):
    """The newest meta-recommendations: a model's review of recent programs, shown in every brief."""

    at: int = Field(0, description="candidates evaluated when it was written")
    scratchpad: str = ""
    recommendations: str | None = None


async def driver(archive: Archive, run_id: int) -> dict[str, Any] | None:
    """The driver's note as its writer stored it, or None (never driven, or a note of another shape)."""
    note = await archive.get_note(run_id, DRIVER)
    try:
        DriverNote.model_validate(note)
    except ValidationError:
        return None
    return note


async def meta(archive: Archive, run_id: int) -> MetaNote:
    note = await archive.get_note(run_id, META)
    try:
        return MetaNote.model_validate(note) if note is not None else MetaNote()
    except ValidationError:
        return MetaNote()

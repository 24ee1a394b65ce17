"""`EvaluationResult`: what an OpenEvolve evaluator may return instead of a plain dict of metrics.

`metrics` are the scores (a missing `combined_score` is the average of the numeric ones);
`artifacts` are side information (text or bytes) shown to the model with the program.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class EvaluationResult:
    metrics: dict[str, Any]
    artifacts: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, metrics: dict[str, Any]) -> "EvaluationResult":
        """A plain metrics dict, wrapped."""
        return cls(metrics=metrics)

    def to_dict(self) -> dict[str, Any]:
        """The metrics alone."""
        return self.metrics

    def has_artifacts(self) -> bool:
        return bool(self.artifacts)

    def get_artifact_keys(self) -> list:
        return list(self.artifacts)

    def get_artifact_size(self, key: str) -> int:
        """Bytes of one artifact (text as UTF-8, anything else as its str()); 0 if there is none."""
        if key not in self.artifacts:
            return 0
        value = self.artifacts[key]
        if isinstance(value, bytes):
            return len(value)
        return len((value if isinstance(value, str) else str(value)).encode("utf-8"))

    def get_total_artifact_size(self) -> int:
        return sum(self.get_artifact_size(key) for key in self.artifacts)

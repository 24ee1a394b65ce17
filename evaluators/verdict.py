"""The outcome of scoring one candidate, before it is written to the archive."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Verdict(BaseModel):
    correct: bool
    combined_score: float | None = None
    public: dict[str, Any] = {}
    private: dict[str, Any] = {}
    text_feedback: str | None = None
    error: str | None = None

    @classmethod
    def invalid(cls, reason: str) -> Verdict:
        return cls(correct=False, combined_score=None, error=f"invalid: {reason}", text_feedback=reason)

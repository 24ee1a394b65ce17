"""What the tools may ask of model providers, without knowing any: the server plugs in an implementation.

Runs can name an embeddings endpoint (instead of the offline embedder) and an LLM judge for
near-copies in their config; the calls themselves live in server/ (the openai client).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class ProviderError(Exception):
    pass


class Providers(Protocol):
    async def embed(self, run_id: int, spec: dict[str, Any], text: str) -> np.ndarray:
        """An L2-normalised float32 embedding of `text` from the endpoint `spec` describes."""

    async def complete(self, run_id: int, spec: dict[str, Any], purpose: str, system: str, prompt: str) -> str:
        """The text of a chat completion from the model `spec` describes (recorded for the run as `purpose`)."""


class NoProviders:
    """The default of a workspace without a server: runs that need a provider say so."""

    async def embed(self, run_id: int, spec: dict[str, Any], text: str) -> np.ndarray:
        raise ProviderError("this workspace has no model providers; embeddings endpoints need the evomcp server")

    async def complete(self, run_id: int, spec: dict[str, Any], purpose: str, system: str, prompt: str) -> str:
        raise ProviderError(f"this workspace has no model providers; a {purpose.replace('_', ' ')} needs the "
                            f"evomcp server")

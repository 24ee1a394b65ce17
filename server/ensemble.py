"""The LLM ensemble: any OpenAI-compatible endpoints, called through `openai.AsyncOpenAI`.

Each model is an arm of the driver's bandit. Retries with backoff on 429 and 5xx are
the client's own (it honours Retry-After); authentication failures become a clear
error. A model without a price cannot be used in a run with a cost cap: it is never
costed at $0 silently.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..tools.perturb import OPERATOR as PERTURB

if TYPE_CHECKING:
    import openai



def preload_client() -> None:
    """Start importing `openai` in a background thread. openai 3 takes about a second to import (its typed
    models); a run sets up its archive, sandbox and seed meanwhile, and the first model call finds it loaded.
    Python's import lock makes an `import openai` elsewhere wait for this one rather than run twice."""
    if "openai" not in sys.modules:
        threading.Thread(target=_import_client, name="evomcp-import-openai", daemon=True).start()


def _import_client() -> None:
    try:
        import openai  # noqa: F401
    except Exception:  # noqa: BLE001 - the import is retried (and fails loudly) where the client is needed
        pass


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error, not a default silently kept

    name: str = Field(description="arm name, unique in the run (defaults to the model id)")
    model: str = Field(description="the provider's model id")
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint; default: OpenAI's")
    api_key_env: str | None = Field("OPENAI_API_KEY", description="environment variable that holds the key; "
                                    "null for endpoints without keys (local servers)")
    price_in_per_m: float | None = Field(None, ge=0, description="USD per million input tokens")
    price_out_per_m: float | None = Field(None, ge=0, description="USD per million output tokens")
    temperatures: list[float] = Field([0.0, 0.5, 1.0], description="one is drawn per call")
    max_tokens: int = Field(4096, ge=16, le=200_000)
    timeout_s: float = Field(120.0, gt=0, le=3600)
    max_retries: int = Field(3, ge=0, le=10)

    @model_validator(mode="before")
    @classmethod
    def _name_defaults_to_model(cls, data: Any) -> Any:
        if isinstance(data, dict) and "name" not in data and "model" in data:
            return {"name": data["model"], **data}
        return data

    @field_validator("temperatures")
    @classmethod
    def _some_temperature(cls, value: list[float]) -> list[float]:
        if not value:
            raise ValueError("give at least one temperature")
        return value

    @property
    def priced(self) -> bool:
        return self.price_in_per_m is not None and self.price_out_per_m is not None

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        if not self.priced:
            return 0.0
        return (prompt_tokens * self.price_in_per_m + completion_tokens * self.price_out_per_m) / 1e6

    def new_client(self) -> openai.AsyncOpenAI:
        import openai

        key = os.environ.get(self.api_key_env, "") if self.api_key_env else "no-key-needed"
        return openai.AsyncOpenAI(api_key=key or "missing", base_url=self.base_url, timeout=self.timeout_s,
                                  max_retries=self.max_retries)

    def worst_case_cost(self, prompt_chars: int) -> float:
        """An upper bound of one call's cost, reserved against the cap before the call."""
        return self.cost(prompt_chars // 2 + 1, self.max_tokens)


class ModelError(Exception):
    """A call failed, or the reply was unusable. `fatal`: retrying this model cannot help; `unreachable`: no
    connection to its endpoint could be made (nothing listens there, or the name does not resolve);
    `retry_after` (seconds, 0 when the endpoint named no time): it was rate limited (HTTP 429)."""

    def __init__(self, message: str, fatal: bool = False, unreachable: bool = False,
                 retry_after: float | None = None):
        super().__init__(message)
        self.fatal = fatal
        self.unreachable = unreachable
        self.retry_after = retry_after

    @property
    def rate_limited(self) -> bool:
        return self.retry_after is not None


def _retry_after(headers: Any) -> float:
    """Seconds an endpoint asked to wait (`retry-after-ms` or `retry-after` in seconds), 0 when unsaid, at most
    an hour; an HTTP date is not honoured (0)."""
    for key, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        try:
            value = float(headers.get(key)) * scale
        except (TypeError, ValueError):
            continue
        if value == value and value >= 0:
            return min(value, 3600.0)
    return 0.0


@dataclass
class Reply:
    text: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    seconds: float
    temperature: float
    call_id: int | None = None  # its row in the archive's model calls, when it was recorded


class Ensemble:
    """One AsyncOpenAI client per model spec. With an archive, every call made for a run (`run_id`) is
    recorded there, good or failed: the one place model calls are recorded."""

    def __init__(self, specs: list[ModelSpec], archive: Any = None):
        names = [s.name for s in specs]
        if len(set(names)) != len(names) or PERTURB in names:
            raise ModelError(f"model names must be unique and not {PERTURB!r}: {names}")
        self.specs = {s.name: s for s in specs}
        self.archive = archive
        self._clients: dict[str, openai.AsyncOpenAI] = {}

    def check(self, *, budgeted: bool) -> None:
        for spec in self.specs.values():
            if spec.api_key_env and not os.environ.get(spec.api_key_env):
                raise ModelError(f"model {spec.name!r} needs its API key in ${spec.api_key_env}; set it, or set "
                                 f"api_key_env to null for an endpoint without keys")
            if budgeted and not spec.priced:
                raise ModelError(f"model {spec.name!r} has no price, so a cost cap cannot be kept; give "
                                 f"price_in_per_m and price_out_per_m (0 for a free local model)")

    def client(self, name: str) -> openai.AsyncOpenAI:
        if name not in self._clients:
            self._clients[name] = self.specs[name].new_client()
        return self._clients[name]

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()

    async def _record(self, run_id: int | None, name: str, purpose: str, reply: Reply | None = None,
                      error: Exception | None = None) -> int | None:
        if self.archive is None or run_id is None:
            return None
        if reply is None:
            return await self.archive.add_llm_call(run_id, name, purpose, ok=False, error=str(error)[:1000])
        return await self.archive.add_llm_call(
            run_id, name, purpose, prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
            cost_usd=reply.cost_usd, seconds=reply.seconds, ok=True)

    async def complete(self, name: str, system: str, prompt: str, rng: np.random.Generator,
                       run_id: int | None = None, purpose: str = "mutation") -> Reply:
        """A chat completion; recorded for `run_id` (ModelError when it failed or its reply is unusable)."""
        try:
            reply = await self._complete(name, system, prompt, rng)
        except ModelError as exc:
            await self._record(run_id, name, purpose, error=exc)
            raise
        reply.call_id = await self._record(run_id, name, purpose, reply)
        return reply

    async def embed(self, name: str, text: str, run_id: int | None = None) -> np.ndarray:
        """An embedding of `text`, L2-normalised; recorded for `run_id`."""
        import openai

        spec = self.specs[name]
        started = time.monotonic()
        try:
            response = await self.client(name).embeddings.create(model=spec.model, input=text, encoding_format="float")
            vector = np.asarray(response.data[0].embedding, dtype=np.float32)
        except (openai.APIError, ValueError, IndexError, TypeError) as exc:
            error = ModelError(f"{name}: {type(exc).__name__}: {str(exc)[:300]}")
            await self._record(run_id, name, "embedding", error=error)
            raise error from None
        tokens = _count(getattr(response.usage, "prompt_tokens", 0))
        await self._record(run_id, name, "embedding", Reply(
            text="", prompt_tokens=tokens, completion_tokens=0, cost_usd=tokens * (spec.price_in_per_m or 0.0) / 1e6,
            seconds=time.monotonic() - started, temperature=0.0))
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm > 0 else vector

    async def _complete(self, name: str, system: str, prompt: str, rng: np.random.Generator) -> Reply:
        spec = self.specs[name]
        temperature = float(rng.choice(spec.temperatures))
        started = time.monotonic()
        import openai

        try:
            # the client's generic POST with the reply as plain JSON (`cast_to=object`): `chat.completions.create`
            # walks its ~40 typed parameters and builds typed models of the reply, about 3 ms a call that a
            # step does not need; the request, retries (Retry-After honoured) and errors are the client's own
            response = await self.client(name).post("/chat/completions", cast_to=object, body={
                "model": spec.model, "temperature": temperature, "max_tokens": spec.max_tokens,
                "messages": [{"role": "system", "content": system}, {"role": "user", "content": prompt}],
            })
        except openai.AuthenticationError as exc:
            raise ModelError(f"model {name!r}: the endpoint refused the API key"
                             f"{f' from ${spec.api_key_env}' if spec.api_key_env else ''} ({exc.status_code})",
                             fatal=True) from None
        except (openai.NotFoundError, openai.PermissionDeniedError) as exc:
            raise ModelError(f"model {name!r}: HTTP {exc.status_code}: {str(exc.message)[:300]} (check the model "
                             f"id and base_url)", fatal=True) from None
        except openai.APITimeoutError:
            raise ModelError(f"model {name!r}: no answer within {spec.timeout_s:g} s") from None
        except openai.RateLimitError as exc:
            raise ModelError(f"model {name!r}: HTTP 429 (rate limited) after {spec.max_retries} retries: "
                             f"{str(exc.message)[:300]}", retry_after=_retry_after(exc.response.headers)) from None
        except openai.APIStatusError as exc:
            raise ModelError(f"model {name!r}: HTTP {exc.status_code} after {spec.max_retries} retries: "
                             f"{str(exc.message)[:300]}") from None
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc.__context__
            why = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)
            raise ModelError(f"model {name!r}: cannot reach {spec.base_url or 'the default endpoint'} "
                             f"({why[:300]})", unreachable=True) from None
        except openai.APIError as exc:
            raise ModelError(f"model {name!r}: {type(exc).__name__}: {str(exc)[:300]}") from None
        except (ValueError, RecursionError) as exc:  # a body that is not JSON, or nested beyond reason
            raise ModelError(f"model {name!r}: malformed reply ({type(exc).__name__}: {str(exc)[:200]})") from None
        seconds = time.monotonic() - started
        text, prompt_tokens, completion_tokens = _read_completion(name, response)
        return Reply(text=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                     cost_usd=spec.cost(prompt_tokens, completion_tokens), seconds=seconds, temperature=temperature)


def _read_completion(name: str, response: Any) -> tuple[str, int, int]:
    """(text, prompt tokens, completion tokens) of a chat completion's JSON, read as the untrusted data it is."""
    if not isinstance(response, dict) or "choices" not in response:
        raise ModelError(f"model {name!r}: malformed reply (not a chat completion)")
    choices = response["choices"] or []
    if not isinstance(choices, list):
        raise ModelError(f"model {name!r}: malformed reply (its choices are not a list)")
    message = choices[0].get("message") if choices and isinstance(choices[0], dict) else None
    text = message.get("content") if isinstance(message, dict) else None
    if text is not None and not isinstance(text, str):
        raise ModelError(f"model {name!r}: malformed reply (its message content is not text)")
    usage = response.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    return text or "", _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53 else 0


class OpenAIProviders:
    """Embeddings and completions a run's config asks for (its embeddings endpoint, its novelty judge), through
    OpenAI-compatible endpoints; the calls are recorded in the archive."""

    def __init__(self, archive):
        self.archive = archive
        self._ensembles: dict[str, Ensemble] = {}

    def _ensemble(self, spec: dict) -> tuple[Ensemble, str]:
        model = ModelSpec.model_validate(spec)
        key = model.model_dump_json()
        if key not in self._ensembles:
            self._ensembles[key] = Ensemble([model], self.archive)
        return self._ensembles[key], model.name

    async def embed(self, run_id: int, spec: dict, text: str) -> np.ndarray:
        from ..tools.providers import ProviderError

        ensemble, name = self._ensemble(spec)
        try:
            return await ensemble.embed(name, text, run_id)
        except ModelError as exc:
            raise ProviderError(str(exc)) from None

    async def complete(self, run_id: int, spec: dict, purpose: str, system: str, prompt: str) -> str:
        from ..tools.providers import ProviderError

        ensemble, name = self._ensemble(spec)
        try:
            reply = await ensemble.complete(name, system, prompt, np.random.default_rng(), run_id=run_id,
                                            purpose=purpose)
        except ModelError as exc:
            raise ProviderError(str(exc)) from None
        return reply.text

"""Tests of the FakeOpenAI test server, driven through the real ``openai`` client."""

import asyncio
import json
import math
import time

import openai
import pytest

from evomcp.testing.fake_openai import Empty, FakeOpenAI, HTTPError, Invalid, Malformed, Recorded, Reply, Timeout

KEY = "sk-fake-test"
MSG = [{"role": "user", "content": "score 0.123456789012 please improve"}]


@pytest.fixture
def fake():
    with FakeOpenAI(api_key=KEY) as server:
        yield server


def aclient(fake, **kw):
    kw = {"api_key": KEY, "max_retries": 0, "timeout": 5.0} | kw
    return openai.AsyncOpenAI(base_url=fake.base_url, **kw)


def client(fake, **kw):
    kw = {"api_key": KEY, "max_retries": 0, "timeout": 5.0} | kw
    return openai.OpenAI(base_url=fake.base_url, **kw)


async def test_scripted_reply_with_usage(fake):
    fake.script("gpt-a", ["first answer!", Reply("x", prompt_tokens=100, completion_tokens=7, finish_reason="length")])
    async with aclient(fake) as c:
        r = await c.chat.completions.create(model="gpt-a", messages=MSG)
        assert r.object == "chat.completion" and r.model == "gpt-a" and r.id.startswith("chatcmpl-")
        assert r.choices[0].message.role == "assistant"
        assert r.choices[0].message.content == "first answer!"
        assert r.choices[0].finish_reason == "stop"
        assert r.usage.prompt_tokens == len(MSG[0]["content"]) // 4
        assert r.usage.completion_tokens == len("first answer!") // 4
        assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens

        r = await c.chat.completions.create(model="gpt-a", messages=MSG)
        assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (100, 7, 107)
        assert r.choices[0].finish_reason == "length"
        assert fake.pending("gpt-a") == 0

        # script exhausted and no responder -> a loud 500
        with pytest.raises(openai.InternalServerError, match="exhausted"):
            await c.chat.completions.create(model="gpt-a", messages=MSG)


async def test_per_model_responders_and_script_precedence(fake):
    fake.add_model("echo", lambda req: req["messages"][-1]["content"].upper())
    fake.add_model("const", "always this")
    fake.script("echo", ["scripted first"])
    async with aclient(fake) as c:
        async def ask(model, text):
            r = await c.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])
            return r.choices[0].message.content

        assert await ask("echo", "abc") == "scripted first"
        assert await asyncio.gather(ask("echo", "abc"), ask("const", "q"), ask("echo", "xyz")) == [
            "ABC", "always this", "XYZ"]
        with pytest.raises(openai.NotFoundError):
            await ask("unknown-model", "hi")
        models = [m.id async for m in c.models.list()]
        assert models == ["const", "echo"]


def test_default_responder_and_sync_client():
    with FakeOpenAI(responder=lambda req: f"model={req['model']}") as fake:  # no api key required
        with client(fake, api_key="anything") as c:
            r = c.chat.completions.create(model="whatever", messages=MSG)
            assert r.choices[0].message.content == "model=whatever"


async def test_embeddings_shape_and_determinism(fake):
    async with aclient(fake) as c:
        r = await c.embeddings.create(model="emb", input=["hello world", "other text", "hello world"])
        assert [d.index for d in r.data] == [0, 1, 2] and r.model == "emb"
        vecs = [d.embedding for d in r.data]
        assert all(len(v) == 64 for v in vecs)
        assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-5) for v in vecs)
        assert vecs[0] == vecs[2] != vecs[1]
        assert vecs[0] == fake.embed("hello world")
        # single string, explicit float encoding, custom dimension
        r1 = await c.embeddings.create(model="emb", input="hello world", encoding_format="float")
        assert r1.data[0].embedding == vecs[0]
        r2 = await c.embeddings.create(model="emb", input="hello world", dimensions=16)
        assert len(r2.data[0].embedding) == 16
        assert r.usage.prompt_tokens == r.usage.total_tokens > 0
    with FakeOpenAI(embedding_dim=8) as other:  # independent instance, same vectors for same dim
        with client(other) as c:
            assert c.embeddings.create(model="e", input="hello world").data[0].embedding == fake.embed("hello world", 8)


async def test_embedding_fault(fake):
    fake.script("emb", [HTTPError(503)])
    async with aclient(fake) as c:
        with pytest.raises(openai.InternalServerError):
            await c.embeddings.create(model="emb", input="x")
        assert len((await c.embeddings.create(model="emb", input="x")).data) == 1  # script used up


async def test_wrong_or_missing_key_is_401(fake):
    async with aclient(fake, api_key="sk-wrong") as c:
        with pytest.raises(openai.AuthenticationError) as info:
            await c.chat.completions.create(model="m", messages=MSG)
    assert info.value.status_code == 401
    assert info.value.code == "invalid_api_key" and info.value.type == "invalid_request_error"
    assert fake.requests[-1].headers["authorization"] == "Bearer sk-wrong"


async def test_rate_limit_and_retry(fake):
    fake.script("m", [HTTPError(429, retry_after=0.1)])
    async with aclient(fake) as c:
        with pytest.raises(openai.RateLimitError) as info:
            await c.chat.completions.create(model="m", messages=MSG)
    assert info.value.response.headers["retry-after"] == "0.1"

    fake.clear()
    fake.script("m", [HTTPError(429, retry_after=0.1), "ok"])
    async with aclient(fake, max_retries=2) as c:
        r = await c.chat.completions.create(model="m", messages=MSG)
    assert r.choices[0].message.content == "ok"
    assert [c.headers["x-stainless-retry-count"] for c in fake.calls("m")] == ["0", "1"]


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors(fake, status):
    fake.script("m", [HTTPError(status, message="boom")])
    async with aclient(fake) as c:
        with pytest.raises(openai.InternalServerError, match="boom") as info:
            await c.chat.completions.create(model="m", messages=MSG)
    assert info.value.status_code == status


async def test_timeout_fault_is_interrupted_at_shutdown():
    t0 = time.monotonic()
    with FakeOpenAI() as fake:
        fake.script("slow", [Timeout(seconds=30)])
        async with aclient(fake, timeout=0.5, api_key="x") as c:
            with pytest.raises(openai.APITimeoutError):
                await c.chat.completions.create(model="slow", messages=MSG)
    assert time.monotonic() - t0 < 3  # shutdown did not wait for the 30 s sleep


async def test_timeout_then_answers_when_client_waits(fake):
    fake.script("slow", [Timeout(seconds=0.2, then="late")])
    async with aclient(fake) as c:
        r = await c.chat.completions.create(model="slow", messages=MSG)
    assert r.choices[0].message.content == "late"


async def test_malformed_empty_and_invalid_replies(fake):
    fake.script("m", [Malformed(), Malformed(content_type="text/plain"), Empty(), Empty(None), Invalid()])
    async with aclient(fake) as c:
        # JSON content-type with a non-JSON body: the client lets the decode error escape
        with pytest.raises(json.JSONDecodeError):
            await c.chat.completions.create(model="m", messages=MSG)
        # a non-JSON content-type: the (non-strict) client returns the raw text instead of a model
        assert await c.chat.completions.create(model="m", messages=MSG) == "this is {not json"
        r = await c.chat.completions.create(model="m", messages=MSG)
        assert r.choices[0].message.content == "" and r.usage.completion_tokens == 0
        r = await c.chat.completions.create(model="m", messages=MSG)
        assert r.choices[0].message.content is None
        r = await c.chat.completions.create(model="m", messages=MSG)
        assert r.choices is None  # the non-strict client does not validate the missing key


async def test_stream_rejected(fake):
    fake.add_model("m", "x")
    async with aclient(fake) as c:
        with pytest.raises(openai.BadRequestError, match="streaming"):
            await c.chat.completions.create(model="m", messages=MSG, stream=True)


async def test_requests_recorded(fake):
    fake.add_model("a", "A")
    fake.add_model("b", "B")
    async with aclient(fake) as c:
        for model in ["a", "b", "a"]:
            await c.chat.completions.create(model=model, messages=MSG, temperature=0.3)
        await c.embeddings.create(model="emb", input="t")
    reqs = fake.requests
    assert [(r.path, r.model) for r in reqs] == [
        ("/v1/chat/completions", "a"), ("/v1/chat/completions", "b"),
        ("/v1/chat/completions", "a"), ("/v1/embeddings", "emb")]
    path, model, body, headers = reqs[0]
    assert isinstance(reqs[0], Recorded) and body["temperature"] == 0.3
    assert "0.123456789012" in body["messages"][0]["content"]
    assert headers["authorization"] == f"Bearer {KEY}" and headers["content-type"] == "application/json"
    assert len(fake.calls("a")) == 2 and len(fake.calls(path="/embeddings")) == 1


async def test_serves_while_event_loop_is_blocked(fake):
    """A blocking sync call from inside the loop still gets answered (server runs in a thread)."""
    fake.add_model("m", "sync ok")
    with client(fake) as c:
        assert c.chat.completions.create(model="m", messages=MSG).choices[0].message.content == "sync ok"


def test_responder_exception_becomes_500():
    def broken(req):
        raise RuntimeError("responder bug")

    with FakeOpenAI(responder=broken) as fake, client(fake, api_key="x") as c:
        with pytest.raises(openai.InternalServerError, match="responder bug"):
            c.chat.completions.create(model="m", messages=MSG)

"""Bad requests get a clear JSON error from the ``tether.errors`` tree, an oversized
body is refused before it is read, and nothing is lost."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.conftest import AppFactory
from tests.server.conftest import build_app, serving

RUNS = "/v1/namespaces/default/workflows"


async def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    return str(error["message"])


async def _raw(http: httpx.AsyncClient, head: bytes, *chunks: bytes) -> bytes:
    """Send a hand-made request; return the response's status line."""
    reader, writer = await asyncio.open_connection("127.0.0.1", http.base_url.port)
    try:
        writer.write(head)
        for chunk in chunks:
            writer.write(chunk)
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), 30)
    finally:
        writer.close()


async def test_malformed_and_mistyped_bodies(make_app: AppFactory) -> None:
    async with serving(build_app(make_app)) as http:
        json_type = {"Content-Type": "application/json"}
        bad = await http.post(RUNS, content=b'{"type": "greet",', headers=json_type)
        assert "not valid JSON" in await _error(bad, 400, "invalid_argument")
        listed = await http.post(RUNS, content=b'["greet"]', headers=json_type)
        assert "must be a JSON object, got list" in await _error(listed, 400, "invalid_argument")
        mistyped = await http.post(RUNS, json={"type": "greet", "args": "Ada", "id": 7})
        message = await _error(mistyped, 400, "invalid_argument")
        assert "args:" in message and "id:" in message
        unknown = await http.post(RUNS, json={"type": "greet", "args": ["x"], "colour": "red"})
        assert "colour" in await _error(unknown, 400, "invalid_argument")
        missing = await http.post(RUNS, json={"args": []})
        assert "type" in await _error(missing, 400, "invalid_argument")
        policy = await http.post(RUNS, json={"type": "greet", "args": ["x"], "id_reuse": "sure"})
        assert "id_reuse" in await _error(policy, 400, "invalid_argument")
        checked = await http.post(RUNS, json={"type": "greet", "args": [42]})
        assert "argument 'name' of greet" in await _error(checked, 400, "invalid_argument")
        arity = await http.post(RUNS, json={"type": "greet", "args": []})
        await _error(arity, 400, "invalid_argument")
        assert (await http.get(RUNS)).json()["runs"] == [], "no bad request started a run"


async def test_unknown_things_are_404_and_bad_parameters_400(make_app: AppFactory) -> None:
    async with serving(build_app(make_app)) as http:
        await _error(await http.post(RUNS, json={"type": "nope"}), 404, "unknown_workflow_type")
        await _error(await http.get(f"{RUNS}/ghost"), 404, "workflow_not_found")
        await _error(await http.get(f"{RUNS}/ghost/result"), 404, "workflow_not_found")
        await _error(await http.post(f"{RUNS}/ghost/signal/x"), 404, "workflow_not_found")
        await _error(await http.delete(f"{RUNS}/ghost"), 404, "workflow_not_found")
        await _error(await http.get("/v1/namespaces/nowhere/workflows"), 404, "namespace_not_found")
        await _error(
            await http.post("/v1/namespaces/nowhere/workflows", json={"type": "greet"}),
            404,
            "namespace_not_found",
        )
        await _error(await http.get("/v2/whatever"), 404, "not_found")
        await _error(await http.put(RUNS), 405, "method_not_allowed")
        status = await http.get(RUNS, params={"status": "sleepy"})
        assert "unknown status 'sleepy'" in await _error(status, 400, "invalid_argument")
        await _error(await http.get(RUNS, params={"limit": "many"}), 400, "invalid_argument")
        await _error(await http.get(RUNS, params={"limit": 0}), 400, "invalid_argument")
        await _error(await http.get(RUNS, params={"cursor": "garbage"}), 400, "invalid_argument")
        await _error(
            await http.get("/v1/namespaces/default/usage", params={"by": "colour"}),
            400,
            "invalid_argument",
        )
        since = await http.get("/v1/namespaces/default/usage", params={"since": "yesterday"})
        assert "?since= must be a number" in await _error(since, 400, "invalid_argument")

        await http.post(RUNS, json={"type": "inbox", "args": ["o"], "id": "in"})
        wait = await http.get(f"{RUNS}/in/result", params={"wait": 9999})
        assert "between 0 and 300" in await _error(wait, 400, "invalid_argument")
        query = await http.post(f"{RUNS}/in/query/nosuch")
        assert "nosuch" in await _error(query, 400, "invalid_argument")
        args = await http.post(f"{RUNS}/in/query/owner", json={"args": {"a": 1}})
        await _error(args, 400, "invalid_argument")
        await _error(
            await http.get(f"{RUNS}/in", params={"run_id": "r0"}), 404, "workflow_not_found"
        )


async def test_the_nul_character_is_400_or_404_never_a_store_error(make_app: AppFactory) -> None:
    """PostgreSQL's text cannot hold NUL: on both stores a request naming one is a
    client error (400), or finds nothing (404), and nothing is stored."""
    async with serving(build_app(make_app)) as http:
        for body in [
            {"type": "greet", "args": ["x"], "id": "a\x00b"},
            {"type": "greet", "args": ["x"], "task_queue": "q\x00"},
            {"type": "greet", "args": ["x"], "search_attributes": {"customer": "\x00"}},
        ]:
            message = await _error(await http.post(RUNS, json=body), 400, "invalid_argument")
            assert "NUL" in message
        await _error(await http.get(f"{RUNS}/a%00b"), 404, "workflow_not_found")
        await _error(await http.get(f"{RUNS}/a%00b/result"), 404, "workflow_not_found")
        await _error(await http.get(f"{RUNS}?type=a%00"), 400, "invalid_argument")
        nul_namespace = "/v1/namespaces/a%00b/workflows"
        await _error(await http.get(nul_namespace), 400, "invalid_argument")
        assert (await http.get(RUNS)).json()["runs"] == [], "nothing was started"


async def test_oversized_bodies_are_refused_and_nothing_is_lost(make_app: AppFactory) -> None:
    app = build_app(make_app, max_payload=10_000)
    async with serving(app) as http:
        await http.post("/v1/namespaces", json={"name": "a", "settings": {"max_payload": 100}})
        await http.post(RUNS, json={"type": "inbox", "args": ["o"], "id": "in"})
        before = (await http.get(f"{RUNS}/in/history")).json()

        # Declared too large: refused from the headers, before any body is sent.
        head = (
            f"POST {RUNS}/in/signal/mail HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n"
        ).encode()
        assert (await _raw(http, head)).startswith(b"HTTP/1.1 413")
        # Chunked, with no declared length: refused once the limit is passed.
        head = (
            f"POST {RUNS}/in/signal/mail HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        ).encode()
        chunk = b"%x\r\n%s\r\n" % (50_000, b" " * 50_000)
        assert (await _raw(http, head, chunk, chunk)).startswith(b"HTTP/1.1 413")

        # Within the body limit but over the codec's payload limit.
        big = await http.post(f"{RUNS}/in/signal/mail", json={"payload": "x" * 20_000})
        assert "over the limit of 10000 bytes" in await _error(big, 413, "payload_too_large")
        # Over the namespace's own, lower limit.
        small = await http.post(
            "/v1/namespaces/a/workflows", json={"type": "inbox", "args": ["y" * 500]}
        )
        assert "namespace's limit of 100" in await _error(small, 413, "payload_too_large")
        declared = await http.post(
            "/v1/namespaces/a/workflows", json={"type": "inbox", "args": ["y" * 70_000]}
        )
        await _error(declared, 413, "payload_too_large")

        assert (await http.get(f"{RUNS}/in/history")).json() == before, "nothing was recorded"
        for n in (1, 2):
            assert (
                await http.post(f"{RUNS}/in/signal/mail", json={"payload": n})
            ).status_code == 202
        done = await http.get(f"{RUNS}/in/result", params={"wait": 30})
        assert done.json()["result"] == ["o", 1, 2], "the run goes on as if nothing happened"


async def test_query_without_workflow_code_is_501(make_app: AppFactory) -> None:
    bare = make_app()  # no workflow code: the server can start and signal, not query
    async with serving(bare, worker=False) as http:
        started = await http.post(RUNS, json={"type": "inbox", "args": ["z"], "id": "q"})
        assert started.status_code == 201
        query = await http.post(f"{RUNS}/q/query/owner")
        assert "tether server MODULE:APP" in await _error(query, 501, "query_unavailable")

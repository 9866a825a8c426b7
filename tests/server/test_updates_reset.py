"""Updates, update-with-start and reset over HTTP, on every store."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import AppFactory
from tests.server.conftest import build_app, serving

RUNS = "/v1/namespaces/default/workflows"


async def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def test_update_and_update_with_start(make_app: AppFactory) -> None:
    async with serving(build_app(make_app)) as http:
        await _ok(await http.post(RUNS, json={"type": "plan", "args": [["a"]], "id": "p1"}), 201)
        added = await _ok(
            await http.post(f"{RUNS}/p1/update/add", json={"args": ["b"], "update_id": "u1"})
        )
        assert added == {"workflow_id": "p1", "result": ["a", "B"]}
        again = await _ok(
            await http.post(f"{RUNS}/p1/update/add", json={"args": ["zzz"], "update_id": "u1"})
        )
        assert again["result"] == ["a", "B"], "the same update id returns the same outcome"
        refused = await http.post(f"{RUNS}/p1/update/add", json={"args": [""]})
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "update_rejected"
        unknown = await http.post(f"{RUNS}/p1/update/nope", json={})
        assert unknown.json()["error"]["code"] == "update_rejected"
        history = (await _ok(await http.get(f"{RUNS}/p1/history")))["events"]
        assert sum(e["type"] == "UpdateAccepted" for e in history) == 1

        started = await _ok(
            await http.post(
                f"{RUNS}/p2/update-with-start/add",
                json={"type": "plan", "start_args": [[]], "args": ["x"]},
            )
        )
        assert started["workflow_id"] == "p2" and started["result"] == ["X"]
        await _ok(await http.post(f"{RUNS}/p2/signal/done", json={}), 202)
        done = await _ok(await http.get(f"{RUNS}/p2/result", params={"wait": 30}))
        assert done["result"] == ["X"]
        missing = await http.post(f"{RUNS}/ghost/update/add", json={"args": ["b"]})
        assert missing.status_code == 404
        wrong = await http.post(f"{RUNS}/p1/update/add", json={"args": "b"})
        assert wrong.status_code == 400
        for wait in (-1, 301):  # refused as ?wait= is, not silently clamped
            body = {"args": ["c"], "update_id": "u-wait", "wait": wait}
            out_of_range = await http.post(f"{RUNS}/p1/update/add", json=body)
            assert out_of_range.status_code == 400 and "wait" in out_of_range.text
            started = {**body, "type": "plan", "start_args": [[]]}
            out_of_range = await http.post(f"{RUNS}/p3/update-with-start/add", json=started)
            assert out_of_range.status_code == 400 and "wait" in out_of_range.text
        history = (await _ok(await http.get(f"{RUNS}/p1/history")))["events"]
        assert sum(e["type"] == "UpdateAccepted" for e in history) == 1, "nothing recorded"
        assert (await http.get(f"{RUNS}/p3")).status_code == 404, "nothing started"


async def test_reset_over_http(make_app: AppFactory) -> None:
    async with serving(build_app(make_app)) as http:
        await _ok(await http.post(RUNS, json={"type": "greet", "args": ["Ada"], "id": "g"}), 201)
        first = await _ok(await http.get(f"{RUNS}/g/result", params={"wait": 30}))
        events = (await _ok(await http.get(f"{RUNS}/g/history")))["events"]
        old_run = (await _ok(await http.get(f"{RUNS}/g")))["run_id"]
        reset = await _ok(
            await http.post(f"{RUNS}/g/reset", json={"to": 1, "reason": "try again"}), 201
        )
        assert reset["reset_from"] == old_run and reset["run_id"] != old_run
        again = await _ok(await http.get(f"{RUNS}/g/result", params={"wait": 30}))
        assert again["result"] == first["result"]
        new_events = (await _ok(await http.get(f"{RUNS}/g/history")))["events"]
        assert any(e["type"] == "WorkflowReset" for e in new_events)
        assert len(new_events) > len(events)
        bad = await http.post(f"{RUNS}/g/reset", json={"to": 10_000})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_argument"


async def test_priority_search_attributes_and_list_filters(make_app: AppFactory) -> None:
    async with serving(build_app(make_app)) as http:
        for i, customer in enumerate(["acme", "acme", "globex"]):
            body = {
                "type": "greet", "args": [f"n{i}"], "id": f"s{i}",
                "priority": {"level": 1, "fairness_key": customer},
                "search_attributes": {"customer": customer, "amount": 10 * (i + 1)},
            }  # fmt: skip
            await _ok(await http.post(RUNS, json=body), 201)
            await _ok(await http.get(f"{RUNS}/s{i}/result", params={"wait": 30}))
        acme = await _ok(await http.get(RUNS, params={"search_attributes": '{"customer": "acme"}'}))
        assert sorted(r["workflow_id"] for r in acme["runs"]) == ["s0", "s1"]
        assert acme["runs"][0]["search_attributes"]["customer"] == "acme"
        big = await _ok(
            await http.get(RUNS, params={"search_attributes": '{"amount": {"min": 20}}'})
        )
        assert sorted(r["workflow_id"] for r in big["runs"]) == ["s1", "s2"]
        later = await _ok(await http.get(RUNS, params={"started_after": 4e9}))
        assert later["runs"] == []
        events = (await _ok(await http.get(f"{RUNS}/s2/history")))["events"]
        assert events[0]["attrs"]["fairness"] == {"priority": 1, "key": "globex", "weight": 1.0}
        for bad in ['{"amount": {"low": 1}}', "[1]", "{nope"]:
            refused = await http.get(RUNS, params={"search_attributes": bad})
            assert refused.status_code == 400, bad
        wrong = await http.post(RUNS, json={"type": "greet", "priority": {"level": 12}})
        assert wrong.status_code == 400 and "0 to 9" in wrong.text

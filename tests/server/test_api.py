"""The HTTP API end to end on every store: a real uvicorn server, a worker, httpx."""

from __future__ import annotations

from typing import Any

import httpx

import tether
from tests.conftest import AppFactory
from tests.server.conftest import build_app, serving
from tether.llm import LLMConfig, Price

RUNS = "/v1/namespaces/default/workflows"


async def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def test_start_wait_describe_history_list(make_app: AppFactory) -> None:
    async with serving(build_app(make_app)) as http:
        started = await _ok(
            await http.post(RUNS, json={"type": "greet", "args": ["Ada"], "id": "g1"}), 201
        )
        assert started["workflow_id"] == "g1" and started["namespace"] == "default"
        done = await _ok(await http.get(f"{RUNS}/g1/result", params={"wait": 30}))
        assert done == {"workflow_id": "g1", "status": "completed", "result": "HELLO ADA"}

        run = await _ok(await http.get(f"{RUNS}/g1"))
        assert run["status"] == "completed" and run["run_id"] == started["run_id"]
        assert run["type"] == "greet" and run["result"] == "HELLO ADA"
        events = (await _ok(await http.get(f"{RUNS}/g1/history")))["events"]
        assert events[0]["type"] == "WorkflowStarted" and events[-1]["type"] == "WorkflowCompleted"
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))

        await _ok(await http.post(RUNS, json={"type": "greet", "args": ["Bo"], "id": "g2"}), 201)
        await _ok(await http.get(f"{RUNS}/g2/result", params={"wait": 30}))
        await _ok(await http.post(RUNS, json={"type": "inbox", "args": ["x"], "id": "i1"}), 201)
        completed = await _ok(await http.get(RUNS, params={"status": "completed", "limit": 1}))
        assert len(completed["runs"]) == 1 and completed["next_cursor"]
        rest = await _ok(
            await http.get(RUNS, params={"status": "completed", "cursor": completed["next_cursor"]})
        )
        ids = {r["workflow_id"] for r in completed["runs"] + rest["runs"]}
        assert ids == {"g1", "g2"} and rest["next_cursor"] is None
        running = await _ok(await http.get(RUNS, params={"status": "running", "type": "inbox"}))
        assert [r["workflow_id"] for r in running["runs"]] == ["i1"]
        waiting = await _ok(await http.get(f"{RUNS}/i1/result"), 202)
        assert waiting == {"workflow_id": "i1", "status": "running"}


async def test_workflow_ids_with_slashes(make_app: AppFactory) -> None:
    async with serving(build_app(make_app)) as http:
        body = {"type": "inbox", "args": ["c"], "id": "customer/42"}
        await _ok(await http.post(RUNS, json=body), 201)
        run = f"{RUNS}/customer%2F42"
        assert (await _ok(await http.get(run)))["workflow_id"] == "customer/42"
        events = (await _ok(await http.get(f"{run}/history")))["events"]
        assert [e["type"] for e in events][:1] == ["WorkflowStarted"]
        await _ok(await http.post(f"{run}/signal/mail", json={"payload": 1}), 202)
        await _ok(await http.post(f"{run}/signal/mail", json={"payload": 2}), 202)
        done = await _ok(await http.get(f"{run}/result", params={"wait": 30}))
        assert done["result"] == ["c", 1, 2]
        assert (await _ok(await http.delete(run)))["deleted"]["workflow_id"] == "customer/42"


async def test_signal_query_cancel_terminate_delete(make_app: AppFactory) -> None:
    async with serving(build_app(make_app)) as http:
        await _ok(await http.post(RUNS, json={"type": "inbox", "args": ["ann"], "id": "in"}), 201)
        still = await _ok(await http.get(f"{RUNS}/in/result", params={"wait": 0.2}), 202)
        assert still == {"workflow_id": "in", "status": "running"}
        await _ok(await http.post(f"{RUNS}/in/signal/mail", json={"payload": {"n": 1}}), 202)
        answer = await _ok(await http.post(f"{RUNS}/in/query/owner", json={}))
        assert answer == {"result": "ann"}
        await _ok(await http.post(f"{RUNS}/in/signal/mail", json={"payload": 2}), 202)
        done = await _ok(await http.get(f"{RUNS}/in/result", params={"wait": 30}))
        assert done["result"] == ["ann", {"n": 1}, 2]
        # A closed run still answers queries: replayed from its history.
        assert (await _ok(await http.post(f"{RUNS}/in/query/got")))["result"] == [{"n": 1}, 2]

        await _ok(await http.post(RUNS, json={"type": "inbox", "args": ["c"], "id": "c"}), 201)
        asked = await _ok(await http.post(f"{RUNS}/c/cancel", json={"reason": "no"}), 202)
        assert asked["workflow_id"] == "c"
        canceled = await _ok(await http.get(f"{RUNS}/c/result", params={"wait": 30}))
        assert canceled["status"] == "canceled" and canceled["run_id"] == asked["run_id"]

        await _ok(await http.post(RUNS, json={"type": "inbox", "args": ["t"], "id": "t"}), 201)
        ended = await _ok(await http.post(f"{RUNS}/t/terminate", json={"reason": "enough"}))
        assert ended["status"] == "terminated"
        history = (await _ok(await http.get(f"{RUNS}/t/history")))["events"]
        assert history[-1]["attrs"]["reason"] == "enough"
        assert history[-1]["attrs"]["identity"] == "http"

        failed = await _ok(await http.post(RUNS, json={"type": "fails", "id": "f"}), 201)
        outcome = await _ok(await http.get(f"{RUNS}/f/result", params={"wait": 30}))
        assert outcome["status"] == "failed" and outcome["run_id"] == failed["run_id"]
        assert outcome["failure"]["message"] == "no luck"

        deleted = await _ok(await http.delete(f"{RUNS}/t"))
        assert deleted == {"deleted": {"workflow_id": "t", "run_id": ended["run_id"]}}
        gone = await _ok(await http.get(f"{RUNS}/t"), 404)
        assert gone["error"]["code"] == "workflow_not_found"


async def test_signal_with_start_and_id_policies(make_app: AppFactory) -> None:
    async with serving(build_app(make_app)) as http:
        body = {"type": "inbox", "args": ["sw"], "signal": "mail", "payload": 1}
        first = await _ok(await http.post(f"{RUNS}/sw/signal-with-start", json=body))
        again = await _ok(await http.post(f"{RUNS}/sw/signal-with-start", json=body))
        assert first["run_id"] == again["run_id"]
        done = await _ok(await http.get(f"{RUNS}/sw/result", params={"wait": 30}))
        assert done["result"] == ["sw", 1, 1]

        clash = await _ok(
            await http.post(RUNS, json={"type": "inbox", "args": ["x"], "id": "o"}), 201
        )
        refused = await _ok(
            await http.post(RUNS, json={"type": "inbox", "args": ["x"], "id": "o"}), 409
        )
        assert refused["error"]["code"] == "workflow_already_started"
        assert refused["error"]["workflow_id"] == "o"
        same = await _ok(
            await http.post(
                RUNS,
                json={"type": "inbox", "args": ["x"], "id": "o", "id_conflict": "use_existing"},
            ),
            201,
        )
        assert same["run_id"] == clash["run_id"]
        reuse = {"type": "greet", "args": ["x"], "id": "sw", "id_reuse": "reject"}
        assert (await _ok(await http.post(RUNS, json=reuse), 409))["error"]["message"]


async def test_namespaces_usage_health_and_metrics(make_app: AppFactory) -> None:
    async with serving(build_app(make_app)) as http:
        assert (await _ok(await http.get("/healthz"))) == {"status": "ok"}
        assert (await _ok(await http.get("/readyz"))) == {"status": "ready"}
        created = await _ok(
            await http.post("/v1/namespaces", json={"name": "a", "settings": {"weight": 3}}), 201
        )
        assert created["name"] == "a" and created["settings"]["weight"] == 3
        dup = await _ok(await http.post("/v1/namespaces", json={"name": "a"}), 409)
        assert dup["error"]["code"] == "namespace_already_exists"
        changed = await _ok(await http.patch("/v1/namespaces/a", json={"settings": {"weight": 5}}))
        assert changed["settings"]["weight"] == 5
        names = [n["name"] for n in (await _ok(await http.get("/v1/namespaces")))["namespaces"]]
        assert sorted(names) == ["a", "default"]

        runs = "/v1/namespaces/a/workflows"
        await _ok(await http.post(runs, json={"type": "greet", "args": ["a"], "id": "g"}), 201)
        await _ok(await http.get(f"{runs}/g/result", params={"wait": 30}))
        await _ok(
            await http.post(runs, json={"type": "inbox", "args": ["a"], "task_queue": "q"}), 201
        )
        described = await _ok(await http.get("/v1/namespaces/a"))
        assert described["runs"]["by_status"] == {"completed": 1, "running": 1}
        assert {"task_queue": "q", "workflow_ready": 1}.items() <= next(
            q for q in described["queues"] if q["task_queue"] == "q"
        ).items()
        usage = await _ok(await http.get("/v1/namespaces/a/usage", params={"by": "model"}))
        assert usage == {"groups": ["model"], "rows": []}
        window = {"by": ["day", "model"], "since": 0, "until": 1e10}
        usage = await _ok(await http.get("/v1/namespaces/a/usage", params=window))
        assert usage == {"groups": ["day", "model"], "rows": []}

        text = (await http.get("/metrics")).text
        assert 'tether_runs{namespace="a",status="completed"} 1' in text
        assert 'tether_runs{namespace="a",status="running"} 1' in text
        assert 'tether_task_backlog{namespace="a",task_queue="q",state="workflow_ready"} 1' in text
        assert "# TYPE tether_http_requests_total counter" in text
        assert 'tether_http_requests_total{method="POST",status="201"}' in text

        assert (await _ok(await http.delete("/v1/namespaces/a"))) == {"deleted": "a"}
        gone = await _ok(await http.get("/v1/namespaces/a"), 404)
        assert gone["error"]["code"] == "namespace_not_found"


async def test_usage_of_llm_steps(make_app: AppFactory) -> None:
    app = make_app(llm=LLMConfig.simulated(prices={"sim:sim-fast": Price(input=1.0, output=2.0)}))

    @app.workflow
    async def chat(ctx: tether.Context, n: int) -> int:
        for i in range(n):
            await ctx.llm("fast", f"message {i}")
        return n

    async with serving(app) as http:
        await _ok(await http.post(RUNS, json={"type": "chat", "args": [3], "id": "c"}), 201)
        assert (await _ok(await http.get(f"{RUNS}/c/result", params={"wait": 30})))["result"] == 3
        usage = await _ok(
            await http.get(
                "/v1/namespaces/default/usage", params={"by": ["workflow_type", "model"]}
            )
        )
        [row] = usage["rows"]
        assert (row["workflow_type"], row["model"], row["calls"]) == ("chat", "sim:sim-fast", 3)
        assert row["cost_usd"] > 0
        twice = {"by": ["model", "workflow_type", "model"]}
        again = await _ok(await http.get("/v1/namespaces/default/usage", params=twice))
        assert again["groups"] == ["model", "workflow_type"]
        assert [r["calls"] for r in again["rows"]] == [3]
        later = await _ok(await http.get("/v1/namespaces/default/usage", params={"since": 1e10}))
        assert later["rows"] == []


async def test_an_unknown_or_repeated_query_parameter_is_refused_and_acts_on_nothing(
    make_app: AppFactory,
) -> None:
    """Every /v1 endpoint checks its query string: a misspelt ``?runid=`` on a delete
    would otherwise have deleted the workflow's newest run instead of the one named."""
    from starlette.routing import Route

    from tether.server.routes import ROUTES

    async with serving(build_app(make_app)) as http:
        first = await _ok(
            await http.post(RUNS, json={"type": "inbox", "args": ["a"], "id": "x"}), 201
        )
        await _ok(await http.post(f"{RUNS}/x/terminate", json={"reason": "next"}))
        await _ok(await http.post(RUNS, json={"type": "inbox", "args": ["b"], "id": "x"}), 201)
        endpoints = [
            (method, r.path)
            for r in ROUTES
            if isinstance(r, Route) and r.path.startswith("/v1") and r.methods
            for method in sorted(r.methods - {"HEAD"})
        ]
        assert len(endpoints) >= 20
        for method, template in endpoints:
            path = (
                template.replace("{ns}", "default")
                .replace("{workflow_id:path}", "x")
                .replace("{name}", "go")
            )
            response = await http.request(method, path, params={"bogus": "1"}, json={})
            assert response.status_code == 400, (method, path, response.text)
            error = response.json()["error"]
            assert error["code"] == "invalid_argument" and "?bogus=" in error["message"]
        response = await http.delete(f"{RUNS}/x", params={"runid": first["run_id"]})
        assert response.status_code == 400 and "?run_id=" in response.json()["error"]["message"]
        twice = [("run_id", first["run_id"]), ("run_id", "other")]
        response = await http.get(f"{RUNS}/x", params=twice)
        assert response.status_code == 400 and "more than once" in response.text
        runs = (await _ok(await http.get(RUNS, params={"type": "inbox"})))["runs"]
        assert [r["status"] for r in runs] == ["running", "terminated"], "nothing was deleted"
        by = [("by", "model"), ("by", "workflow_type")]
        assert (await _ok(await http.get("/v1/namespaces/default/usage", params=by)))["rows"] == []

"""Bearer tokens scope every request to its namespaces: a token for one namespace is
refused on another's runs, and nothing there changes."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

import tether.server
from tests.conftest import AppFactory
from tests.server.conftest import build_app, serving
from tether.errors import InvalidArgument
from tether.server import Tokens

TOKENS = Tokens.parse(["tok-a:a", "tok-b:b", "tok-ab:a", "tok-ab:b", "root:*"])


def _as(http: httpx.AsyncClient, token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


async def test_a_token_reaches_only_its_namespaces(make_app: AppFactory) -> None:
    app = build_app(make_app)
    async with serving(app, tokens=TOKENS, token="root") as admin:
        for name in ("a", "b"):
            assert (await admin.post("/v1/namespaces", json={"name": name})).status_code == 201
        start = {"type": "inbox", "args": ["bob"], "id": "same"}
        made = await admin.post("/v1/namespaces/b/workflows", json=start)
        assert made.status_code == 201
        b_before = (await admin.get("/v1/namespaces/b/workflows/same/history")).json()

        a = {"Authorization": "Bearer tok-a"}
        own = await admin.post("/v1/namespaces/a/workflows", json=start, headers=a)
        assert own.status_code == 201 and own.json()["run_id"] != made.json()["run_id"]
        run_b = "/v1/namespaces/b/workflows/same"
        attempts = [
            ("GET", "/v1/namespaces/b", None),
            ("GET", "/v1/namespaces/b/usage", None),
            ("GET", "/v1/namespaces/b/workflows", None),
            ("POST", "/v1/namespaces/b/workflows", start),
            ("GET", run_b, None),
            ("GET", f"{run_b}/result", None),
            ("GET", f"{run_b}/history", None),
            ("POST", f"{run_b}/signal/mail", {"payload": "spam"}),
            ("POST", f"{run_b}/signal-with-start", {**start, "signal": "mail"}),
            ("POST", f"{run_b}/query/owner", {}),
            ("POST", f"{run_b}/cancel", {}),
            ("POST", f"{run_b}/terminate", {}),
            ("DELETE", run_b, None),
        ]
        for method, path, body in attempts:
            refused = await admin.request(method, path, json=body, headers=a)
            assert refused.status_code == 403, (method, path, refused.text)
            assert refused.json()["error"]["code"] == "permission_denied"
        after = (await admin.get("/v1/namespaces/b/workflows/same/history")).json()
        assert after == b_before, "a refused request changed nothing"
        listed = (await admin.get("/v1/namespaces/b/workflows")).json()["runs"]
        assert [r["workflow_id"] for r in listed] == ["same"]

        # A token may cover several namespaces; listing shows only those.
        ab = {"Authorization": "Bearer tok-ab"}
        assert (await admin.get(run_b, headers=ab)).json()["namespace"] == "b"
        names = (await admin.get("/v1/namespaces", headers=a)).json()["namespaces"]
        assert [n["name"] for n in names] == ["a"]
        everyone = (await admin.get("/v1/namespaces")).json()["namespaces"]
        assert sorted(n["name"] for n in everyone) == ["a", "b", "default"]


async def test_admin_operations_need_the_admin_token(make_app: AppFactory) -> None:
    async with serving(build_app(make_app), tokens=TOKENS, token="tok-a") as http:
        for method, path, body in [
            ("POST", "/v1/namespaces", {"name": "c"}),
            ("PATCH", "/v1/namespaces/a", {"settings": {"weight": 2}}),
            ("DELETE", "/v1/namespaces/b", None),
            ("GET", "/metrics", None),
        ]:
            refused = await http.request(method, path, json=body)
            assert refused.status_code == 403, (method, path, refused.text)
        names = await http.get("/v1/namespaces", headers=_as(http, "root"))
        assert sorted(n["name"] for n in names.json()["namespaces"]) == ["default"]
        assert (await http.get("/metrics", headers=_as(http, "root"))).status_code == 200


async def test_missing_or_unknown_tokens_are_refused(make_app: AppFactory) -> None:
    async with serving(build_app(make_app), tokens=TOKENS) as http:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic tok-a"}):
            refused = await http.get("/v1/namespaces/a/workflows", headers=headers)
            assert refused.status_code == 401, refused.text
            assert refused.json()["error"]["code"] == "unauthenticated"
            assert refused.headers["www-authenticate"] == "Bearer"
        # Probes stay open: an orchestrator checks them without a token.
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).status_code == 200


def test_tokens_from_a_file_and_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("# tenants\nfile-a:a\n\nfile-root:*\n")
    tokens = Tokens.load(path, env={"TETHER_SERVER_TOKENS": "env-b:b, env-b:c"})
    assert tokens.grant("Bearer file-a").namespaces == {"a"}
    assert tokens.grant("Bearer file-root").admin
    assert tokens.grant("Bearer env-b").namespaces == {"b", "c"}
    assert Tokens.load(None, env={}).open
    with pytest.raises(InvalidArgument, match="TOKEN:NAMESPACE"):
        Tokens.parse(["no-namespace"])
    with pytest.raises(InvalidArgument, match="cannot read the tokens file"):
        Tokens.load(tmp_path / "missing", env={})


def test_public_names_are_pinned() -> None:
    assert sorted(tether.server.__all__) == ["Grant", "QueryUnavailable", "Tokens", "create_app"]

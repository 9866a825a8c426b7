"""The web UI in a real headless Chromium: namespaces, runs filtered by status, a run's
history, and its signal, cancel and terminate buttons, over a real server and worker.

Needs the Debian ``chromium`` package; skipped locally without it, a failure under CI.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import AppFactory
from tests.server.conftest import build_app, serving
from tether.server import Tokens

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

if not os.path.exists(CHROMIUM) and not os.environ.get("CI"):
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)

from playwright.async_api import Page, async_playwright, expect  # noqa: E402

RUNS = "/v1/namespaces/default/workflows"


@pytest.fixture
async def browser_page() -> AsyncIterator[Page]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield await browser.new_page()
        finally:
            await browser.close()


async def _start(http: httpx.AsyncClient, type: str, *args: Any, id: str) -> None:
    started = await http.post(RUNS, json={"type": type, "args": list(args), "id": id})
    assert started.status_code == 201, started.text


async def test_browse_and_act_on_runs(make_app: AppFactory, browser_page: Page) -> None:
    page = browser_page
    async with serving(build_app(make_app)) as http:
        await _start(http, "greet", "Ada", id="done")
        assert (await http.get(f"{RUNS}/done/result", params={"wait": 30})).status_code == 200
        for id in ("inbox-1", "to-end", "to-cancel"):
            await _start(http, "inbox", id, id=id)

        await page.goto(f"{http.base_url}/")
        await page.get_by_role("link", name="default").click()
        runs = page.locator("#runs tr[data-workflow-id]")
        await expect(runs).to_have_count(4)
        await page.select_option("#status-filter", "completed")
        await expect(runs).to_have_count(1)
        await expect(runs.first).to_have_attribute("data-workflow-id", "done")
        await page.select_option("#status-filter", "running")
        await expect(runs).to_have_count(3)

        await page.get_by_role("link", name="inbox-1").click()
        await expect(page.locator('#run dd[data-field="status"]')).to_have_text("running")
        await expect(page.locator('#history tr[data-event="WorkflowStarted"]')).to_have_count(1)
        signal = page.locator("#signal")
        await signal.locator('input[name="name"]').fill("mail")
        await signal.locator('input[name="payload"]').fill('{"n": 1}')
        await signal.get_by_role("button", name="Signal").click()
        received = page.locator('#history tr[data-event="SignalReceived"]')
        await expect(received).to_have_count(1)
        await expect(received).to_contain_text('{"n":1}')
        await signal.locator('input[name="name"]').fill("mail")
        await signal.locator('input[name="payload"]').fill("2")
        await signal.get_by_role("button", name="Signal").click()
        done = await http.get(f"{RUNS}/inbox-1/result", params={"wait": 30})
        assert done.json()["result"] == ["inbox-1", {"n": 1}, 2]
        await page.reload()
        await expect(page.locator('#run dd[data-field="status"]')).to_have_text("completed")
        await expect(page.locator("#signal")).to_have_count(0)  # no buttons on a closed run

        await page.goto(f"{http.base_url}/ui/#/ns/default/wf/to-end")
        terminate = page.locator("#terminate")
        await terminate.locator('input[name="reason"]').fill("from the ui")
        await terminate.get_by_role("button", name="Terminate").click()
        await expect(page.locator('#run dd[data-field="status"]')).to_have_text("terminated")
        events = (await http.get(f"{RUNS}/to-end/history")).json()["events"]
        assert events[-1]["attrs"]["reason"] == "from the ui"

        await page.goto(f"{http.base_url}/ui/#/ns/default/wf/to-cancel")
        await page.locator("#cancel").get_by_role("button", name="Cancel").click()
        await expect(
            page.locator('#history tr[data-event="WorkflowCancelRequested"]')
        ).to_have_count(1)
        canceled = await http.get(f"{RUNS}/to-cancel/result", params={"wait": 30})
        assert canceled.json()["status"] == "canceled"

        # A mistake shows the API's error and changes nothing.
        await page.goto(f"{http.base_url}/ui/#/ns/default/wf/nope")
        await expect(page.locator("#error")).to_contain_text("workflow_not_found")


async def test_the_ui_sends_the_token_typed_in(make_app: AppFactory, browser_page: Page) -> None:
    page = browser_page
    tokens = Tokens.parse(["tok-a:a", "root:*"])
    async with serving(build_app(make_app), tokens=tokens, token="root") as http:
        assert (await http.post("/v1/namespaces", json={"name": "a"})).status_code == 201
        await page.goto(f"{http.base_url}/ui/")
        await expect(page.locator("#error")).to_contain_text("unauthenticated")
        await page.fill("#token", "tok-a")
        await page.locator("#token").dispatch_event("change")
        names = page.locator("#namespaces td a")
        await expect(names).to_have_text(["a"])
        await page.goto(f"{http.base_url}/ui/#/ns/default")
        await expect(page.locator("#error")).to_contain_text("permission_denied")

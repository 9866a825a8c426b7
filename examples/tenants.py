"""Two tenants on one worker: namespaces, their settings, and fairness between customers.

    python examples/tenants.py

Tenant "acme" may only use the "default" task queue, keeps closed runs a week, and
retries failing activities three times. Inside it, one customer floods 200 runs and
another starts 3 after it: with fairness keys the late customer is not served last.
"""

from __future__ import annotations

import asyncio

import tether

app = tether.App()  # ./tether.db, or $TETHER_DATABASE_URL
finished: list[str] = []


@app.activity
async def answer(ticket: str) -> str:
    finished.append(ticket)
    return f"answered {ticket}"


@app.workflow
async def support(ctx: tether.Context, ticket: str) -> str:
    return await ctx.activity(answer, ticket)


async def main() -> None:
    async with app:
        spaces = app.client.namespaces
        if "acme" not in [n.name for n in await spaces.list()]:
            await spaces.create(
                "acme", retention="7d", task_queues=["default"],
                default_retry={"initial_interval": 0.5, "max_attempts": 3},
            )  # fmt: skip
        print("acme settings:", (await spaces.get("acme")).settings.to_json())

        big, small = tether.Priority(fairness_key="big-co"), tether.Priority(fairness_key="tiny")
        runs = [
            await app.client.start(support, f"big-{i}", namespace="acme", priority=big)
            for i in range(200)
        ]
        runs += [
            await app.client.start(support, f"tiny-{i}", namespace="acme", priority=small)
            for i in range(3)
        ]
        async with app.worker(namespaces=["acme"], max_workflow_tasks=4, max_activities=4):
            await asyncio.gather(*(run.result(timeout=60) for run in runs))
        places = [finished.index(f"tiny-{i}") + 1 for i in range(3)]
        print(f"the 3 late 'tiny' tickets finished at places {places} of {len(finished)}")
        figures = (await spaces.describe("acme")).to_dict()["runs"]
        print("acme runs:", figures)


if __name__ == "__main__":
    asyncio.run(main())

"""Search attributes and listing: tag runs when they start, update the tags from the
workflow, then find runs by type, status, time and tag, a page at a time.

    python examples/visibility.py
    tether workflow list --type order --status completed --attr customer=acme
    tether workflow list --attr amount=50.0.. --attr stage=shipped
"""

from __future__ import annotations

import asyncio

import tether

app = tether.App()  # ./tether.db, or $TETHER_DATABASE_URL


@app.activity
async def ship(order_id: str) -> str:
    return f"shipped {order_id}"


@app.workflow
async def order(ctx: tether.Context, order_id: str) -> str:
    receipt = await ctx.activity(ship, order_id)
    # Recorded in history and indexed in the same transaction as this step's commit.
    ctx.upsert_search_attributes({"stage": "shipped", "shipped_at": ctx.now()})
    return receipt


ORDERS = [("acme", 120.0), ("globex", 35.5), ("acme", 80.0), ("acme", 12.0), ("initech", 99.9)]


async def main() -> None:
    async with app, app.worker():
        for i, (customer, amount) in enumerate(ORDERS):
            await app.client.execute(
                order,
                f"order-{i}",
                id=f"order-{i}",
                search_attributes={"customer": customer, "amount": amount, "stage": "new"},
            )
        # Acme's shipped orders of 50 or more, newest first, two per page.
        cursor = None
        while True:
            page = await app.client.list(
                workflow_type="order",
                status="completed",
                search_attributes={
                    "customer": "acme",
                    "stage": "shipped",
                    "amount": tether.Range(min=50.0),
                },
                limit=2,
                cursor=cursor,
            )
            for run in page.runs:
                attrs = run.search_attributes
                print(run.workflow_id, attrs["customer"], attrs["amount"], attrs["stage"])
            if page.next_cursor is None:
                break
            cursor = page.next_cursor  # an opaque page token


if __name__ == "__main__":
    asyncio.run(main())

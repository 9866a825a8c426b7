"""A three-step workflow with a durable timer, run on the embedded SQLite store.

    python examples/hello.py            # runs it to completion in-process
    tether worker examples.hello:app    # or serve it from a worker process...
    tether workflow start greet --arg '"Ada"' --wait   # ...and start it from the CLI
"""

from __future__ import annotations

from datetime import timedelta

import tether

app = tether.App()  # ./tether.db, or $TETHER_DATABASE_URL


@app.activity(retry=tether.Retry(max_attempts=3), start_to_close=timedelta(seconds=10))
async def lookup(name: str) -> str:
    return {"Ada": "mathematician", "Grace": "admiral"}.get(name, "person")


@app.activity
def shout(text: str) -> str:  # a sync activity runs in a thread
    return text.upper()


@app.workflow
async def greet(ctx: tether.Context, name: str) -> str:
    job = await ctx.activity(lookup, name)
    await ctx.sleep(timedelta(milliseconds=500))  # survives restarts
    return await ctx.activity(shout, f"hello {name}, {job}")


if __name__ == "__main__":
    print(app.run(greet, "Ada"))

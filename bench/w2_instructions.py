"""W2's client work counted in instructions, which this machine's drift does not move.

Usage: python3 bench/w2_instructions.py [--n N] [--db postgresql://USER@HOST:PORT/DB]
                                        [--store sqlite|postgres] [--layer sql|store|tether]

The time of a W2 run drifts by a third within an hour here, so a change to the client's
path worth 2-3% of its CPU cannot be seen in a p50 or in ``os.times()``. Instructions
can: this runs W2 (``three_steps`` one after another, client and worker in one process,
on a fresh store) twice under ``valgrind --tool=callgrind``, once with ``WARMUP`` runs and
once with ``WARMUP + N``, and prints the difference divided by N: the instructions this
process executes for one run, start-up and warm-up left out. The server's work is not
counted (PostgreSQL runs outside valgrind).

``--layer`` (PostgreSQL only) counts one of ``w2_layers.py``'s layers instead of the whole
client: ``sql`` (the four statements from a bare loop), ``store`` (the store's calls) or
``tether`` (the default: ``client.execute`` with a worker in the process). The
differences say how many instructions the store's Python and the client, engine and
worker above it add to a run.

An instruction is not a cycle: W2's Python runs with cold caches (about half an
instruction per cycle here), so a change can cost fewer instructions and not fewer
cycles. A change that saves no instructions saves no CPU, though, and one that saves
many is worth timing. Two passes take about three minutes (valgrind slows Python about
thirty times).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path += [str(BENCH.parent), str(BENCH)]

from tether_bench import fresh_store  # noqa: E402
from w2_layers import layer  # noqa: E402

from tether.runtime import run  # noqa: E402
from tether.store.postgres.store import PostgresStore  # noqa: E402

WARMUP = 50


async def inner(store: str, server: str, count: int, name: str) -> None:
    """``count`` W2 runs on a fresh store (what valgrind measures)."""
    async with fresh_store(None if store == "sqlite" else server, durable=False) as target:
        if name != "tether":
            schema = PostgresStore(target.url)  # the other layers find the schema in place
            await schema.open()
            await schema.close()
        async with layer(target.url, name, "i") as run:
            for i in range(count):
                await run(i)


def _instructions(args: argparse.Namespace, count: int) -> int:
    with tempfile.TemporaryDirectory(prefix="w2-callgrind-") as folder:
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={folder}/out",
            sys.executable,
            __file__,
            "--inner",
            str(count),
            "--store",
            args.store,
            "--db",
            args.db,
            "--layer",
            args.layer,
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
        if done.returncode != 0 or found is None:
            sys.exit(f"valgrind failed ({done.returncode}):\n{done.stderr[-2000:]}")
        return int(found.group(1).replace(",", ""))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--store", choices=("sqlite", "postgres"), default="postgres")
    p.add_argument("--db", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--layer", choices=("sql", "store", "tether"), default="tether")
    p.add_argument("--inner", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.layer != "tether" and args.store != "postgres":
        p.error("--layer sql and --layer store run on PostgreSQL only")
    if args.inner is not None:
        run(inner(args.store, args.db, args.inner, args.layer))
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    base = _instructions(args, WARMUP)
    more = _instructions(args, WARMUP + args.n)
    print(
        f"W2 on {args.store} ({args.layer}): {(more - base) / args.n / 1e6:.3f} M instructions"
        " a run"
        f" in this process ({args.n} runs; {base / 1e6:.0f} M for start-up and {WARMUP} runs)"
    )


if __name__ == "__main__":
    main()

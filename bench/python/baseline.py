#!/usr/bin/env python3
"""The seed's three Python models on brigade's yardsticks (shared/WORKLOADS.md).

multiprocessing.Pool, concurrent.futures.ThreadPoolExecutor and asyncio
(+ aiohttp for HTTP) run W_CPU, W_CPU_HEAVY (--quick only: CPython needs
minutes for the full range), W_NOOP, W_FASTIO and W_SLOWIO against the same
HTTP target as `brigade bench`, verify every result after the clock stops
and print one JSON line per run in the shape of brigade's results.jsonl run
lines (plus "runtime": "python" and the interpreter's facts). Notes go to
stderr. `brigade bench --with-python` runs this file and puts the rows in
its table and plots; it also runs on its own:

    pip install -r bench/python/requirements.txt
    brigade io-target --listen 127.0.0.1:8080 &
    python3 bench/python/baseline.py --target http://127.0.0.1:8080 --quick

Timed region: first task submitted until the last result is in hand. Pools
are started and warmed up (2 tasks per worker) before the clock starts; that
start-up is reported apart as "start_s".
"""

import argparse
import asyncio
import http.client
import json
import multiprocessing
import os
import platform
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

try:
    import aiohttp
except ImportError:  # the asyncio HTTP rows say why they are missing
    aiohttp = None

BODY_LEN = 1024
REQUIREMENTS = "pip install -r bench/python/requirements.txt"


# ---- the tasks (module level, so that Pool workers can import them) ----

def sum_squares(bounds):
    a, b = bounds
    s = 0
    for i in range(a, b):
        s += i * i
    return s


def closed_form(a, b):
    def prefix(n):
        return (n - 1) * n * (2 * n - 1) // 6 if n > 0 else 0
    return prefix(b) - prefix(a)


def noop(i):
    return i


_local = threading.local()
_TARGET = None


def _set_target(url):
    global _TARGET
    _TARGET = url


def blocking_get(path):
    """GET on a keep-alive connection of this thread (or process); the body length."""
    u = urllib.parse.urlsplit(_TARGET)
    for attempt in range(2):
        conn = getattr(_local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
            _local.conn = conn
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"status {resp.status}, expected 200")
            return len(body)
        except (http.client.HTTPException, ConnectionError, OSError):
            conn.close()
            _local.conn = None
            if attempt == 1:
                raise
    raise RuntimeError("unreachable")


# ---- workloads ----

def shape(workload, quick, wide=False):
    """(range, chunk) exactly as `brigade bench` runs them."""
    full = {
        "W_CPU": ((0, 60_000_000), 1_500_000),
        "W_CPU_HEAVY": ((0, 4_000_000_000), 100_000_000),
        "W_NOOP": ((0, 20_000), 1),
        "W_FASTIO": ((0, 5_000), 1),
        "W_SLOWIO": ((0, 10_000 if wide else 2_000), 1),
    }
    small = {
        "W_CPU": ((0, 6_000_000), 150_000),
        "W_CPU_HEAVY": ((0, 40_000_000), 1_000_000),
        "W_NOOP": ((0, 2_000), 1),
        "W_FASTIO": ((0, 500), 1),
        "W_SLOWIO": ((0, 1_000 if wide else 200), 1),
    }
    return (small if quick else full)[workload]


def inputs(workload, rng, chunk):
    a, b = rng
    n = (b - a + chunk - 1) // chunk
    if workload in ("W_CPU", "W_CPU_HEAVY"):
        return [(a + i * chunk, min(a + (i + 1) * chunk, b)) for i in range(n)]
    if workload == "W_NOOP":
        return list(range(n))
    path = "/fast" if workload == "W_FASTIO" else "/slow?ms=100"
    return [path] * n


def function(workload):
    if workload in ("W_CPU", "W_CPU_HEAVY"):
        return sum_squares
    if workload == "W_NOOP":
        return noop
    return blocking_get


def verify(workload, rng, chunk, results):
    """None if every result is right, else what was wrong."""
    items = inputs(workload, rng, chunk)
    if len(results) != len(items):
        return f"{len(results)} results for {len(items)} tasks"
    for i, (x, v) in enumerate(zip(items, results)):
        if workload in ("W_CPU", "W_CPU_HEAVY"):
            expected = closed_form(*x)
        elif workload == "W_NOOP":
            expected = i
        else:
            expected = BODY_LEN
        if v != expected:
            return f"task {i} returned {v}, expected {expected}"
    if workload in ("W_CPU", "W_CPU_HEAVY") and sum(results) != closed_form(*rng):
        return f"total {sum(results)}, expected {closed_form(*rng)}"
    return None


# ---- the models: each returns (start_s, run) where run() -> results ----

def run_serial(workload, items, _p, _target):
    f = function(workload)
    return 0.0, lambda: [f(x) for x in items], lambda: None


def run_pool(workload, items, p, target):
    t0 = time.perf_counter()
    pool = multiprocessing.Pool(p, initializer=_set_target, initargs=(target,))
    pool.map(noop, range(2 * p), chunksize=1)
    start = time.perf_counter() - t0
    f = function(workload)
    return start, lambda: pool.map(f, items, chunksize=1), pool.terminate


def run_threads(workload, items, p, target):
    _set_target(target)
    t0 = time.perf_counter()
    ex = ThreadPoolExecutor(p)
    list(ex.map(noop, range(2 * p)))
    start = time.perf_counter() - t0
    f = function(workload)

    def run():
        futures = [ex.submit(f, x) for x in items]
        return [fu.result() for fu in futures]

    return start, run, lambda: ex.shutdown(wait=True)


async def _gather(workload, items, p, target):
    sem = asyncio.Semaphore(p)
    if workload in ("W_CPU", "W_CPU_HEAVY", "W_NOOP"):
        f = function(workload)

        async def one(x):
            async with sem:
                return f(x)

        return await asyncio.gather(*(one(x) for x in items))
    connector = aiohttp.TCPConnector(limit=p)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def get(path):
            async with sem:
                async with session.get(target + path) as resp:
                    body = await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"status {resp.status}, expected 200")
                    return len(body)

        return await asyncio.gather(*(get(x) for x in items))


def run_asyncio(workload, items, p, target):
    return 0.0, lambda: asyncio.run(_gather(workload, items, p, target)), lambda: None


MODELS = {
    "py-serial": ("serial", run_serial),
    "py-process": ("process", run_pool),
    "py-thread": ("thread", run_threads),
    "py-async": ("async", run_asyncio),
}


def plans(workloads, quick, cores, io, wide):
    """(workload, label, model runner, in_flight, range, chunk) in row order."""
    out = []
    for w in workloads:
        if w == "W_CPU_HEAVY" and not quick:
            note(f"{w}: skipped in full runs (CPython would take minutes per model); see --quick")
            continue
        if w == "W_GRAIN":
            note("W_GRAIN: not part of the Python baseline")
            continue
        rng, chunk = shape(w, quick)
        cpu = w in ("W_CPU", "W_CPU_HEAVY")
        p = cores if cpu else io
        if cpu:
            out.append((w, "py-serial", 1, rng, chunk))
        for label in ("py-process", "py-thread", "py-async"):
            out.append((w, label, p, rng, chunk))
        if w == "W_SLOWIO" and wide > io:
            out.append((w, f"py-async C={wide}", wide, shape(w, quick, wide >= 1000)[0], 1))
    return out


def note(msg):
    print(f"python baseline: {msg}", file=sys.stderr, flush=True)


def facts():
    return {
        "python_version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "start_method": multiprocessing.get_start_method(),
        "aiohttp": getattr(aiohttp, "__version__", None),
        "os": platform.platform(),
        "kernel": os.uname().release,
        "cores": os.cpu_count(),
    }


def measure(w, label, p, rng, chunk, target, rep, quick, args):
    model, runner = MODELS[label.split()[0]]
    items = inputs(w, rng, chunk)
    line = {
        "kind": "run", "runtime": "python", "scale": 1, "workload": w,
        "label": label, "model": model, "rep": rep, "in_flight": p,
        "tasks": len(items), "chunk": chunk, "represents_tasks": len(items),
        "wall_s": 0.0, "tasks_per_s": 0.0, "cpu_s": None, "cpu_util": None,
        "cores": os.cpu_count(), "peak_rss_bytes": None, "task_cpu_s": 0.0,
        "task_wall_s": 0.0, "start_s": 0.0, "verified": False, "error": None,
        "quick": quick, "python": facts(), "args": args,
    }
    if model == "async" and w in ("W_FASTIO", "W_SLOWIO") and aiohttp is None:
        line["error"] = f"aiohttp is not installed ({REQUIREMENTS})"
        return line
    stop = None
    try:
        start, run, stop = runner(w, items, p, target)
        t0 = time.perf_counter()
        results = run()
        wall = time.perf_counter() - t0
        line.update(start_s=start, wall_s=wall, tasks_per_s=len(items) / max(wall, 1e-9))
        line["error"] = verify(w, rng, chunk, list(results))
        line["verified"] = line["error"] is None
    except Exception as e:  # a failed run is a FAILED row, never a number
        line["error"] = f"{type(e).__name__}: {e}"
    finally:
        if stop is not None:
            stop()
    return line


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", required=True, help="http://HOST:PORT serving /fast and /slow")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--workloads", default="W_CPU,W_CPU_HEAVY,W_NOOP,W_FASTIO,W_SLOWIO")
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--io-in-flight", type=int, default=32)
    ap.add_argument("--async-in-flight", type=int, default=None)
    a = ap.parse_args()
    reps = a.reps or (1 if a.quick else 3)
    wide = a.async_in_flight or (200 if a.quick else 2000)
    target = a.target.rstrip("/")
    if aiohttp is None:
        note(f"aiohttp is not installed: asyncio HTTP rows will be FAILED ({REQUIREMENTS})")
    workloads = [w.strip().upper() for w in a.workloads.split(",") if w.strip()]
    runs = plans(workloads, a.quick, a.cores, a.io_in_flight, wide)
    for w in dict.fromkeys(r[0] for r in runs):
        for rep in range(reps):
            for (rw, label, p, rng, chunk) in runs:
                if rw != w:
                    continue
                note(f"{w} {label} rep {rep + 1}/{reps}")
                line = measure(w, label, p, rng, chunk, target, rep, a.quick, sys.argv)
                print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()

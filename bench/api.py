"""Provisioning API: reads of /v1/numbers over 10,000 numbers, and a 10,000-person CSV import.

1. Reads. A real server process (SQLite store) holds 10,000 numbers at one location, added
   through the API. Client processes (aiohttp, each with a fixed number of connections) send
   authenticated GETs as fast as the server answers, for --seconds, in a mix an administrator's
   tools would produce: pages of the list (`?start=..&max=100`), filtered pages
   (`?available=true`, `?state=ACTIVE&locationId=..`) and single numbers (`/v1/numbers/{e164}`,
   10,000 distinct URLs). Every answer must be 200. The figures are answered requests per second
   and the 99th-percentile latency seen by the clients (at saturation, so p99 includes queueing
   behind the other connections). A URL answered before is served from the API's cache while the
   store generation is unchanged; a single number's first GET reads the store, so with 10,000 of
   them most single-number GETs of a short run read the store. The cold path of the list is
   reported on its own: after a write (which bumps the generation), each of the 100 pages once.
2. Import. `callrouter import-people` (a subprocess, as an operator runs it) adds 10,000 people
   with an extension and a SIP device each to a fresh SQLite store holding the example
   organisation; the figure is its wall-clock time, process start included.

Targets: at least 2,000 requests/s; the import within 20 s. Run from the project root:

    .venv/bin/python bench/api.py [--seconds 10] [--clients 2] [--connections 16]

The last line of stdout carries the figures; bench/results/api.json has the details. Exit
status: 0 when every request and every import row succeeded (targets missed are reported, not
fatal), 1 otherwise.
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import json
import multiprocessing
import platform
import random
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.server import ServerProcess, add_api_token  # noqa: E402

NUMBERS = 10_000
PEOPLE = 10_000
TARGET_RPS = 2000
TARGET_IMPORT_S = 20.0


def _numbers() -> list[str]:
    # 512-55x-xxxx: ten exchanges of valid Austin numbers.
    return [f"+1512{550 + i // 1000}{i % 1000:04d}" for i in range(NUMBERS)]


def _urls(location_id: str, numbers: list[str]) -> list[str]:
    pages = [f"/v1/numbers?start={start}&max=100" for start in range(0, NUMBERS, 100)]
    filtered = [f"/v1/numbers?available=true&start={start}&max=100" for start in range(0, 2000, 100)]
    filtered += [f"/v1/numbers?state=ACTIVE&locationId={location_id}&start={start}&max=100"
                 for start in range(0, 2000, 100)]
    singles = [f"/v1/numbers/{n}" for n in numbers]
    return pages + filtered + singles


def _client(base: str, token: str, urls: list[str], connections: int, seconds: float, seed: int,
            out: multiprocessing.Queue) -> None:
    import aiohttp

    async def run() -> tuple[int, int, list[float]]:
        rng = random.Random(seed)
        latencies: list[float] = []
        failures = 0
        deadline = time.perf_counter() + seconds
        headers = {"Authorization": f"Bearer {token}"}
        connector = aiohttp.TCPConnector(limit=connections)
        async with aiohttp.ClientSession(base, connector=connector, headers=headers) as session:
            async def worker() -> None:
                nonlocal failures
                while time.perf_counter() < deadline:
                    # Half list pages and filters, half single numbers.
                    url = urls[rng.randrange(140)] if rng.random() < 0.5 else urls[140 + rng.randrange(NUMBERS)]
                    started = time.perf_counter()
                    async with session.get(url) as response:
                        await response.read()
                        if response.status != 200:
                            failures += 1
                    latencies.append(time.perf_counter() - started)

            await asyncio.gather(*(worker() for _ in range(connections)))
        return len(latencies), failures, latencies

    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    done, failures, latencies = asyncio.run(run())
    out.put((done, failures, latencies))


def _request(base: str, token: str, method: str, path: str, body: dict | None = None) -> dict:
    import requests

    response = requests.request(method, base + path, json=body, headers={"Authorization": f"Bearer {token}"},
                                timeout=60)
    if response.status_code not in (200, 201):
        raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:300]}")
    return response.json()


def bench_reads(workdir: Path, seconds: float, clients: int, connections: int) -> dict:
    token = "cr_" + secrets.token_urlsafe(24)
    server = ServerProcess(workdir / "reads", prepare=lambda store: add_api_token(store, token, "OWNER"),
                           settings={"log": {"level": "WARNING"}})
    server.start()
    base = f"http://127.0.0.1:{server.api_port}"
    try:
        location_id = _request(base, token, "GET", "/v1/locations?name=Austin")["items"][0]["id"]
        numbers = _numbers()
        for start in range(0, NUMBERS, 100):
            _request(base, token, "POST", f"/v1/locations/{location_id}/numbers",
                     {"phoneNumbers": numbers[start:start + 100]})
        urls = _urls(location_id, numbers)
        listed = _request(base, token, "GET", "/v1/numbers?max=1")
        if listed["total"] != NUMBERS:
            raise RuntimeError(f"the store lists {listed['total']} numbers, not {NUMBERS}")

        # Cold path: after a write, each list page is computed from the store once.
        _request(base, token, "PUT", f"/v1/numbers/{numbers[0]}/emergencyAddress", {})
        cold: list[float] = []
        for start in range(0, NUMBERS, 100):
            started = time.perf_counter()
            _request(base, token, "GET", f"/v1/numbers?start={start}&max=100")
            cold.append(time.perf_counter() - started)

        queue: multiprocessing.Queue = multiprocessing.Queue()
        procs = [multiprocessing.Process(target=_client, args=(base, token, urls, connections, seconds, seed, queue))
                 for seed in range(clients)]
        started = time.perf_counter()
        for p in procs:
            p.start()
        results = [queue.get(timeout=seconds + 120) for _ in procs]
        elapsed = time.perf_counter() - started
        for p in procs:
            p.join()
    finally:
        rc = server.stop()
    done = sum(r[0] for r in results)
    failures = sum(r[1] for r in results)
    latencies = sorted(lat for r in results for lat in r[2])
    # The clients start staggered by process spawn; their own budgets are what they measured.
    rps = done / seconds
    return {"requests": done, "failures": failures, "seconds": seconds, "wall_seconds": round(elapsed, 2),
            "requests_per_s": round(rps), "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
            "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
            "cold_page_ms_median": round(sorted(cold)[len(cold) // 2] * 1000, 2),
            "cold_page_ms_max": round(max(cold) * 1000, 2), "server_exit": rc,
            "clients": clients, "connections_per_client": connections}


def bench_import(workdir: Path) -> dict:
    store = f"sqlite:///{workdir / 'import' / 'store.db'}"
    (workdir / "import").mkdir(parents=True, exist_ok=True)
    apply = subprocess.run([sys.executable, "-m", "callrouter", "apply", str(ROOT / "config" / "example-org.yaml"),
                            "--store", store], cwd=ROOT, capture_output=True, text=True)
    if apply.returncode != 0:
        raise RuntimeError(f"apply failed: {apply.stderr}")
    path = workdir / "import" / "people.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "firstName", "lastName", "location", "extension", "sipUsername", "password"])
        for i in range(PEOPLE):
            writer.writerow([f"user{i}@bulk.acme.example", "User", str(i), "Austin", str(100000 + i),
                             f"bulk{i}", f"bulk-password-{i}"])
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "callrouter", "import-people", str(path), "--store", store],
                            cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    return {"people": PEOPLE, "seconds": round(elapsed, 2), "exit": result.returncode,
            "summary": result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "",
            "errors": result.stderr.strip().splitlines()[:5]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--connections", type=int, default=16, help="connections per client process")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-api-"))
    result: dict = {"machine": platform.platform(), "python": platform.python_version()}
    ok = True
    try:
        result["reads"] = reads = bench_reads(workdir, args.seconds, args.clients, args.connections)
        result["import"] = imported = bench_import(workdir)
        ok = reads["failures"] == 0 and reads["server_exit"] == 0 and imported["exit"] == 0 \
            and imported["summary"].endswith(f"{PEOPLE} added, 0 rows with errors")
    except Exception as exc:  # report, then fail
        result["error"] = f"{type(exc).__name__}: {exc}"
        ok = False
    out = ROOT / "bench" / "results" / "api.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    if "error" in result:
        print(f"api: FAILED: {result['error']} (details in {out}, logs in {workdir})")
        return 1
    reads, imported = result["reads"], result["import"]
    rps_mark = "ok" if reads["requests_per_s"] >= TARGET_RPS else "BELOW TARGET"
    import_mark = "ok" if imported["seconds"] <= TARGET_IMPORT_S else "OVER TARGET"
    print(f"api: GET /v1/numbers over {NUMBERS} numbers {reads['requests_per_s']} req/s "
          f"(target {TARGET_RPS}, {rps_mark}), p99 {reads['p99_ms']} ms, p50 {reads['p50_ms']} ms, "
          f"cold page {reads['cold_page_ms_median']} ms, {reads['failures']} failed | import {PEOPLE} people "
          f"{imported['seconds']} s (target {TARGET_IMPORT_S:.0f}, {import_mark})"
          f"{'' if ok else ' | FAILED: see ' + str(out)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

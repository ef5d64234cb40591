"""``regelwerk serve`` over HTTP on localhost (issue 16): requests/s and p50/p99 at 1, 8 and 32 concurrent clients.

Cells, side by side against the same server: ``GET /v1/whoami`` (the trivial endpoint: authentication and JSON,
no decision: the ceiling), ``POST /v1/can``, ``POST /v1/can/batch`` with 100 questions, ``POST .../fire``
(SQLite and, with ``REGELWERK_TEST_PG_URL``, PostgreSQL). Then 100 tenants loaded: memory per tenant and idle CPU.

The load generator is a minimal HTTP/1.1 keep-alive client on asyncio streams in this process (one connection per
concurrent client), so the client costs little next to the server; both share the machine's two cores.
Goals: a single ``can`` at >= 0.5x the trivial endpoint's requests/s; the batch of 100 at >= 20x the questions/s
of single calls. Bounded: localhost only, a few seconds per cell.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "tenancy"
TOGGLE = """apiVersion: regelwerk/v1
kind: Workflow
metadata: {name: toggle}
spec:
  label: Schakelaar
  resource_type: reminder
  start_permission: create
  states:
    - {id: off, label: Uit, initial: true}
    - {id: on, label: Aan}
  transitions:
    - {id: go, label: Aan, from: off, to: on, permission: read}
    - {id: back, label: Uit, from: on, to: off, permission: read}
"""
EMPLOYEE = {"id": "e1", "roles": ["medewerker"]}


def bundle(extra_comment: str = "") -> dict[str, str]:
    """The benchmark tenant's bundle: the test fixture plus a workflow that flips back and forth."""
    from regelwerk.tenancy.hub import read_bundle_dir

    files = read_bundle_dir(FIXTURE)
    files["toggle.yaml"] = TOGGLE + (f"# {extra_comment}\n" if extra_comment else "")
    return files


def free_port() -> int:
    """A free local port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``regelwerk serve`` in a subprocess."""

    def __init__(self, location: str) -> None:
        self.port = free_port()
        flag = "--database" if location.startswith("postgresql") else "--data"
        self.proc = subprocess.Popen([sys.executable, "-c", "from regelwerk.cli import main; main()", "serve", flag,
                                      location, "--port", str(self.port)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("server did not start") from None
                time.sleep(0.1)

    def rss_kib(self) -> int:
        """Resident memory of the server process."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """SIGTERM, then wait."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Cycle:
    """A client's requests in turn, continuing where the last slice stopped (fire: go, back, go...)."""

    def __init__(self, requests: list[bytes]) -> None:
        self.requests = requests
        self.position = 0

    def next(self) -> bytes:
        """The next request."""
        request = self.requests[self.position % len(self.requests)]
        self.position += 1
        return request


async def _client(port: int, requests: Cycle, stop_at: float, latencies: list[float]) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    done = 0
    try:
        while time.perf_counter() < stop_at:
            request = requests.next()
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            status = int(head[9:12])
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            if status >= 400:
                raise RuntimeError(f"HTTP {status}: {body[:300]!r}")
            latencies.append(time.perf_counter() - started)
            done += 1
    finally:
        writer.close()
    return done


def http_request(method: str, path: str, key: str, body: Any = None) -> bytes:
    """One raw HTTP/1.1 keep-alive request."""
    payload = json.dumps(body).encode() if body is not None else b""
    head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n")
    return head.encode() + payload


def measure(port: int, per_client: list[list[bytes]], seconds: float) -> dict[str, float]:
    """Run ``len(per_client)`` clients for ``seconds``: requests/s, p50 and p99 in ms."""
    latencies: list[float] = []

    async def main() -> int:
        stop_at = time.perf_counter() + seconds
        counts = await asyncio.gather(*(_client(port, Cycle(reqs), stop_at, latencies) for reqs in per_client))
        return sum(counts)

    started = time.perf_counter()
    total = asyncio.run(main())
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {"rps": total / elapsed, "p50": latencies[len(latencies) // 2] * 1000,
            "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000}


def measure_interleaved(port: int, cells: dict[str, list[list[bytes]]], seconds: float,
                        slice_seconds: float = 0.25) -> dict[str, dict[str, float]]:
    """Each cell for ``seconds`` in all, in alternating slices: the machine's load (shared, drifting) falls on
    every cell alike, so their ratios hold even when the absolute numbers move."""
    totals = {name: [0, 0.0, []] for name in cells}  # requests, seconds, latencies
    cycles = {name: [Cycle(reqs) for reqs in per_client] for name, per_client in cells.items()}
    rounds = max(1, round(seconds / slice_seconds))
    for _ in range(rounds):
        for name, per_client in cycles.items():
            latencies: list[float] = []

            async def main(clients: list[Cycle] = per_client, lat: list[float] = latencies) -> int:
                stop_at = time.perf_counter() + slice_seconds
                return sum(await asyncio.gather(*(_client(port, reqs, stop_at, lat) for reqs in clients)))

            started = time.perf_counter()
            done = asyncio.run(main())
            entry = totals[name]
            entry[0] += done  # type: ignore[operator]
            entry[1] += time.perf_counter() - started  # type: ignore[operator]
            entry[2].extend(latencies)  # type: ignore[union-attr]
    out = {}
    for name, (count, elapsed, lat) in totals.items():
        ordered = sorted(lat)  # type: ignore[call-overload]
        out[name] = {"rps": count / elapsed, "p50": ordered[len(ordered) // 2] * 1000,  # type: ignore[operator]
                     "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000}
    return out


def setup_pg(server_url: str) -> tuple[str, str, str]:
    """(owner URL, app URL, schema) on a fresh schema under row-level security, as the tests do."""
    import sqlalchemy as sa
    from regelwerk.tenancy.hub import upgrade_all

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(server_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    options = ("&" if "?" in server_url else "?") + f"options=-csearch_path%3D{schema}"
    upgrade_all(server_url + options, "regelwerk_app")
    app = sa.make_url(server_url).set(username="regelwerk_app", password="regelwerk_app")
    return server_url + options, app.render_as_string(hide_password=False) + options, schema


def drop_pg(server_url: str, schema: str) -> None:
    """Remove the benchmark's schema."""
    import sqlalchemy as sa

    admin = sa.create_engine(server_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def prepare(location: str, tenants: int = 1, distinct: bool = False) -> list[str]:
    """Tenants with the benchmark bundle; their keys."""
    from regelwerk.tenancy.hub import TenantHub

    keys = []
    with TenantHub(location) as hub:
        for i in range(tenants):
            name = f"bench-{i:03d}"
            hub.create_tenant(name)
            hub.deploy(name, bundle(name if distinct else ""), matrix="service")
            keys.append(hub.issue_key(name, "bench")[0])
    return keys


def throughput_table(location: str, label: str, seconds: float, levels: tuple[int, ...],
                     with_decisions: bool) -> list[str]:
    """Every cell of one store."""
    key = prepare(location)[0]
    server = Server(location)
    rows = []
    try:
        port = server.port
        whoami = [http_request("GET", "/v1/whoami", key)]
        can = [http_request("POST", "/v1/can", key, {"actor": EMPLOYEE, "action": "read",
                                                     "resource": {"type": "reminder", "id": "r1"}})]
        batch_body = {"actor": EMPLOYEE, "resources": [{"type": "reminder", "id": f"r{i}", "actions": ["read", "close"]}
                                                       for i in range(50)]}
        batch = [http_request("POST", "/v1/can/batch", key, batch_body)]
        # the batch's 100 questions asked one by one (half allowed reads, half denied closes: audited writes)
        mixed = [http_request("POST", "/v1/can", key, {"actor": EMPLOYEE, "action": action, "resource": {
            "type": "reminder", "id": f"r{i}"}}) for i in range(50) for action in ("read", "close")]
        measure(port, [whoami, can, batch, mixed], 0.5)  # warm-up: the tenant's engine is loaded
        for level in levels:
            ids = []
            for _ in range(level):
                made = _post(port, key, "/v1/instances", {"workflow": "toggle", "actor": EMPLOYEE})
                ids.append(made["id"])
            flips = [[http_request("POST", f"/v1/instances/{i}/fire", key, {"event": e, "actor": EMPLOYEE})
                      for e in ("go", "back")] for i in ids]
            plan = {f"POST fire ({label})": flips}
            if with_decisions:
                plan = {"GET /v1/whoami (trivial)": [whoami] * level, "POST /v1/can": [can] * level,
                        "POST /v1/can (the batch's questions)": [mixed] * level,
                        "POST /v1/can/batch (100)": [batch] * level, **plan}
            cells = measure_interleaved(port, plan, seconds)
            for name, cell in cells.items():
                extra = ""
                if name.startswith("POST /v1/can/batch"):
                    single = cells["POST /v1/can (the batch's questions)"]["rps"]
                    extra = f"{cell['rps'] * 100:,.0f} q/s = **{cell['rps'] * 100 / single:.1f}x** single"
                elif name.startswith("POST /v1/can"):
                    extra = f"**{cell['rps'] / cells['GET /v1/whoami (trivial)']['rps']:.2f}x** trivial"
                rows.append(f"| {name} | {level} | {cell['rps']:,.0f} | {cell['p50']:.2f} | {cell['p99']:.2f} | "
                            f"{extra} |")
    finally:
        server.stop()
    return rows


def _post(port: int, key: str, path: str, body: Any) -> dict[str, Any]:
    import urllib.request

    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        data: dict[str, Any] = json.loads(response.read())
    return data


def tenants_loaded(location: str, count: int, idle_seconds: float) -> list[str]:
    """Memory per tenant (each its own bundle version) and idle CPU with ``count`` tenants loaded."""
    keys = prepare(location, count, distinct=True)
    server = Server(location)
    try:
        ask = {"actor": EMPLOYEE, "action": "read", "resource": {"type": "reminder"}}
        _post(server.port, keys[0], "/v1/can", ask)
        time.sleep(0.5)
        one = server.rss_kib()
        started = time.perf_counter()
        for key in keys[1:]:
            _post(server.port, key, "/v1/can", ask)
        load_seconds = time.perf_counter() - started
        time.sleep(0.5)
        loaded = server.rss_kib()
        cpu0, wall0 = server.cpu_seconds(), time.perf_counter()
        time.sleep(idle_seconds)
        idle = (server.cpu_seconds() - cpu0) / (time.perf_counter() - wall0) * 100
    finally:
        server.stop()
    per = (loaded - one) / max(1, count - 1)
    return [f"| tenants loaded (each its own bundle version) | {count} |",
            f"| server RSS with 1 tenant loaded | {one / 1024:.0f} MiB |",
            f"| server RSS with {count} tenants loaded | {loaded / 1024:.0f} MiB |",
            f"| memory per tenant | **{per / 1024:.1f} MiB** |",
            f"| first request per tenant (compile and load its version) | {load_seconds / max(1, count - 1) * 1000:.0f}"
            f" ms |",
            f"| idle CPU of the server over {idle_seconds:.0f} s | **{idle:.2f} %** of one core |"]


def main() -> None:
    """Print the tables."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    seconds = 1.5 if args.quick else 4.0
    levels = (1, 8, 32)
    work = Path(tempfile.mkdtemp(prefix="regelwerk-bench-service-"))
    header = ["| endpoint | clients | requests/s | p50 ms | p99 ms | ratio |",
              "| --- | ---: | ---: | ---: | ---: | --- |"]
    try:
        rows = throughput_table(str(work / "sqlite"), "SQLite", seconds, levels, True)
        pg_url = os.environ.get("REGELWERK_TEST_PG_URL")
        if pg_url:
            _owner, app, schema = setup_pg(pg_url)
            try:
                rows += throughput_table(app, "PostgreSQL", seconds, levels, False)
            finally:
                drop_pg(pg_url, schema)
        else:
            rows.append("| POST fire (PostgreSQL) | | skipped: set REGELWERK_TEST_PG_URL | | | |")
        print("\n".join(header + rows))
        print()
        print("| 100 tenants | |\n| --- | ---: |")
        print("\n".join(tenants_loaded(str(work / "many"), 100, 3.0 if args.quick else 10.0)))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

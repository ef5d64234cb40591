"""A real ``regelwerk serve`` in a subprocess on 127.0.0.1 (a free port), for the service tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(location: str, *args: str, log: Path | None = None) -> Iterator[str]:
    """``regelwerk serve`` on ``location`` (a SQLite directory or a PostgreSQL URL); yields its base URL."""
    port = free_port()
    flag = "--database" if location.startswith("postgresql") else "--data"
    command = [sys.executable, "-c", "from regelwerk.cli import main; main()", "serve", flag, location,
               "--port", str(port), "--cache-seconds", "0", *args]
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"regelwerk serve exited with {proc.returncode}"
                                   + (f": {log.read_text()}" if log else ""))
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("regelwerk serve did not come up")
            time.sleep(0.1)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log:
            out.close()  # type: ignore[union-attr]

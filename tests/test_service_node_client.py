"""The Node.js client in examples/service-client runs with ``node`` against a live ``regelwerk serve``: it deploys a
tenant's bundle, starts and fires a workflow, asks a batch of permission questions and reads a refusal's
explanation."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from _service_server import running_server
from regelwerk.tenancy.hub import TenantHub

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "examples" / "service-client"
BUNDLE = Path(__file__).parent / "fixtures" / "tenancy"


def test_the_node_client_deploys_starts_fires_and_asks(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI"):
            pytest.fail("node is missing (CI installs Node.js)")
        pytest.skip("node is not installed")
    data = str(tmp_path / "data")
    with TenantHub(data) as hub:
        hub.create_tenant("node-tenant")
        key, _ = hub.issue_key("node-tenant", "node demo")
    with running_server(data, log=tmp_path / "serve.log") as base:
        result = subprocess.run([node, "demo.mjs", str(BUNDLE), "service"], cwd=CLIENT, capture_output=True,
                                text=True, timeout=60, check=False,
                                env={**os.environ, "REGELWERK_URL": base, "REGELWERK_KEY": key})
    assert result.returncode == 0, result.stderr
    steps = {line["step"]: line for line in map(json.loads, result.stdout.splitlines())}
    assert steps["deploy"]["active"] is True and len(steps["deploy"]["version"]) == 16
    assert steps["start"]["state"] == "waiting"
    assert steps["refusal"] == {"step": "refusal", "refused": True, "status": 403, "code": "permission_denied",
                                "reason": "no grant for medewerker on reminder.close (deny by default)"}
    assert steps["explain"]["allowed"] is False and steps["explain"]["reasons"]
    assert steps["fire"]["state"] == "closed"
    assert steps["batch"]["questions"] == 100 and steps["batch"]["allowed"] == 50 and steps["batch"]["denied"] == 50
    assert "deny by default" in steps["batch"]["first_denial"]
    assert steps["history"]["events"] == ["$start", "close"]

"""``regelwerk tenants``: create (prints the first key once), admin-key, list, migrate plan|apply per tenant."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from click.testing import CliRunner
from regelwerk.cli import cli, main
from regelwerk.tenancy.hub import TenantHub
from test_tenancy import EMPLOYEE, bundle_files, changed_files


def _run(*args: str) -> tuple[int, str]:
    with contextlib.suppress(SystemExit):
        main(["--help"])  # registers the plugins' commands on the group
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_tenants_commands(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    code, out = _run("tenants", "create", "acme", "--data", data, "--name", "Acme BV")
    assert code == 0 and out.startswith("rwk_")
    key = out.strip()
    code, out = _run("tenants", "admin-key", "--data", data)
    assert code == 0 and out.startswith("rwk_")
    code, out = _run("tenants", "create", "acme", "--data", data)
    assert code == 2 and "exists" in out
    with TenantHub(data) as hub:
        principal = hub.authenticate(key)
        assert principal is not None and principal.tenant == "acme"
        hub.deploy("acme", bundle_files(), matrix="service")
        hub.engine("acme").start("reminder", {}, actor=EMPLOYEE, instance_id="r1")
        hub.deploy("acme", changed_files(), matrix="service")
    code, out = _run("tenants", "list", "--data", data)
    assert code == 0 and [t["name"] for t in json.loads(out)] == ["Acme BV"]
    code, out = _run("tenants", "migrate", "acme", "plan", "--data", data)
    assert code == 0 and [(i["instance"], i["action"], i["applied"]) for i in json.loads(out)] == [
        ("r1", "keep", False)]
    code, out = _run("tenants", "migrate", "acme", "apply", "--data", data)
    assert code == 0 and [i["applied"] for i in json.loads(out)] == [True]
    code, out = _run("tenants", "migrate", "acme", "plan", "--data", data)
    assert json.loads(out) == []

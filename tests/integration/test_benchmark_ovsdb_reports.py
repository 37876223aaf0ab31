"""benchmarks.ovsdb_reports on a small database: it runs to the end on real ovsdb-server, and
its own check (every incremental report equals one read from scratch) holds."""

from __future__ import annotations

import json

from benchmarks import ovsdb_reports


def test_small_run_reports_and_plans(capsys):
    assert ovsdb_reports.main(["--tunnels", "30", "--vms", "3", "--changes", "3",
                               "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["tunnels"] == 30 and result["changes"] == 3
    assert result["tunnel_replans"] == 0  # VM ports coming do not re-plan tunnels
    assert result["incremental_ms"] > 0 and result["full_snapshot_ms"] > 0

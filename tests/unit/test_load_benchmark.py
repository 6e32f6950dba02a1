"""The load benchmark's pure helpers: /proc parsing, roles from the process tree, the figures."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")

load = importlib.import_module("benchmarks.load")

STATUS = """Name:\tflwr-serverapp
State:\tS (sleeping)
VmPeak:\t 4000000 kB
VmHWM:\t  831660 kB
VmRSS:\t  800000 kB
RssAnon:\t  473712 kB
RssFile:\t  326288 kB
"""

# launcher 1 -> superlink 10 -> superexec 11 -> serverapp 12; 20/21 edges; 30 the flwr CLI
TREE = {
    10: (1, ["/v/bin/python3", "/v/bin/flower-superlink", "--insecure"]),
    11: (10, ["/v/bin/python3", "/v/bin/flower-superexec", "--runtime-api-address", "x"]),
    12: (11, ["/v/bin/python3", "/v/bin/flwr-serverapp", "--token", "t"]),
    20: (1, ["/v/bin/python", "-m", "hierfl.deploy.supernode", "--partition-id", "0"]),
    21: (20, ["/v/bin/python3", "/v/bin/flower-superexec"]),
    22: (21, ["/v/bin/python3", "/v/bin/flwr-clientapp"]),
    30: (1, ["/v/bin/python3", "/v/bin/flwr", "run", "/runs/flwr-serverapp"]),
    40: (2, ["/v/bin/python3", "/v/bin/flwr-serverapp"]),  # someone else's run
}


def test_parse_status_reads_kib_fields() -> None:
    assert load.parse_status(STATUS) == load.Memory(rss=800000, hwm=831660, anon=473712)


def test_parse_status_of_a_zombie_is_zero() -> None:
    assert load.parse_status("Name:\tx\nState:\tZ (zombie)\n") == load.Memory(0, 0, 0)


@pytest.mark.parametrize(
    ("pid", "role"),
    [
        (10, "superlink"),
        (11, "superexec"),
        (12, "serverapp"),
        (20, "edges"),
        (21, "edges"),
        (22, "edges"),
        (30, "other"),  # a path argument naming flwr-serverapp does not make it one
        (40, None),  # not below the launcher
        (99, None),  # gone
    ],
)
def test_classify_by_process_tree(pid: int, role: str | None) -> None:
    assert load.classify(pid, TREE, root=1) == role


def test_classify_survives_a_parent_cycle() -> None:
    assert load.classify(5, {5: (6, ["a"]), 6: (5, ["b"])}, root=1) is None


def test_row_throughput_and_median() -> None:
    metrics = {
        "time": {"wall_s": 10.0, "cloud_compute_s": 2.0},
        "communication": {"uplink_bytes": 5_000_000},
        "rounds": [
            {"wall_s": 3.0, "examples": 100},
            {"wall_s": 5.0, "examples": 100},
            {"wall_s": 4.0, "examples": 50},
        ],
        "final": {"cloud_accuracy": 0.9},
    }
    sampler = load.RssSampler(root=1)
    sampler.peak_kib["serverapp"], sampler.hwm_kib["serverapp"] = 1024, 2048
    row = load.row_from(metrics, 4, sampler, total_s=12.0)
    assert row["uplink_mb"] == 5.0
    assert row["mb_per_s_wall"] == 0.5
    assert row["mb_per_s_cloud"] == 2.5
    assert row["samples_per_s"] == 25.0
    assert row["round_median_s"] == 4.0
    assert row["server_peak_rss_mib"] == 2.0  # the high-water mark wins over the samples


def test_markdown_has_a_row_per_run_and_dashes_for_gaps() -> None:
    text = load.markdown([{"clients": 2, "wall_s": 1.0}, {"clients": 10}])
    lines = text.splitlines()
    assert len(lines) == 4
    assert lines[0].count("|") == lines[1].count("|") == lines[2].count("|")
    assert lines[3].startswith("| 10 | - |")


def test_sampler_sees_its_own_child_and_stops() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with load.RssSampler(root=os.getpid(), interval=0.01) as sampler:
            deadline = time.monotonic() + 5
            while sampler.samples < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
        assert not sampler._thread.is_alive()
        assert sampler.peak_mib("other") > 1  # a Python interpreter is more than 1 MiB
        assert sampler.peak_mib("serverapp") == 0
    finally:
        child.kill()
        child.wait()

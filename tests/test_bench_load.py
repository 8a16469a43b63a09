"""The streaming-capacity bench (bench/load.py) still runs: at its smallest size, as a subprocess, against its
engine simulator, its figures present and sane. Nothing here holds the stack to the issue's targets: at two
conversations nothing may be lost, cut or failed, that is all."""

import pytest

from tests.test_benches import run_bench

pytestmark = pytest.mark.slow  # starts the simulator, daphne and a worker on a database it migrates


def test_load_streams_every_reply_whole_and_holds_idle_sockets(tmp_path):
    args = ("--steps", "2", "--duration", "6", "--tokens", "40", "--idle", "50", "--web-processes", "1")
    stdout, report = run_bench("load.py", *args, json_path=tmp_path / "load.json", timeout=180)
    assert f"bench/load.py {' '.join(args)}" in stdout.splitlines()[0]
    assert "engine: SIMULATOR (40 tok/s, 40 tokens" in stdout  # never mistaken for a model's figures
    assert report["engine"]["kind"] == "SIMULATOR" and report["settings"]["web_processes"] == 1
    assert report["settings"]["knowledge_answer_mode"] == "generative"

    [step] = report["steps"]
    assert step["conversations"] == step["sockets"] == 2
    # Every question got its reply, whole: each reply's deltas add up to its done frame and to the stored row.
    assert step["questions"] >= 2 and step["replies"] == step["questions"] == step["ok"]
    assert step["errors"] == step["lost"] == step["incomplete"] == 0, step["outcomes"]
    assert step["frames_per_s"] > 0 and step["replies_per_s"] > 0
    assert step["deltas_per_reply"] > 1  # streamed a sentence at a time, not in one piece
    overhead = step["first_delta_overhead_ms"]
    assert overhead["p50"] <= overhead["p95"] <= overhead["p99"] <= overhead["max"] < 60_000
    assert {"daphne-1", "worker", "simulator", "client", "redis"} <= set(step["cpu_percent"])
    assert step["postgres_connections_peak"] > 0

    idle = report["idle"]
    assert idle["connected"] == idle["sockets"] == 50 and idle["errors"] == 0
    assert idle["kb_per_socket"] > 0
    assert "Targets (the issue's, on this machine):" in stdout and "idle target (10000 sockets" in stdout

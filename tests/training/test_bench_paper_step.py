"""The paper-step benchmark's smoke run prints its measurements (numbers are not judged here)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_paper_step.py"


@pytest.mark.slow
def test_smoke_run_prints_throughput_data_wait_and_memory_for_each_worker_count():
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, str(BENCH), "--smoke"], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert re.search(r"model-only step: [\d.]+ s, samples/s [\d.]+", out)
    for workers in (0, 2, 8):
        assert re.search(rf"workers {workers}: full step [\d.]+ s, samples/s [\d.]+, data wait [\d.]+ %", out), out
    assert re.search(r"peak memory: [\d.]+ GiB", out)

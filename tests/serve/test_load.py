"""benchmarks/serve_load.py's load on a loopback server: as many clients as the queue holds, for a few
seconds; every request is answered (none failed, none turned away)."""

import importlib.util
import sys

import pytest

from ..conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "serve_load.py"


@pytest.fixture(scope="module")
def serve_load():
    spec = importlib.util.spec_from_file_location("serve_load", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


@pytest.mark.slow
def test_clients_up_to_the_queue_limit_are_all_answered(serve_load, loopback_server, trained_run):
    video = trained_run.dataset.clips("test")[0][0]
    result = serve_load.run_load(loopback_server.url, video, clients=4, seconds=4)
    assert result.failures == [] and result.busy == 0
    assert len(result.latencies) >= 4 and result.requests == len(result.latencies)
    clients, requests, rate, p50, p95, busy, failed = result.row()
    assert clients == 4 and float(rate) > 0 and 0 < float(p50) <= float(p95) and (busy, failed) == (0, 0)

"""benchmarks/serve_load.py's load on a loopback server: as many clients as the queue holds, for a few
seconds; every request is answered (none failed, none turned away)."""


import pytest

from ..conftest import benchmark_script


@pytest.fixture(scope="module")
def serve_load():
    with benchmark_script("serve_load") as module:
        yield module


@pytest.mark.slow
def test_clients_up_to_the_queue_limit_are_all_answered(serve_load, loopback_server, trained_run):
    video = trained_run.dataset.clips("test")[0][0]
    result = serve_load.run_load(loopback_server.url, video, clients=4, seconds=4)
    assert result.failures == [] and result.busy == 0
    assert len(result.latencies) >= 4 and result.requests == len(result.latencies)
    clients, requests, rate, p50, p95, busy, failed = result.row()
    assert clients == 4 and float(rate) > 0 and 0 < float(p50) <= float(p95) and (busy, failed) == (0, 0)

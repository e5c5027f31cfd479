"""``artnet serve`` under load, on loopback: N concurrent clients for a bounded time, each posting a
video and waiting for its answer before posting again (after a 503, for its Retry-After);
requests/s, p50 / p95 latency, failures.

    python benchmarks/serve_load.py --checkpoint runs/demo/artnet_r18_d/final.pt --clients 1 2 4 8 --seconds 30

The server is ``artnet serve`` in a process of its own on 127.0.0.1 (a free port), with its default
limits but for ``--queue``; the video defaults to a test clip of the built-in dataset the demo
made. A request answered 503 (the queue full) is counted apart from failures: with at most
``--queue`` clients there must be none of either.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing

from artnet.machine import cpu_name  # noqa: E402
from artnet.table import format_table  # noqa: E402

QUERY = "/v1/predict?images=true"  # what the page asks: top-5, timeline, maps and their pictures


@dataclass
class LoadResult:
    clients: int
    seconds: float
    latencies: list[float] = field(default_factory=list)  # of the requests answered 200
    busy: int = 0  # answered 503: the queue was full
    failures: list[str] = field(default_factory=list)  # anything else: status and error

    @property
    def requests(self) -> int:
        return len(self.latencies) + self.busy + len(self.failures)

    def row(self) -> list:
        ms = sorted(1000 * t for t in self.latencies)
        p50 = statistics.median(ms) if ms else float("nan")
        p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))] if ms else float("nan")
        return [
            self.clients,
            self.requests,
            f"{len(self.latencies) / self.seconds:.2f}",
            f"{p50:.0f}",
            f"{p95:.0f}",
            self.busy,
            len(self.failures),
        ]


HEADERS = ("clients", "requests", "answered / s", "p50 ms", "p95 ms", "503 (queue full)", "failed")


def run_load(url: str, video: Path, clients: int, seconds: float, query: str = QUERY) -> LoadResult:
    """``clients`` threads posting ``video`` to ``url + query`` in a loop for ``seconds``."""
    import httpx

    content = video.read_bytes()
    result = LoadResult(clients, seconds)
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client() -> None:
        with httpx.Client(base_url=url, timeout=600) as session:
            while time.monotonic() < stop:
                started = time.perf_counter()
                try:
                    response = session.post(query, files={"video": (video.name, content, "video/mp4")})
                    outcome = response.status_code, response.text[:200]
                except httpx.HTTPError as error:
                    outcome = 0, f"{type(error).__name__}: {error}"
                elapsed = time.perf_counter() - started
                with lock:
                    if outcome[0] == 200:
                        result.latencies.append(elapsed)
                    elif outcome[0] == 503:
                        result.busy += 1
                    else:
                        result.failures.append(f"{outcome[0]} {outcome[1]}")
                if outcome[0] == 503:  # a well-behaved client waits as it is told
                    time.sleep(float(response.headers.get("retry-after", 1)))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    begun = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.monotonic() - begun  # the last requests end after the deadline
    return result


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(checkpoint: str, queue: int, port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "artnet", "serve", "--checkpoint", checkpoint, "--port", str(port), "--queue", str(queue)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    import httpx

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"artnet serve exited:\n{server.stderr.read()[-2000:]}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/v1/model", timeout=2).raise_for_status()
            return server
        except httpx.HTTPError:
            time.sleep(0.5)
    server.kill()
    raise SystemExit("artnet serve did not answer in 300 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="runs/demo/artnet_r18_d/final.pt")
    parser.add_argument("--video", default=None, help="default: a test clip of the demo's built-in dataset")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--queue", type=int, default=4)
    args = parser.parse_args()
    if args.video is None:
        from artnet.demo import default_cache

        args.video = str(default_cache() / "Rising" / "Rising_040.mp4")
    port = free_port()
    server = start_server(args.checkpoint, args.queue, port)
    try:
        results = [run_load(f"http://127.0.0.1:{port}", Path(args.video), clients, args.seconds) for clients in args.clients]
    finally:
        server.terminate()
        server.wait(timeout=60)
    print(
        f"artnet serve on loopback, queue {args.queue}, {Path(args.video).name}, {args.seconds:g} s per row;"
        f" {cpu_name()}, {os.cpu_count()} CPUs"
    )
    print(format_table(HEADERS, [r.row() for r in results]))
    for result in results:
        for failure in result.failures[:3]:
            print(f"{result.clients} clients: failed: {failure}")


if __name__ == "__main__":
    main()

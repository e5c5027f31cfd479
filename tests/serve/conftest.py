"""A server of a trained model, in this process (FastAPI's test client) or listening on loopback."""

import socket
import threading
import time

import pytest

from artnet.serve import ServeSettings, create_app


@pytest.fixture(scope="session")
def trained_checkpoint(trained_run):
    return str(trained_run.run_dir / "final.pt")


def make_app(checkpoint: str, **limits):
    return create_app(ServeSettings(checkpoint, device="cpu", acceleration="fp32", **limits))


class LoopbackServer:
    """uvicorn serving ``app`` on 127.0.0.1 at a free port, in a thread, until stopped."""

    def __init__(self, app):
        import uvicorn

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="session")
def loopback_server(trained_checkpoint):
    with LoopbackServer(make_app(trained_checkpoint, queue=4)) as server:
        yield server

"""Run the sandbox app with uvicorn: in a background thread (tests, demo) or in the foreground (CLI)."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn


class RunningServer:
    """A uvicorn server running in a daemon thread; ``base_url`` is ready when the constructor returns."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        self.app = app
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        self._socket = sock
        self.host, self.port = sock.getsockname()[:2]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=30)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True,
                                        name=f"sandbox-{self.port}")
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the sandbox server did not start")
            time.sleep(0.01)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def data(self):
        return self.app.state.data

    @property
    def state(self):
        return self.app.state.sandbox

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()
        state = getattr(getattr(self.app, "state", None), "sandbox", None)
        if state is not None:
            state.close()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_in_thread(app, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Serve ``app`` on host:port (0 = a free port) in a background thread."""
    return RunningServer(app, host, port)


def serve_forever(app, host: str = "127.0.0.1", port: int = 8765) -> None:
    uvicorn.run(app, host=host, port=port, log_level="warning", lifespan="off")

"""Starts and stops real Odradek brokers for the interop tests.

The binary is built by run-tests.sh (`cargo build -p odradek`) before pytest runs; set
ODRADEK_BIN to test another build. Every broker gets a free port and a temporary data
directory, and is stopped (or killed) by the fixture that started it.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("ODRADEK_BIN", os.path.join(ROOT, "target", "debug", "odradek"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, data_dir=None, port=None, args=()):
        self.port = port or free_port()
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="odradek-interop-")
        self.args = list(args)
        self.proc = None
        # Beside the data directory, spelled without "..": cleanup() removes it after the
        # directory is gone, when a path through the directory no longer resolves.
        data_abs = os.path.abspath(self.data_dir)
        self.log_path = os.path.join(os.path.dirname(data_abs), os.path.basename(data_abs) + ".log")
        self.log = None

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        assert os.path.exists(BIN), f"{BIN} missing: run `cargo build -p odradek` first"
        self._close_log()
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--listeners", self.bootstrap, "--data-dir", self.data_dir, *self.args],
            stdout=self.log,
            stderr=self.log,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited with {self.proc.returncode}: {self.read_log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    # A free ephemeral port can be picked as the probe's own source port: the
                    # socket then connects to itself, and nothing listens yet.
                    if s.getsockname() != s.getpeername():
                        return self
                    time.sleep(0.05)
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("broker did not start listening: " + self.read_log())

    def _close_log(self):
        if self.log is not None:
            self.log.close()
            self.log = None

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self):
        """SIGTERM: a clean shutdown."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        self.proc = None

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def cleanup(self):
        self.kill9()
        self._close_log()
        if self.own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            try:
                os.remove(self.log_path)
            except OSError:
                pass


@pytest.fixture(scope="session")
def broker():
    b = Broker(args=["--num-partitions", "3"]).start()
    yield b
    alive = b.alive()
    b.stop() if alive else None
    b.cleanup()
    assert alive, "the shared broker died during the tests"


@pytest.fixture
def fresh_broker():
    """A broker of the test's own, for restarts and kills."""
    made = []

    def make(args=()):
        b = Broker(args=args).start()
        made.append(b)
        return b

    yield make
    for b in made:
        b.cleanup()


_counter = [0]


@pytest.fixture
def topic_name(request):
    _counter[0] += 1
    base = "".join(c if c.isalnum() else "-" for c in request.node.name)[:60]
    return f"{base}-{_counter[0]}-{int(time.time() * 1000) % 100000}"


def _leftovers():
    tmp = tempfile.gettempdir()
    return {f for f in os.listdir(tmp) if f.startswith("odradek-interop-")}


_before_session = set()


def pytest_sessionstart(session):
    _before_session.update(_leftovers())


def pytest_sessionfinish(session, exitstatus):
    """Every broker a test started removes its data directory and log: a run that leaves any in
    the temp directory fails."""
    left = sorted(_leftovers() - _before_session)
    if left:
        print(f"\ninterop tests left {len(left)} broker files in {tempfile.gettempdir()}: {left[:5]}")
        session.exitstatus = 1

"""A real ``redis-server`` for tests: started on 127.0.0.1 on a free port, stopped by its pid."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.orphans import die_with_parent

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"

__all__ = [
    "RedisClusterServers", "RedisServer", "redis_server", "start_redis_cluster",
    "start_redis_server",
]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process with its own directory; ``restart()`` keeps port and data."""

    def __init__(
        self,
        directory: Path,
        persistent: bool = False,
        port: int | None = None,
        extra: tuple[str, ...] = (),
    ):
        self.dir = directory
        self.persistent = persistent
        self.port = port or _free_port()
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else [
            "--appendonly", "no"
        ]  # fmt: skip
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                *persistence, "--daemonize", "no", "--dir", str(self.dir), *self.extra]  # fmt: skip
        log = open(self.dir / "redis.log", "ab")  # noqa: SIM115 - the server owns it
        self.proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent()
        )  # dies with pytest, even by SIGKILL (tests/orphans.py)
        log.close()
        deadline = time.monotonic() + 10
        while not _answers_ping(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                text = (self.dir / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server did not start on port {self.port}:\n{text}")
            time.sleep(0.01)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop by its own pid (SIGTERM: a clean shutdown that flushes the AOF)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def unique_prefix(self) -> str:
        """A key prefix no other test uses (tests share the session server)."""
        return f"t{uuid.uuid4().hex[:12]}"


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    for _attempt in range(100):
        port = _free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


class RedisClusterServers:
    """A local Redis Cluster: ``masters`` masters with one replica each, one redis-server
    process per node (each with its own directory), stopped by their pids."""

    def __init__(self, directory: Path, masters: int = 3) -> None:
        self.nodes: list[RedisServer] = []
        for i in range(masters * 2):
            node_dir = directory / f"node{i}"
            node_dir.mkdir(parents=True, exist_ok=True)
            port = _cluster_port()
            extra = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                     "--cluster-node-timeout", "2000")  # fmt: skip
            self.nodes.append(RedisServer(node_dir, port=port, extra=extra))

    @property
    def url(self) -> str:
        """A node that is running (a test may have killed one to force a failover)."""
        return next(node.url for node in self.nodes if node.proc is not None)

    def start(self) -> RedisClusterServers:
        try:
            for node in self.nodes:
                node.start()
            addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
            subprocess.run(
                [REDIS_CLI, "--cluster", "create", *addresses, "--cluster-replicas", "1",
                 "--cluster-yes"],
                check=True, capture_output=True, timeout=60,
            )  # fmt: skip
            self.wait_ok()
        except BaseException:
            self.stop()
            raise
        return self

    def info(self, node: RedisServer, section: str = "cluster") -> str:
        out = subprocess.run(
            [REDIS_CLI, "-p", str(node.port), "cluster", "info"] if section == "cluster"
            else [REDIS_CLI, "-p", str(node.port), "info", section],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
        return out.stdout

    def wait_ok(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not all("cluster_state:ok" in self.info(n) for n in self.nodes):
            if time.monotonic() > deadline:
                raise RuntimeError("the local Redis Cluster did not reach cluster_state:ok")
            time.sleep(0.1)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def start_redis_cluster(directory: Path) -> RedisClusterServers:
    if not os.path.exists(REDIS_SERVER) or not os.path.exists(REDIS_CLI):
        pytest.skip("redis-server and redis-cli are needed for a Redis Cluster")
    return RedisClusterServers(directory).start()


def start_redis_server(directory: Path | None = None, persistent: bool = False) -> RedisServer:
    """Start a redis-server; ``persistent=True`` turns on the append-only file."""
    if not os.path.exists(REDIS_SERVER):
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    directory = Path(directory or tempfile.mkdtemp(prefix="restate-redis-"))
    for _attempt in range(3):
        server = RedisServer(directory, persistent)
        try:
            return server.start()
        except RuntimeError:
            if _attempt == 2:
                raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server for the whole session, without persistence."""
    server = start_redis_server(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()


# ---- the contract suite's hook (tests/backends/conftest.py appends these) ---------------------


def _make_redis(tmp_path: Path, request: pytest.FixtureRequest, cls_name: str = "RedisBackend"):
    from restate.backends import redis as redis_backends

    server = request.getfixturevalue("redis_server")
    return getattr(redis_backends, cls_name)(server.url, server.unique_prefix())


def redis_snapshot(backend) -> dict[str, object]:
    """The raw state of one backend's keys: every directory hash and the stream's length."""
    import redis

    client = redis.Redis.from_url(backend.url, decode_responses=True)
    try:
        found: dict[str, object] = {
            key: client.hgetall(key) for key in client.scan_iter(match=f"{backend.keyspace}:n:*")
        }
        found["changes"] = client.xlen(f"{backend.keyspace}:changes")
        return found
    finally:
        client.close()


def redis_contract_factories(factory_cls: type) -> list[object]:
    """The contract suite entries for RedisBackend and RedisAsyncBackend."""
    from restate.backends.redis import RedisAsyncBackend, RedisBackend

    return [
        factory_cls(
            name,
            make=lambda tmp_path, request, cls=cls: _make_redis(tmp_path, request, cls.__name__),
            snapshot=redis_snapshot,
            reopen=lambda old, tmp_path, cls=cls: cls(old.url, old.prefix),
            marks=(pytest.mark.redis,),
        )
        for name, cls in (("redis", RedisBackend), ("redis-async", RedisAsyncBackend))
    ]

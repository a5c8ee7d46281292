"""Real services for tests: a private redis-server, a private PostgreSQL database, a Celery worker
process and a uvicorn server in a thread."""

from __future__ import annotations

import contextlib
import itertools
import os
import select
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import uvicorn
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from api.serve import make_config

T = TypeVar("T")
REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05) -> T:
    """The predicate's first truthy value, polled until `timeout` (then TimeoutError naming `what`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


class RedisServer:
    """A redis-server of our own on a free port: tests may flush or kill it freely."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.binary, self.workdir = binary, workdir
        self.port = free_port()
        self.start()

    def start(self) -> None:
        """Start (again) on the same port, empty: no persistence, as a restart that lost everything."""
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._answers, 10, "redis-server")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class S3Server:
    """moto's standalone S3-compatible server, on a free port, behind a `TcpProxy` whose cut makes the
    store unreachable without losing what it holds (moto keeps objects in memory only). `env` is what a
    client needs: the standard AWS variables naming this endpoint and dummy credentials."""

    def __init__(self, log_path: Path, bucket: str = "stt-audio") -> None:
        self.port = free_port()
        self.log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for(lambda: _connects(self.port), 30, "moto's S3 server")
        self.proxy = TcpProxy(self.port)
        self.bucket = bucket
        self.env = {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.proxy.port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        self.client().create_bucket(Bucket=bucket)

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.env["AWS_ENDPOINT_URL"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def object_keys(self) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def stop(self) -> None:
        self.proxy.stop()
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


def _connects(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class TcpProxy:
    """Forwards a local port to `target_port`. `cut()` closes every connection and refuses new ones (the
    service behind it looks down); `restore()` accepts again on the same port."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.lock = threading.Lock()
        self.open: set[socket.socket] = set()
        self.listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self.listener = self.listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept(); close alone does not
            listener.close()
        with self.lock:
            for sock in self.open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self.open.clear()

    stop = cut

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                target.shutdown(socket.SHUT_WR)


class PostgresServer:
    """A PostgreSQL server of our own (initdb into a temporary directory, a free port): tests may stop
    it and start it again. As root, the server runs as the `postgres` user, as PostgreSQL requires."""

    def __init__(self) -> None:
        bindir = self._bindir()
        self.initdb, self.pg_ctl = str(bindir / "initdb"), str(bindir / "pg_ctl")
        self.root = Path(tempfile.mkdtemp(prefix="stt-pg-"))  # not under pytest's 0700 root-owned tmp
        self.as_owner: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            self.as_owner = ["runuser", "-u", "postgres", "--"]
        self.data = self.root / "data"
        self.port = free_port()
        self._run(self.initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        self.start()

    @staticmethod
    def _bindir() -> Path:
        found = shutil.which("pg_ctl")
        if found:
            return Path(os.path.realpath(found)).parent
        versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
        if not versions:
            raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        return versions[-1].parent

    def _run(self, *args: str) -> None:
        subprocess.run(
            [*self.as_owner, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.root
        )

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(self.pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")

    def stop(self, mode: str = "immediate") -> None:
        """`immediate` is a crash: connections cut, no clean shutdown."""
        self._run(self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        subprocess.run(
            [*self.as_owner, self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.root,
        )
        shutil.rmtree(self.root, ignore_errors=True)


class ApiProcess:
    """`python -m api.serve` (uvicorn) as a real process (so a fault point may end it)."""

    def __init__(self, settings_env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "api.serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=REPO,
            env=env_for(settings_env),
            stdout=log_path.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(lambda: self._answers() or self.proc.poll() is not None, 60, "the api")
        if self.proc.poll() is not None:
            raise RuntimeError(f"the api exited:\n{log_path.read_text()[-3000:]}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(20)


def create_postgres_database(server_url: str) -> str:
    """CREATE a fresh database on the server and return its URL."""
    name = f"stt_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(server_url: str, url: str) -> None:
    name = make_url(url).database
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def env_for(settings_env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STT_")}
    env.update(settings_env)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class CeleryWorker:
    """`celery -A worker.celery_app worker` as a real process, with its log in a file."""

    def __init__(
        self,
        settings_env: dict[str, str],
        log_path: Path,
        pool: str = "prefork",
        app: str = "worker.celery_app",
        queue: str = "transcribe",
        concurrency: int = 1,
        extra: tuple[str, ...] = (),
        mingle: bool = False,
    ) -> None:
        self.env = env_for(settings_env)
        self.mingle = mingle  # Celery's default start-up (gossip and mingle), slower: about a second more
        self.log_path = log_path
        self.pool = pool
        self.app, self.queue, self.concurrency, self.extra = app, queue, concurrency, extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.name = f"test-{uuid.uuid4().hex[:8]}@%h"

    def start(self, wait: bool = True) -> CeleryWorker:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                self.app,
                "worker",
                "--loglevel",
                "INFO",
                "--pool",
                self.pool,
                "--concurrency",
                str(self.concurrency),
                "-Q",
                self.queue,
                "-n",
                self.name,
                *(() if self.mingle else ("--without-gossip", "--without-mingle")),
                *self.extra,
            ],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if wait:
            wait_for(lambda: b"ready." in self.log_path.read_bytes() or self._died(), 90, "celery worker")
            if self._died():
                raise RuntimeError(f"celery worker exited:\n{self.log_path.read_text()[-3000:]}")
        return self

    def _died(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def kill(self) -> None:
        """SIGKILL the whole process group: the main process and its pool children."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def webhooks_worker(settings_env: dict[str, str], workdir: Path) -> CeleryWorker:
    """The webhooks worker as deployed: its own queue, a thread pool, the periodic sweep (-B) built in."""
    return CeleryWorker(
        settings_env,
        workdir / "webhooks-worker.log",
        pool="threads",
        app="worker.webhook_app",
        queue="webhooks",
        concurrency=4,
        extra=("-B", "-s", str(workdir / "beat-schedule")),
    )


class ThreadedServer:
    """The app served as `python -m api.serve` serves it (uvicorn with the header deadline), in a background
    thread on a free port."""

    def __init__(self, app: object, header_timeout_s: float = 10.0) -> None:
        self.port = free_port()
        config = make_config(app, "127.0.0.1", self.port, header_timeout_s, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_for(lambda: self.server.started, 20, "uvicorn")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def idle(self) -> bool:
        """uvicorn's own word that no connection is open and no request is being handled."""
        state = self.server.server_state
        return not state.connections and not state.tasks

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Reply:
    status: int = 200
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


class WebhookReceiver:
    """A real HTTP server that records every POST and answers from a script (then 200)."""

    def __init__(self, script: list[Reply] | None = None, port: int | None = None) -> None:
        self.script = list(script or [])
        self.received: list[Received] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver.lock:
                    receiver.received.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic())
                    )
                    reply = receiver.script.pop(0) if receiver.script else Reply()
                time.sleep(reply.delay_s)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:  # the sender gave up waiting
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port or free_port()), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def count(self) -> int:
        with self.lock:
            return len(self.received)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class AudioServer:
    """Serves audio (and worse) for jobs submitted by URL, on 127.0.0.1, counting requests per path:
    /clip.wav, /redirect-here (to /clip.wav), /redirect-away (to 127.0.0.2, another loopback address),
    /missing (404), /huge (declares 10 GB), /endless (streams without end), /page.html, /slow (one byte
    every half second)."""

    def __init__(self, clip: bytes) -> None:
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                with server.lock:
                    server.hits[path] = server.hits.get(path, 0) + 1
                with contextlib.suppress(OSError):
                    self._answer(path)

            def _answer(self, path: str) -> None:
                if path == "/clip.wav":
                    self._send(200, clip, "audio/wav")
                elif path in ("/redirect-here", "/redirect-away"):
                    host = "127.0.0.1" if path == "/redirect-here" else "127.0.0.2"
                    self.send_response(302)
                    self.send_header("Location", f"http://{host}:{server.port}/clip.wav")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif path == "/huge":
                    self.send_response(200)
                    self.send_header("Content-Length", str(10 * 1024**3))
                    self.end_headers()
                    self.wfile.write(b"\0" * 65536)
                elif path == "/endless":
                    self.send_response(200)
                    self.end_headers()  # no length: HTTP/1.0 style, until the connection closes
                    while True:
                        self.wfile.write(b"\0" * 65536)
                elif path == "/page.html":
                    self._send(200, b"<!doctype html><title>not audio</title><p>hello" * 50, "text/html")
                elif path == "/slow":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(clip)))
                    self.end_headers()
                    for byte in clip:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(0.5)
                else:
                    self._send(404, b"no such file", "text/plain")

            def _send(self, status: int, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class DrippingReceiver:
    """A receiver that reads the request, then answers one byte every `every_s` seconds and never finishes;
    records when each connection opened and closed."""

    def __init__(self, every_s: float = 0.2) -> None:
        self.connections: list[tuple[float, float]] = []
        receiver = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                opened = time.monotonic()
                self.request.settimeout(30)
                with contextlib.suppress(OSError):
                    self.request.recv(65536)
                    for byte in itertools.cycle(b"HTTP/1.1 200 OK\r\nX-Drip: " + b"a" * 60):
                        self.request.sendall(bytes([byte]))
                        readable, _, _ = select.select([self.request], [], [], every_s)
                        if readable and not self.request.recv(1):  # the sender hung up: note when
                            break
                receiver.connections.append((opened, time.monotonic()))

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

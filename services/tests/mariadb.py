"""A throwaway MariaDB for tests and the load benchmark.

``mariadb-install-db`` + ``mariadbd`` in a temp dir, a unix socket plus a free TCP port on
127.0.0.1, ``--user=root`` only when running as root. The server can be stopped and started
again on the same data (``stop_server``/``start_server``) and frozen (``freeze``/``thaw``:
SIGSTOP/SIGCONT: connections are accepted by the kernel and then nothing answers).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pymysql

SEARCH_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/libexec", "/usr/local/mysql/bin", "/usr/local/bin", "/usr/bin")
MISSING = ("MariaDB server binaries not found (need mariadbd/mysqld and mariadb-install-db); "
           "install the 'mariadb-server' package")


def _find(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
        for directory in SEARCH_DIRS:
            candidate = Path(directory) / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return None


def find_binaries() -> tuple[str, str] | None:
    server = _find("mariadbd", "mysqld")
    install = _find("mariadb-install-db", "mysql_install_db")
    return (server, install) if server and install else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MariaDB:
    def __init__(self, server: str, install: str, extra_args: tuple[str, ...] = ()) -> None:
        self.server, self.install = server, install
        # Short path: the unix socket path must stay under ~100 bytes.
        self.base = Path(tempfile.mkdtemp(prefix="svc-mariadb-"))
        self.datadir = self.base / "data"
        self.socket = str(self.base / "mysqld.sock")
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None
        self.extra_args = extra_args
        # mariadbd refuses to run as root unless told to; as another user --user is ignored.
        self.user_flag = ["--user=root"] if os.geteuid() == 0 else []

    def start(self, timeout: float = 30.0) -> None:
        (self.base / "tmp").mkdir()
        with open(self.base / "install.log", "w") as install_log:
            done = subprocess.run(
                [self.install, "--no-defaults", f"--datadir={self.datadir}",
                 "--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve",
                 *self.user_flag],
                stdout=install_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{self.install} failed (rc={done.returncode}):\n"
                               + (self.base / "install.log").read_text(errors="replace")[-4000:])
        self.start_server(timeout)

    def start_server(self, timeout: float = 30.0) -> None:
        self.proc = subprocess.Popen(
            [self.server, "--no-defaults", f"--datadir={self.datadir}", f"--socket={self.socket}",
             f"--port={self.port}", "--bind-address=127.0.0.1", f"--pid-file={self.base / 'mysqld.pid'}",
             f"--log-error={self.base / 'error.log'}", f"--tmpdir={self.base / 'tmp'}", "--skip-name-resolve",
             "--skip-log-bin", "--innodb-buffer-pool-size=64M", "--innodb-flush-log-at-trx-commit=0",
             "--skip-innodb-use-native-aio", "--max-connections=500", *self.extra_args, *self.user_flag],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.root().close()
                return
            except pymysql.err.MySQLError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mariadbd did not start (rc={self.proc.poll()}):\n{self.log()}") from None
                time.sleep(0.1)

    def stop_server(self, timeout: float = 30.0) -> None:
        """A clean shutdown (SIGTERM); the data stays for ``start_server``."""
        if self.proc is not None and self.proc.poll() is None:
            self.thaw()
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def freeze(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)

    def root(self, database: str | None = None) -> pymysql.connections.Connection:
        return pymysql.connect(unix_socket=self.socket, user="root", password="", database=database,
                               autocommit=True, connect_timeout=2, cursorclass=pymysql.cursors.DictCursor)

    def create_database(self, name: str, user: str) -> str:
        """A database and an account that may do anything in it (and nothing else); its password."""
        password = secrets.token_urlsafe(16)
        with self.root() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
            cur.execute(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (password,))
            cur.execute(f"GRANT ALL PRIVILEGES ON `{name}`.* TO '{user}'@'%'")
        return password

    def env(self, database: str, user: str, password: str) -> dict[str, str]:
        """The MYSQL_* environment of a service using ``database`` over TCP."""
        return {"MYSQL_HOST": "127.0.0.1", "MYSQL_PORT": str(self.port), "MYSQL_USER": user,
                "MYSQL_DATABASE": database, "MYSQL_PASSWORD": password}

    def log(self) -> str:
        path = self.base / "error.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        self.stop_server(20)
        shutil.rmtree(self.base, ignore_errors=True)

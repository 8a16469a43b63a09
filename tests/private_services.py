"""PostgreSQL and Redis servers of one test's own, on free ports, for tests that stop or restart them.

The suite's shared PostgreSQL and Redis serve every other test at the same time: a fault test never touches them.
"""

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests import stack

PG_BIN = Path(os.environ.get("HELPDESK_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _as_postgres(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """PostgreSQL's tools refuse to run as root: as the postgres user then, or as whoever we are."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run(prefix + args, check=True, capture_output=True, text=True, **kwargs)


class PrivatePostgres:
    """A throwaway PostgreSQL cluster (trust auth, no fsync) that a test may stop and start again."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="helpdesk-pg-"))
        self.data = self.dir / "data"
        self.port = stack.free_port()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        _as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"])
        self.start()

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/helpdesk"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        _as_postgres(
            [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w", "start"]
        )

    def stop(self) -> None:
        """A fast shutdown: open connections are closed, as when the server goes down for maintenance."""
        _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def psql(self, sql: str, database: str = "helpdesk") -> str:
        return _as_postgres(
            ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database, "-tAc", sql]
        ).stdout.strip()

    def destroy(self) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--"] * (os.geteuid() == 0)
            + [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    """A redis-server of one test's own, configured as docker-compose.yml's (append-only file), restartable."""

    def __init__(self, log_dir: Path):
        self.dir = Path(tempfile.mkdtemp(prefix="helpdesk-redis-"))
        self.port = stack.free_port()
        self.log_dir = log_dir
        self.process: stack.Process | None = None
        self.starts = 0
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.starts += 1
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir)]
        args += ["--appendonly", "yes", "--save", "", "--daemonize", "no"]
        self.process = stack.Process(f"redis-{self.starts}", args, os.environ.copy(), self.log_dir)
        self.process.wait_for_log("Ready to accept connections", timeout=20)

    def cli(self, *args: str) -> str:
        return subprocess.run(
            ["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True, timeout=10
        ).stdout.strip()

    def stop(self) -> None:
        """As `docker compose restart redis` does: SIGTERM, on which Redis writes its append-only file and exits."""
        if self.process is not None:
            self.process.stop()
            self.process = None

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

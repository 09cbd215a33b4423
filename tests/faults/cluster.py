"""A private, throwaway PostgreSQL cluster (never the project's shared one), with the demo."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine

from api.cli import cluster
from api.db import migrate
from api.demo import load_demo
from api.settings import ClusterSettings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PrivateCluster:
    settings: ClusterSettings
    root: Path

    @classmethod
    def create(cls, demo_seed: int) -> PrivateCluster:
        """initdb into a temporary folder, start on a free port, migrate, load the demo."""
        root = Path(tempfile.mkdtemp(prefix="wangge-faults-"))
        root.chmod(0o755)  # the postgres user walks down to its data directory
        settings = ClusterSettings(data_dir=root / "pg", port=free_port())
        cluster.init(settings)
        with (settings.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("shared_buffers = 64MB\nmaintenance_work_mem = 64MB\nmax_connections = 80\n")
        cluster.start(settings)
        private = cls(settings, root)
        owner = private.url(settings.owner_user)
        migrate.upgrade(owner)
        migrate.grant_service_role(owner, settings.app_user)
        engine = create_engine(owner)
        load_demo(engine, demo_seed, actor="tests")
        engine.dispose()
        return private

    def url(self, role: str | None = None) -> str:
        return self.settings.url(role=role or self.settings.owner_user)

    @property
    def service_url(self) -> str:
        return self.url(self.settings.app_user)

    def pg_ctl(self, *args: str) -> None:
        """pg_ctl on this cluster, as the postgres user when we are root (as api/cli/cluster.py)."""
        command = [str(self.settings.pg_bin / "pg_ctl"), *args, "-D", str(self.settings.data_dir)]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def restart(self) -> None:
        """A fast restart: every session is cut off, the server is back within seconds."""
        self.pg_ctl("restart", "-m", "fast", "-w", "-l", str(self.settings.log_file))

    def destroy(self) -> None:
        try:
            self.pg_ctl("stop", "-m", "immediate", "-w")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

"""The wangge service as a real uvicorn process, which a test may kill -9 and start again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from api.settings import PROJECT_ROOT, Settings, WorkflowSettings
from tests.conftest import _roles, as_role
from tests.faults.cluster import free_port


def service_settings(url: str) -> Settings:
    """Settings for an in-process app on database `url` (a copy of the test template), connected
    as the service role of the project's cluster, as deployed (least privilege)."""
    roles = _roles()
    service_url = as_role(url, roles[1]) if roles is not None else url
    # The sweeper stays off: an app under test changes only what its test asks it to.
    return Settings(
        database_url=service_url,
        owner_database_url=url,
        workflow=WorkflowSettings(sweep_seconds=0),
    )


@dataclass
class Service:
    database_url: str
    log_file: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60) -> Service:
        env = {**os.environ, "WANGGE_DATABASE_URL": self.database_url, "WANGGE_MODE": "dev"}
        command = [sys.executable, "-m", "uvicorn", "api.main:app"]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the service exited: {self.log_file.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.base_url}/api/v1/ready", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"the service did not get ready: {self.log_file.read_text()[-2000:]}")

    def kill(self) -> None:
        """kill -9: no shutdown handler runs, no transaction is finished by the process."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

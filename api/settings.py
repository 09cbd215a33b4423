"""Configuration from the environment (prefix WANGGE_), split by concern."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ClusterSettings(BaseModel):
    """The project-owned PostgreSQL cluster used when no database URL is given."""

    data_dir: Path = PROJECT_ROOT / ".data" / "pg"
    port: int = 54329
    database: str = "wangge"
    user: str = "wangge"
    pg_bin: Path = Path("/usr/lib/postgresql/15/bin")

    @property
    def password_file(self) -> Path:
        return self.data_dir.parent / "pg-password"

    @property
    def socket_dir(self) -> Path:
        return self.data_dir.parent / "run"

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / "postgres.log"

    def url(self, database: str | None = None) -> str:
        password = self.password_file.read_text().strip() if self.password_file.exists() else ""
        auth = f"{self.user}:{password}" if password else self.user
        return f"postgresql+psycopg2://{auth}@127.0.0.1:{self.port}/{database or self.database}"


class AuthSettings(BaseModel):
    # Reads of non-personal data (grids, buildings, cameras) are open unless this is set,
    # so field phones and dashboards work without a token; writes and personal data never are.
    require_token_for_reads: bool = False


class LimitSettings(BaseModel):
    max_upload_bytes: int = 200 * 1024 * 1024
    max_request_bytes: int = 20 * 1024 * 1024
    max_page_size: int = 5000
    default_page_size: int = 1000
    # Exports, file lookups and historical indexes running at once (more wait, then 503).
    heavy_requests: int = 2


class MapSettings(BaseModel):
    basemap: str = "none"
    tianditu_token: str | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="WANGGE_", env_nested_delimiter="__", env_file=None, extra="ignore"
    )

    mode: str = Field(default="dev", pattern="^(dev|prod)$")
    database_url: str | None = None
    cluster: ClusterSettings = ClusterSettings()
    auth: AuthSettings = AuthSettings()
    limits: LimitSettings = LimitSettings()
    maps: MapSettings = MapSettings()
    demo_seed: int = 20240920

    @model_validator(mode="after")
    def _refuse_insecure_production(self) -> Settings:
        if self.mode == "prod" and not self.database_url:
            raise ValueError("WANGGE_DATABASE_URL must be set when WANGGE_MODE=prod")
        return self

    def resolved_database_url(self) -> str:
        """WANGGE_DATABASE_URL if set, else the project's own cluster."""
        if self.database_url:
            url = self.database_url
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                url = "postgresql+psycopg2://" + url.split("://", 1)[1]
            return url
        return self.cluster.url()


@lru_cache
def get_settings() -> Settings:
    return Settings()

"""Configuration from the environment (prefix WANGGE_), split by concern."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ClusterSettings(BaseModel):
    """The project-owned PostgreSQL cluster used when no database URL is given (managed by
    `wangge db start|stop|status`, api/cli/cluster.py)."""

    data_dir: Path = PROJECT_ROOT / ".data" / "pg"
    port: int = 54329
    database: str = "wangge"
    user: str = "wangge"  # the cluster's superuser: creates roles and databases, nothing else
    owner_user: str = "wangge_owner"  # owns the schema: migrations and the demo loader
    app_user: str = "wangge_app"  # the service: reads and writes rows, cannot change the schema
    pg_bin: Path = Path("/usr/lib/postgresql/15/bin")

    @property
    def password_file(self) -> Path:
        return self.password_file_of(self.user)

    def password_file_of(self, role: str) -> Path:
        name = "pg-password" if role == self.user else f"pg-password-{role}"
        return self.data_dir.parent / name

    @property
    def socket_dir(self) -> Path:
        return self.data_dir.parent / "run"

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / "postgres.log"

    def url(self, database: str | None = None, role: str | None = None) -> str:
        """A URL for `role` (default: the superuser) to `database` (default: wangge)."""
        role = role or self.user
        secret = self.password_file_of(role)
        password = secret.read_text().strip() if secret.exists() else ""
        auth = f"{role}:{password}" if password else role
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
    # What an uploaded archive (zipped Shapefile, KMZ) or Parquet file may unpack to: in total,
    # and per compressed byte (a zip bomb packs a gigabyte of zeros into a megabyte).
    max_unpacked_bytes: int = 1024 * 1024 * 1024
    max_compression_ratio: int = 100


class MapSettings(BaseModel):
    basemap: str = "none"
    tianditu_token: str | None = None
    # A map layer larger than either of these is drawn from vector tiles (/tiles/…) instead of
    # being written into the page as GeoJSON (a district's micro-grids would be megabytes).
    inline_max_features: int = Field(default=5000, ge=0)
    inline_max_bytes: int = Field(default=600_000, ge=0)


class TileSettings(BaseModel):
    """Vector tiles (/tiles/…, /ogc/collections/{id}/tiles/…)."""

    # Rendered tiles kept in memory, per process, keyed by the collection's revision.
    cache_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    # How long a browser may reuse a tile of a public collection before asking again (an
    # If-None-Match then costs one cheap query and a 304).
    max_age_seconds: int = Field(default=60, ge=0)


class WebhookTarget(BaseModel):
    """A receiver of the loop's notifications (the 12345 platform, a messaging bridge…)."""

    name: str = Field(pattern=r"^[a-z0-9_-]{1,64}$")
    url: str = Field(pattern=r"^https?://")
    secret: str = Field(min_length=16, description="HMAC-SHA256 key for X-Wangge-Signature")


class WorkflowSettings(BaseModel):
    # Working periods of a working day, local time (Asia/Shanghai); see api/workflow/calendar.py.
    work_periods: str = "08:30-12:00,13:30-17:30"
    # Yellow warning (黄色预警) once this share of an event's working time is used; red when overdue.
    yellow_share: float = Field(default=0.8, gt=0, lt=1)
    # A new event of the same category this close in space and time to an open one is proposed
    # as its duplicate (同一问题多人上报).
    duplicate_distance_m: float = Field(default=50.0, ge=0)
    duplicate_window_hours: float = Field(default=72.0, ge=0)
    # Seconds between sweeps that push warnings and deliver the outbox (0: never, e.g. in tests).
    sweep_seconds: float = Field(default=30.0, ge=0)
    webhooks: list[WebhookTarget] = Field(default_factory=list)


class AttachmentSettings(BaseModel):
    max_bytes: int = 15 * 1024 * 1024  # a phone photo is 2–8 MB
    max_pixels: int = 50_000_000  # decompression bombs
    # Photos are stored content-addressed under this directory unless an S3 bucket is set.
    directory: Path = PROJECT_ROOT / ".data" / "attachments"
    s3_endpoint: str | None = None
    s3_bucket: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_region: str = "us-east-1"


class Open311Settings(BaseModel):
    # A request naming another jurisdiction_id is refused (404); one naming none is served.
    jurisdiction_id: str = Field(default="wangge", min_length=1, max_length=100)
    contact: str = "网格化管理指挥中心 / the grid command centre (指挥中心) of this district"
    key_service: str = (
        "api_key: a wangge API token of the dispatcher role, issued by the administrator "
        "(wangge token create --role dispatcher) / 由管理员签发的调度员令牌"
    )


class PatrolSettings(BaseModel):
    """Patrols (巡查): cleaning the phone's fixes, coverage (巡查覆盖率) and how long tracks are kept."""

    # A building counts as passed when a track comes this close to its footprint.
    buffer_m: float = Field(default=30.0, gt=0, le=500)
    # A street (a micro-grid edge) counts as walked where a track runs this close to it.
    street_buffer_m: float = Field(default=20.0, gt=0, le=200)
    # A fix implying more than this speed from the last kept fix is a GPS jump (dropped).
    max_speed_mps: float = Field(default=15.0, gt=0)
    # Fixes the phone itself reports as this inaccurate are dropped.
    max_accuracy_m: float = Field(default=100.0, gt=0)
    # Douglas-Peucker tolerance of the stored track, in metres.
    simplify_m: float = Field(default=5.0, ge=0, le=100)
    # Tracks are personal data: patrols older than this are deleted (wangge patrols purge).
    retention_days: int = Field(default=180, ge=1, le=3650)
    # An uploaded GPX or GeoJSON track file.
    max_upload_bytes: int = Field(default=10 * 1024 * 1024, gt=0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="WANGGE_", env_nested_delimiter="__", env_file=None, extra="ignore"
    )

    mode: str = Field(default="dev", pattern="^(dev|prod)$")
    # The service's connection: a role that may read and write rows, not change the schema.
    database_url: str | None = None
    # Migrations and the demo loader connect as the schema's owner (default: database_url).
    owner_database_url: str | None = None
    # A streaming replica (hot standby) of the same database, as the service role: KPIs, exports,
    # tiles and OGC items read from it; writes and read-your-write stay on the primary.
    replica_url: str | None = None
    # `wangge migrate` grants the service's rights to this role (the local cluster: wangge_app).
    service_role: str | None = None
    # Host headers served (TrustedHostMiddleware): a page on another site that rebinds its DNS
    # name to 127.0.0.1 still sends its own name, and is refused. "testserver" is Starlette's
    # TestClient; it is not a resolvable name.
    allowed_hosts: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "localhost", "::1", "testserver"]
    )
    cluster: ClusterSettings = ClusterSettings()
    auth: AuthSettings = AuthSettings()
    limits: LimitSettings = LimitSettings()
    maps: MapSettings = MapSettings()
    tiles: TileSettings = TileSettings()
    workflow: WorkflowSettings = WorkflowSettings()
    attachments: AttachmentSettings = AttachmentSettings()
    open311: Open311Settings = Open311Settings()
    patrols: PatrolSettings = PatrolSettings()
    demo_seed: int = 20240920
    # Where phones reach this service (WANGGE_PUBLIC_URL): sign-in links and their QR codes
    # point here, so it must be the address a field worker's phone can open.
    public_url: str = Field(
        default="http://127.0.0.1:8000", pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$"
    )

    @model_validator(mode="after")
    def _refuse_insecure_production(self) -> Settings:
        if self.mode == "prod" and not self.database_url:
            raise ValueError("WANGGE_DATABASE_URL must be set when WANGGE_MODE=prod")
        return self

    def resolved_database_url(self) -> str:
        """WANGGE_DATABASE_URL if set, else the project's own cluster as the service role."""
        if self.database_url:
            return _psycopg2(self.database_url)
        return self.cluster.url(role=self.cluster.app_user)

    def resolved_owner_url(self) -> str:
        """The schema owner's URL: for migrations and the demo loader."""
        if self.owner_database_url:
            return _psycopg2(self.owner_database_url)
        if self.database_url:
            return _psycopg2(self.database_url)
        return self.cluster.url(role=self.cluster.owner_user)

    def resolved_service_role(self) -> str | None:
        if self.service_role or self.database_url:
            return self.service_role
        return self.cluster.app_user


def _psycopg2(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg2://" + url.split("://", 1)[1]
    return url


@lru_cache
def get_settings() -> Settings:
    return Settings()

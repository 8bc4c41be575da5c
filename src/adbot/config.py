"""Settings: one ``Settings`` class, prefix ``ADBOT_``, nested groups joined by ``__``.

Sources, highest priority first: explicit arguments, environment, ``.env``,
``configs/default.yaml`` (or the file named by ``ADBOT_CONFIG_FILE``), code defaults.
Ports are defined once in ``.env.example``/``configs/default.yaml`` (group ``ports``);
every other port setting defaults to the one in that group.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from adbot.errors import ConfigError

ENV_PREFIX = "ADBOT_"
ENV_NESTED_DELIMITER = "__"
DEFAULT_CONFIG_FILE = Path("configs/default.yaml")


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PortSettings(_Group):
    """The one AdBot port range, 7500-7507."""

    postgres: int = Field(7500, ge=1, le=65535)
    redis: int = Field(7501, ge=1, le=65535)
    api: int = Field(7502, ge=1, le=65535)
    mlflow: int = Field(7503, ge=1, le=65535)
    prometheus: int = Field(7504, ge=1, le=65535)
    grafana: int = Field(7505, ge=1, le=65535)
    flower: int = Field(7506, ge=1, le=65535)
    reserved: int = Field(7507, ge=1, le=65535)


class DatabaseSettings(_Group):
    url: str = "sqlite:///./data/adbot.db"
    echo: bool = False
    pool_size: int = Field(10, ge=1, le=200)

    @field_validator("url")
    @classmethod
    def _is_database_url(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError("not a database URL") from exc
        backend = url.get_backend_name()
        if backend not in {"sqlite", "postgresql"}:
            raise ValueError(f"unsupported database '{backend}' (use sqlite or postgresql)")
        if backend == "postgresql" and url.get_driver_name() != "psycopg":
            raise ValueError(
                f"driver '{url.get_driver_name()}' is not supported; "
                "use postgresql+psycopg:// (psycopg 3)"
            )
        return value


class RedisSettings(_Group):
    url: str | None = None  # None: no Redis; caches and limits stay in the process

    @field_validator("url")
    @classmethod
    def _is_redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("not a Redis URL (redis://host:port/db)")
        return value


class ApiSettings(_Group):
    host: str = "127.0.0.1"
    port: int | None = Field(None, ge=1, le=65535)  # None: ports.api
    cors_origins: list[str] = []
    rate_limit_per_minute: int = Field(600, ge=1)


class MlflowSettings(_Group):
    tracking_uri: str = "sqlite:///./data/mlflow.db"
    experiment: str = "adbot"


class AuthSettings(_Group):
    secret_key: SecretStr = SecretStr("change-me-in-production-this-is-not-a-secret")
    token_minutes: int = Field(30, ge=1, le=24 * 60)
    refresh_days: int = Field(14, ge=1, le=365)
    algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    # argon2id cost (argon2-cffi defaults, RFC 9106 low-memory); tests lower them for speed.
    password_time_cost: int = Field(3, ge=1, le=20)
    password_memory_kib: int = Field(65536, ge=64, le=4 * 1024 * 1024)
    password_parallelism: int = Field(4, ge=1, le=8)
    # How long a process keeps an authenticated user or API key without reading it again
    # (0: read every request). A change committed in the process is seen at once, in other
    # processes within a second through Redis; this is the bound when Redis is away
    # (services/principals.py).
    principal_cache_seconds: float = Field(30.0, ge=0, le=300)


class LimitSettings(_Group):
    """Bounds every bid and budget must respect (micros: millionths of the currency unit)."""

    min_bid_micros: int = Field(10_000, ge=0)
    max_bid_micros: int = Field(100_000_000, ge=1)
    min_daily_budget_micros: int = Field(1_000_000, ge=0)
    max_daily_budget_micros: int = Field(1_000_000_000_000, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> LimitSettings:
        if self.min_bid_micros > self.max_bid_micros:
            raise ValueError("min_bid_micros is above max_bid_micros")
        if self.min_daily_budget_micros > self.max_daily_budget_micros:
            raise ValueError("min_daily_budget_micros is above max_daily_budget_micros")
        return self


class AutopilotSettings(_Group):
    enabled: bool = False
    interval_minutes: int = Field(60, ge=1)
    max_bid_change: float = Field(0.3, gt=0, le=10)
    dry_run: bool = True


class JobSettings(_Group):
    broker_url: str | None = None  # None: tasks run inline in the calling process


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("./data")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    ports: PortSettings = PortSettings()
    db: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    api: ApiSettings = ApiSettings()
    mlflow: MlflowSettings = MlflowSettings()
    auth: AuthSettings = AuthSettings()
    limits: LimitSettings = LimitSettings()
    autopilot: AutopilotSettings = AutopilotSettings()
    jobs: JobSettings = JobSettings()

    @property
    def api_port(self) -> int:
        return self.api.port if self.api.port is not None else self.ports.api

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            YamlConfigSettingsSource(settings_cls, yaml_file=config_file()),
        )


def config_file() -> Path:
    return Path(os.environ.get(f"{ENV_PREFIX}CONFIG_FILE", DEFAULT_CONFIG_FILE))


def _env_name(loc: tuple[Any, ...]) -> str:
    return ENV_PREFIX + ENV_NESTED_DELIMITER.join(str(part).upper() for part in loc)


def describe_validation_error(exc: ValidationError) -> str:
    """One readable line per problem, named as the environment variable."""
    lines = []
    for err in exc.errors():
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"{_env_name(tuple(err['loc']))}: {message}")
    return "; ".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Build settings; a bad value raises ``ConfigError`` naming the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


def mask_url(url: str) -> str:
    """A URL safe to print: the password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def settings_origins(settings: Settings) -> dict[str, str]:
    """For each dotted setting name, the source its effective value came from."""
    sources: list[tuple[str, PydanticBaseSettingsSource]] = [
        ("environment", _env_source(Settings)),
        (".env", _dotenv_source(Settings)),
        (str(config_file()), YamlConfigSettingsSource(Settings, yaml_file=config_file())),
    ]
    provided = [(name, _flatten(source())) for name, source in sources]
    origins: dict[str, str] = {}
    for key in _flatten(settings.model_dump()):
        origins[key] = next((name for name, keys in provided if key in keys), "default")
    return origins


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}".lower()
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _env_source(cls: type[BaseSettings]) -> PydanticBaseSettingsSource:
    from pydantic_settings import EnvSettingsSource

    return EnvSettingsSource(cls, env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_NESTED_DELIMITER)


def _dotenv_source(cls: type[BaseSettings]) -> PydanticBaseSettingsSource:
    from pydantic_settings import DotEnvSettingsSource

    return DotEnvSettingsSource(
        cls, env_file=".env", env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_NESTED_DELIMITER
    )

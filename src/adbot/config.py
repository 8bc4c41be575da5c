"""Settings: one ``Settings`` class, prefix ``ADBOT_``, nested groups joined by ``__``.

Sources, highest priority first: explicit arguments, environment, ``.env``,
``configs/default.yaml`` (or the file named by ``ADBOT_CONFIG_FILE``), code defaults.
The settings file is read as scenario files and training configs are (``adbot.yamlfile``:
YAML 1.2, a key given twice refused); every key in it must be a setting. The default file,
relative to the working directory, may be absent; a file named by ``ADBOT_CONFIG_FILE``
must exist. A bad value is named where it was set: the variable, or the file and key.
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
from adbot.yamlfile import read_yaml

ENV_PREFIX = "ADBOT_"
ENV_NESTED_DELIMITER = "__"
CONFIG_FILE_VARIABLE = f"{ENV_PREFIX}CONFIG_FILE"
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

    @field_validator("data_dir", mode="before")
    @classmethod
    def _data_dir(cls, value: Any) -> Any:
        # An empty ADBOT_DATA_DIR (docker compose's ${X} with X unset) was the working
        # folder; "~/adbot" was a folder named "~" in it.
        if isinstance(value, str | Path):
            if not str(value).strip():
                raise ValueError("is empty: name a folder or leave it unset (default ./data)")
            return Path(value).expanduser()
        return value

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
            SettingsFileSource(settings_cls),
        )


def config_file() -> Path:
    """The settings file: ``ADBOT_CONFIG_FILE``, else ``configs/default.yaml`` (both
    relative to the working directory)."""
    return Path(os.environ.get(CONFIG_FILE_VARIABLE, DEFAULT_CONFIG_FILE)).expanduser()


def describe_config_file() -> str:
    """The settings file as ``adbot config show`` names it: its path if it was read."""
    path = config_file()
    return str(path) if path.is_file() else f"none ({path} not found)"


class SettingsFileSource(YamlConfigSettingsSource):
    """The settings file, read with :func:`adbot.yamlfile.read_yaml`. A file named by
    ``ADBOT_CONFIG_FILE`` must exist; the default one may be absent (its values are the code
    defaults). Anything wrong with the file is a ``ConfigError`` naming it."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        self.path = config_file()
        self.model = settings_cls  # the base class sets settings_cls only after reading
        explicit = CONFIG_FILE_VARIABLE in os.environ
        # Where the path came from, for problems with the file as a whole.
        self.label = f"{CONFIG_FILE_VARIABLE} {self.path}" if explicit else str(self.path)
        if explicit and not os.environ[CONFIG_FILE_VARIABLE].strip():
            raise ConfigError(f"{CONFIG_FILE_VARIABLE} is empty: name a YAML file or unset it")
        if (explicit or self.path.exists()) and not self.path.is_file():
            problem = "is a directory" if self.path.is_dir() else "does not exist"
            raise ConfigError(f"{self.label}: {problem}; it should be a YAML settings file")
        super().__init__(settings_cls, yaml_file=self.path)

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        try:
            data = read_yaml(Path(file_path))
        except ValueError as exc:
            raise ConfigError(f"{self.label}: {exc}") from None
        if data is None:  # an empty file
            return {}
        if not isinstance(data, dict):
            raise ConfigError(
                f"{self.label}: must be a mapping of settings (name: value), "
                f"not a {type(data).__name__}"
            )
        unknown = _unknown_key(data, self.model, top_level=True)
        if unknown is not None:
            key, known = unknown
            raise ConfigError(f"{self.path}: {key}: not a setting (known: {', '.join(known)})")
        return data


def _unknown_key(
    data: dict[Any, Any], model: type[BaseModel], *, top_level: bool = False, prefix: str = ""
) -> tuple[str, list[str]] | None:
    """The first key of ``data`` that is not a field of ``model`` (or of a group in it),
    dotted, with the names that would be; ``None`` if every key is known. Top-level names
    match in any case, as pydantic-settings reads them; a group's are exact."""
    fields = model.model_fields
    for key, value in data.items():
        name = key.lower() if top_level and isinstance(key, str) else key
        field = fields.get(name) if isinstance(name, str) else None
        if field is None:
            return f"{prefix}{key}", list(fields)
        group = field.annotation
        if isinstance(group, type) and issubclass(group, BaseModel) and isinstance(value, dict):
            unknown = _unknown_key(value, group, prefix=f"{prefix}{name}.")
            if unknown is not None:
                return unknown
    return None


def _env_name(loc: tuple[Any, ...]) -> str:
    return ENV_PREFIX + ENV_NESTED_DELIMITER.join(str(part).upper() for part in loc)


def describe_validation_error(
    exc: ValidationError, provided: list[tuple[str, dict[str, Any]]] | None = None
) -> str:
    """One readable line per problem, named where the value was set: the environment
    variable (``ADBOT_DB__URL``), ``.env: ADBOT_DB__URL``, or the settings file and the
    dotted key (``configs/default.yaml: db.url``). ``provided``: what each source set, as
    :func:`_provided_settings` returns it (default: nothing known, name the variable)."""
    lines = []
    for err in exc.errors():
        message = err["msg"].removeprefix("Value error, ")
        loc = tuple(err["loc"])
        lines.append(f"{_where(loc, provided or [])}: {message}")
    return "; ".join(lines)


def _where(loc: tuple[Any, ...], provided: list[tuple[str, dict[str, Any]]]) -> str:
    dotted = ".".join(str(part) for part in loc).lower()
    source = next(
        (
            name
            for name, keys in provided
            if any(key == dotted or key.startswith(f"{dotted}.") for key in keys)
        ),
        None,
    )
    if source == _FILE:
        return f"{config_file()}: {dotted}"
    if source == _DOTENV:
        return f".env: {_env_name(loc)}"
    return _env_name(loc)


def load_settings(**overrides: Any) -> Settings:
    """Build settings; a bad value raises ``ConfigError`` naming where it was set."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        provided = _provided_settings(overrides)
        raise ConfigError(describe_validation_error(exc, provided)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


def mask_url(url: str) -> str:
    """A URL safe to print: the password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


_ARGUMENTS, _ENVIRONMENT, _DOTENV, _FILE = "arguments", "environment", ".env", "file"


def _provided_settings(overrides: dict[str, Any] | None = None) -> list[tuple[str, dict[str, Any]]]:
    """What each source sets, highest priority first, as (source, flattened settings)."""
    sources: list[tuple[str, PydanticBaseSettingsSource]] = [
        (_ENVIRONMENT, _env_source(Settings)),
        (_DOTENV, _dotenv_source(Settings)),
        (_FILE, SettingsFileSource(Settings)),
    ]
    return [(_ARGUMENTS, _flatten(overrides or {}))] + [
        (name, _flatten(source())) for name, source in sources
    ]


def settings_origins(settings: Settings) -> dict[str, str]:
    """For each dotted setting name, the source its effective value came from."""
    names = {_FILE: str(config_file())}
    provided = _provided_settings()
    origins: dict[str, str] = {}
    for key in _flatten(settings.model_dump()):
        source = next((name for name, keys in provided if key in keys), "default")
        origins[key] = names.get(source, source)
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

"""Settings, read only here, from ``KINFOLIO_*`` environment variables (or a ``.env`` file)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KINFOLIO_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("data")
    # Default: an SQLite file under data_dir. Any SQLAlchemy async URL works unchanged,
    # e.g. postgresql+asyncpg://user:pass@host:5432/kinfolio
    database_url: str | None = None
    database_pool_size: int = Field(default=10, ge=1, le=200)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # The issuer identifier (RFC 8414 §2): the public base URL. Defaults to http://HOST:PORT.
    # The audience of access tokens (RFC 9068 §3) defaults to ISSUER/graphql.
    issuer: str = ""
    api_audience: str | None = None

    # RFC 9068 tokens are bearer credentials: keep them short (brief: at most 15 minutes).
    access_token_ttl_seconds: int = Field(default=600, ge=30, le=900)
    # PEM private key (EC P-256) used to sign access tokens. Generated on first start in
    # development; production must supply it so every replica signs with the same key.
    signing_key_file: Path | None = None
    signing_key_pem: str | None = None

    # Key of the pairwise learner ids (consent/pseudonyms.py), hex, at least 32 bytes. Generated
    # under data_dir in development; production must supply it and never change it.
    pseudonym_key_hex: str | None = Field(default=None, min_length=64)

    max_batch_size: int = Field(default=1000, ge=1, le=10_000)
    max_page_size: int = Field(default=100, ge=1, le=1000)
    graphql_max_depth: int = Field(default=8, ge=2, le=50)
    graphql_max_aliases: int = Field(default=15, ge=1, le=200)
    graphql_max_tokens: int = Field(default=100_000, ge=100)

    # BENCHMARK ONLY (issue 9, "consent overhead"): when true, ProviderAccess skips the grants
    # query, consent.decide and the disclosure-log row, so `make bench` can measure what they
    # cost. Refused below when environment is production; never set it anywhere else.
    benchmark_bypass_consent: bool = False

    @field_validator("pseudonym_key_hex")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is not None:
            bytes.fromhex(value)  # ValueError names the problem
        return value

    @model_validator(mode="after")
    def _default_issuer(self) -> Settings:
        if not self.issuer:
            self.issuer = f"http://{self.host}:{self.port}"
        # OAuth needs TLS (RFC 6749 §3.1, RFC 9700 §2); plain http only on loopback for development.
        parts = urlsplit(self.issuer)
        loopback = parts.hostname == "localhost" or (parts.hostname or "").startswith("127.") or parts.hostname == "::1"
        if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
            raise ValueError(
                f"KINFOLIO_ISSUER {self.issuer!r} must be https:// (http:// only on loopback); "
                "set it to the public URL when KINFOLIO_HOST is not a loopback address"
            )
        return self

    @model_validator(mode="after")
    def _production_needs_explicit_secrets(self) -> Settings:
        if self.environment == "production":
            if self.benchmark_bypass_consent:
                raise ValueError("KINFOLIO_BENCHMARK_BYPASS_CONSENT is a benchmark-only switch and is refused in production")
            if not (self.signing_key_pem or self.signing_key_file):
                raise ValueError("production requires KINFOLIO_SIGNING_KEY_PEM or KINFOLIO_SIGNING_KEY_FILE")
            if not self.database_url:
                raise ValueError("production requires KINFOLIO_DATABASE_URL")
            if not self.pseudonym_key_hex:
                raise ValueError("production requires KINFOLIO_PSEUDONYM_KEY_HEX")
            if not self.issuer.startswith("https://"):
                raise ValueError("production requires an https:// KINFOLIO_ISSUER (RFC 8414 §2)")
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'kinfolio.db').resolve()}"

    @property
    def audience(self) -> str:
        return self.api_audience or f"{self.issuer.rstrip('/')}/graphql"

    @property
    def resolved_signing_key_file(self) -> Path:
        return self.signing_key_file or self.data_dir / "jwt-signing-key.pem"


def pseudonym_key(settings: Settings) -> bytes:
    if settings.pseudonym_key_hex:
        return bytes.fromhex(settings.pseudonym_key_hex)
    import secrets

    from hub.keyfiles import read_or_create

    return bytes.fromhex(
        read_or_create(settings.data_dir / "pseudonym-key.hex", lambda: secrets.token_hex(32).encode()).decode()
    )


@cache
def get_settings() -> Settings:
    return Settings()

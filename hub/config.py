"""Settings, read only here, from ``KINFOLIO_*`` environment variables (or a ``.env`` file)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from consent.control import ControlPolicy
from hub.records.crypto import KeyRing


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KINFOLIO_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("data")
    # Default: an SQLite file under data_dir. Any SQLAlchemy async URL works unchanged,
    # e.g. postgresql+asyncpg://user:pass@host:5432/kinfolio
    database_url: str | None = None
    database_pool_size: int = Field(default=10, ge=1, le=200)
    # PostgreSQL's plan_cache_mode for the hub's connections (hub/db.py::make_engine).
    database_plan_cache_mode: Literal["auto", "force_custom_plan", "force_generic_plan"] = "auto"

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

    # Key-encryption key (KEK) of the sensitive sections' envelope encryption (hub/records/crypto.py):
    # 32 bytes as hex. Generated under data_dir in development; production must supply it.
    # Previous KEKs (comma-separated hex) are accepted only to unwrap data keys not yet re-wrapped
    # by `kinfolio keys rotate-kek`; drop one once `kinfolio keys status` shows it wraps nothing.
    kek_hex: str | None = None
    previous_keks_hex: str = ""

    # Consent policy (consent/control.py): the jurisdiction's ages and the multi-guardian rule.
    consent_policy_name: str = "us-default (COPPA under 13, FERPA eligible student at 18)"
    consent_learner_view_age: int = Field(default=13, ge=1, le=25)
    consent_adult_age: int = Field(default=18, ge=1, le=25)
    consent_all_guardians_for_sensitive: bool = False
    # After a family denies a request, the provider may not ask again for this long.
    access_request_cooldown_days: int = Field(default=7, ge=0, le=365)
    # Verifiable credentials (hub/credentials/). The Ed25519 issuer key (PKCS#8 PEM) is generated
    # under data_dir in development; production must supply it. JSON-LD contexts are read only
    # from this directory (contexts-index.json maps URL -> file), each pinned by SHA-256.
    credential_key_file: Path | None = None
    credential_key_pem: str | None = None
    # The RSA key (PKCS#8 PEM, 2048 bits or more) that signs VC-JWT with RS256, the algorithm
    # OB 3.0 §8.2.4.1 requires as a minimum; generated under data_dir in development.
    # CREDENTIAL_JWT_ALG=Ed25519 signs VC-JWT with the Ed25519 key instead.
    credential_rsa_key_file: Path | None = None
    credential_rsa_key_pem: str | None = None
    credential_jwt_alg: Literal["RS256", "Ed25519"] = "RS256"
    # Replaced credential keys (a JWKS of public keys): still published and verifiable.
    # Default: data_dir/credential-previous-keys.json when it exists.
    credential_previous_keys_file: Path | None = None
    # Foreign issuers whose keys the operator trusts (JSON or YAML; see hub/credentials/trust.py).
    trusted_issuers_file: Path | None = None
    # Hosted OB 2.0 assertions are fetched only from the https origins listed under a trusted
    # issuer's hosted_origins (hub/credentials/hosted.py). TESTS ONLY: when true, http:// origins
    # on loopback may be listed too. Refused in production.
    hosted_allow_http_loopback: bool = False
    credential_issuer_name: str = "Kinfolio"
    jsonld_contexts_dir: Path | None = None
    # CASE competency frameworks (hub/frameworks/): the directory holding the 1EdTech CASE 1.1
    # JSON Schemas (case_v1p1_cfpackage-jsonschema1.json, pinned by SHA-256). Unset: no imports.
    case_schemas_dir: Path | None = None

    # Retracted or family-deleted entries are purged for real after this many days.
    retention_days: int = Field(default=30, ge=0, le=3650)
    # -- authorization server and family accounts (issue 3) -------------------------------
    # RFC 6749 §4.1.2: codes "MUST expire shortly"; 10 minutes at most is recommended.
    authorization_code_ttl_seconds: int = Field(default=60, ge=10, le=600)
    refresh_token_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=300, le=180 * 24 * 3600)
    # Key of the signed session cookie, hex, at least 32 bytes. Generated under data_dir in
    # development; production must supply it (every replica must accept the same cookies).
    session_secret_hex: str | None = Field(default=None, min_length=64)
    session_max_age_seconds: int = Field(default=8 * 3600, ge=300, le=30 * 24 * 3600)
    login_max_failures: int = Field(default=5, ge=1, le=100)
    login_lockout_seconds: int = Field(default=900, ge=10, le=24 * 3600)
    password_reset_ttl_seconds: int = Field(default=3600, ge=300, le=24 * 3600)
    # RFC 7591 registrations accepted per source address per hour.
    registrations_per_hour: int = Field(default=10, ge=1, le=10_000)

    max_batch_size: int = Field(default=1000, ge=1, le=10_000)
    max_page_size: int = Field(default=100, ge=1, le=1000)
    graphql_max_depth: int = Field(default=8, ge=2, le=50)
    graphql_max_aliases: int = Field(default=15, ge=1, le=200)
    graphql_max_tokens: int = Field(default=100_000, ge=100)
    # Upper bound on objects one operation may return, from its page sizes (hub/graphql/limits.py).
    graphql_max_cost: int = Field(default=50_000, ge=100)
    # Per-client API rate limit (requests per minute, and the burst allowed at once), per replica.
    rate_limit_per_minute: int = Field(default=6000, ge=1)
    rate_limit_burst: int = Field(default=200, ge=1)

    # BENCHMARK ONLY (issue 9, "consent overhead"): when true, ProviderAccess skips the grants
    # query, consent.decide and the disclosure-log row, so `make bench` can measure what they
    # cost. Refused below when environment is production; never set it anywhere else.
    benchmark_bypass_consent: bool = False
    # `Server-Timing: app;dur=<ms>` on every response (hub/server_timing.py): for measuring; off
    # by default because timings can tell a caller more than the answer does.
    server_timing: bool = False

    # Connectors (connectors/README.md): run due `kinfolio sync schedule`s inside the hub process.
    embedded_worker: bool = False
    worker_poll_seconds: float = Field(default=30.0, ge=0.1, le=3600)
    # Scale-out runner (connectors/queue.py, PostgreSQL only): Procrastinate's connection as a libpq
    # URL (postgresql://user:pass@host:5432/db?sslmode=require); by default derived from
    # KINFOLIO_DATABASE_URL (the queue's tables live in the same database). Set it when that URL
    # carries driver-specific query options libpq does not know (asyncpg's ssl=...).
    queue_database_url: str | None = None
    # The queue the sync jobs go to, and how often the workers look for due `sync schedule`s
    # (a Procrastinate cron: five fields, or six with seconds last).
    queue_name: str = Field(default="kinfolio-sync", pattern=r"^[A-Za-z0-9_.:-]{1,100}$")
    queue_schedule_cron: str = "* * * * * */10"
    # A queue worker silent (no heartbeat) this long is taken for dead: its running jobs, which
    # hold their instance's lock, are handed to a live worker (connectors/queue.py).
    queue_stalled_seconds: float = Field(default=60.0, ge=2, le=3600)

    @field_validator("queue_schedule_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from croniter import croniter

        if not croniter.is_valid(value):
            raise ValueError(f"KINFOLIO_QUEUE_SCHEDULE_CRON {value!r} is not a cron expression")
        return value

    @field_validator("pseudonym_key_hex", "session_secret_hex")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is not None:
            bytes.fromhex(value)  # ValueError names the problem
        return value

    @field_validator("kek_hex")
    @classmethod
    def _kek(cls, value: str | None) -> str | None:
        if value is not None:
            _aes256_key(value, "KINFOLIO_KEK_HEX")
        return value

    @field_validator("previous_keks_hex")
    @classmethod
    def _previous_keks(cls, value: str) -> str:
        for item in _split(value):
            _aes256_key(item, "KINFOLIO_PREVIOUS_KEKS_HEX")
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
            if self.hosted_allow_http_loopback:
                raise ValueError("KINFOLIO_HOSTED_ALLOW_HTTP_LOOPBACK is a test-only switch and is refused in production")
            if not (self.signing_key_pem or self.signing_key_file):
                raise ValueError("production requires KINFOLIO_SIGNING_KEY_PEM or KINFOLIO_SIGNING_KEY_FILE")
            if not (self.credential_key_pem or self.credential_key_file):
                raise ValueError("production requires KINFOLIO_CREDENTIAL_KEY_PEM or KINFOLIO_CREDENTIAL_KEY_FILE")
            if not (self.credential_rsa_key_pem or self.credential_rsa_key_file):
                raise ValueError("production requires KINFOLIO_CREDENTIAL_RSA_KEY_PEM or KINFOLIO_CREDENTIAL_RSA_KEY_FILE "
                                 "(the RS256 VC-JWT key, OB 3.0 §8.2.4.1)")
            if not self.database_url:
                raise ValueError("production requires KINFOLIO_DATABASE_URL")
            if not self.pseudonym_key_hex:
                raise ValueError("production requires KINFOLIO_PSEUDONYM_KEY_HEX")
            if not self.session_secret_hex:
                raise ValueError("production requires KINFOLIO_SESSION_SECRET_HEX")
            if not self.kek_hex:
                raise ValueError("production requires KINFOLIO_KEK_HEX (the key-encryption key of sensitive sections)")
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

    @property
    def resolved_credential_key_file(self) -> Path:
        return self.credential_key_file or self.data_dir / "credential-signing-key.pem"

    @property
    def resolved_credential_rsa_key_file(self) -> Path:
        return self.credential_rsa_key_file or self.data_dir / "credential-rsa-key.pem"

    @property
    def resolved_credential_previous_keys_file(self) -> Path:
        return self.credential_previous_keys_file or self.data_dir / "credential-previous-keys.json"

    @property
    def signing_keyring_file(self) -> Path:
        """Keys added by ``kinfolio keys rotate`` (JSON), next to the data directory."""
        return self.data_dir / "jwt-signing-keyring.json"

    @property
    def uses_tls(self) -> bool:
        return self.issuer.startswith("https://")


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _aes256_key(value: str, name: str) -> bytes:
    try:
        key = bytes.fromhex(value)
    except ValueError:
        raise ValueError(f"{name} must be hex") from None
    if len(key) != 32:
        raise ValueError(f"{name} must be 32 bytes (64 hex digits) for AES-256")
    return key


def key_ring(settings: Settings) -> KeyRing:
    """The KEKs: the configured one (or, in development, a 0600 file under data_dir) and previous ones."""
    if settings.kek_hex:
        current = bytes.fromhex(settings.kek_hex)
    else:
        import secrets

        from hub.keyfiles import read_or_create

        text = read_or_create(settings.data_dir / "kek.hex", lambda: secrets.token_hex(32).encode()).decode().strip()
        current = _aes256_key(text, str(settings.data_dir / "kek.hex"))
    return KeyRing(current, [bytes.fromhex(k) for k in _split(settings.previous_keks_hex)])


def control_policy(settings: Settings) -> ControlPolicy:
    return ControlPolicy(
        name=settings.consent_policy_name,
        learner_view_age=settings.consent_learner_view_age,
        adult_age=settings.consent_adult_age,
        all_guardians_for_sensitive=settings.consent_all_guardians_for_sensitive,
    )


def pseudonym_key(settings: Settings) -> bytes:
    if settings.pseudonym_key_hex:
        return bytes.fromhex(settings.pseudonym_key_hex)
    import secrets

    from hub.keyfiles import read_or_create

    return bytes.fromhex(
        read_or_create(settings.data_dir / "pseudonym-key.hex", lambda: secrets.token_hex(32).encode()).decode()
    )


def session_secret(settings: Settings) -> str:
    if settings.session_secret_hex:
        return settings.session_secret_hex
    import secrets

    from hub.keyfiles import read_or_create

    return read_or_create(settings.data_dir / "session-secret.hex", lambda: secrets.token_hex(32).encode()).decode()


@cache
def get_settings() -> Settings:
    return Settings()

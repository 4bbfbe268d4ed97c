"""One frozen Settings object built from the environment.

No other module reads os.environ: everything configurable is a field here, validated once, and a
bad or missing value fails with a message that names the variable.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, fields
from typing import Callable, Mapping
from urllib.parse import urlsplit

STAGES = ("local", "dev", "prod")
REGISTRATION_POLICIES = ("token", "open")
# One DynamoDB or KMS call, all attempts included, must end before the Lambda (25 s in .chalice/config.json)
# and API Gateway (29 s) give up, so a slow dependency is our own 503 rather than a gateway 504.
AWS_CALL_BUDGET_SECONDS = 24
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the environment variable."""


@dataclass(frozen=True)
class Settings:
    stage: str
    issuer: str
    api_audience: str
    table_name: str
    api_table_name: str
    kms_key_id: str
    aws_region: str
    access_token_seconds: int
    id_token_seconds: int
    code_seconds: int
    refresh_idle_seconds: int
    refresh_absolute_seconds: int
    refresh_grace_seconds: int
    session_seconds: int
    authorization_request_seconds: int
    client_cache_seconds: int
    key_cache_seconds: int
    secret_rotation_overlap_seconds: int
    login_max_failures: int
    login_window_seconds: int
    client_auth_max_failures: int
    login_source_max_failures: int
    login_account_max_failures: int
    login_global_max_failures_per_minute: int
    login_backoff_max_seconds: int
    known_device_days: int
    client_auth_source_max_failures: int
    max_apps_per_user: int
    registrations_per_token_per_day: int
    parked_requests_per_source: int
    api_writes_per_user_per_minute: int
    request_deadline_seconds: float
    ddb_connect_timeout_seconds: float
    ddb_read_timeout_seconds: float
    ddb_max_retries: int
    registration_policy: str  # token: an initial access token is required; open: public clients may self-register
    open_registration_idle_seconds: int
    open_registration_per_source_per_hour: int
    open_registration_per_hour: int
    client_id_metadata_documents: bool
    metadata_document_min_cache_seconds: int
    metadata_document_max_cache_seconds: int
    outbound_ca_files: tuple[str, ...]  # trusted besides the system CAs (outbound fetches)

    @property
    def outbound_loopback_allowed(self) -> bool:
        """Outbound fetches (Client ID Metadata Documents) may reach loopback only in the local stage."""
        return self.stage == "local"

    @property
    def longest_request_seconds(self) -> float:
        """The deadline, plus one AWS attempt that started just before it (connect + read timeouts)."""
        return self.request_deadline_seconds + self.ddb_connect_timeout_seconds + self.ddb_read_timeout_seconds

    @property
    def refresh_replay_seconds(self) -> int:
        """How long after a rotation a repeat of that refresh gets the same answer: REFRESH_GRACE_SECONDS
        counted from when the answer can have left — a 503 for a rotation that committed but whose
        answer was lost leaves up to `longest_request_seconds` after the commit. 0: strict rotation."""
        if self.refresh_grace_seconds == 0:
            return 0
        return self.refresh_grace_seconds + math.ceil(self.longest_request_seconds)

    @property
    def secure_cookies(self) -> bool:
        return self.stage != "local"

    def url(self, path: str) -> str:
        """An absolute URL under the issuer (the issuer may carry a stage path)."""
        return self.issuer + path


def _url(name: str, value: str, stage: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"{name} must be an absolute http(s) URL, got {value!r}")
    if parts.scheme == "http" and not (stage == "local" and parts.hostname in LOOPBACK_HOSTS):
        raise ConfigError(f"{name} must use https outside the local stage on loopback, got {value!r}")
    if parts.query or parts.fragment or value.endswith("/"):
        raise ConfigError(f"{name} must have no query, fragment or trailing slash, got {value!r}")
    return value


def _number(name: str, low: float, high: float, kind: type = int) -> Callable[[str], object]:
    """A parser for a bounded number setting (kind int or float) whose errors name the variable."""

    def parse(value: str) -> object:
        try:
            number = kind(value)
        except ValueError:
            raise ConfigError(f"{name} must be a {'whole ' if kind is int else ''}number, got {value!r}") from None
        if not low <= number <= high:
            raise ConfigError(f"{name} must be between {low} and {high}, got {number}")
        return number

    return parse


def _int(name: str, default: int, low: int, high: int) -> tuple[str, str, Callable[[str], object]]:
    return name, str(default), _number(name, low, high, int)


def _float(name: str, default: float, low: float, high: float) -> tuple[str, str, Callable[[str], object]]:
    return name, str(default), _number(name, low, high, float)


# field name -> (environment variable, default, parser); the variable is named once, in the row
_DAY = 86400
_NUMBERS: dict[str, tuple[str, str, Callable[[str], object]]] = {
    "access_token_seconds": _int("ACCESS_TOKEN_SECONDS", 900, 60, 3600),
    "id_token_seconds": _int("ID_TOKEN_SECONDS", 300, 60, 3600),
    "code_seconds": _int("CODE_SECONDS", 60, 10, 600),
    "refresh_idle_seconds": _int("REFRESH_IDLE_SECONDS", 14 * _DAY, 60, 365 * _DAY),
    "refresh_absolute_seconds": _int("REFRESH_ABSOLUTE_SECONDS", 90 * _DAY, 60, 730 * _DAY),
    "refresh_grace_seconds": _int("REFRESH_GRACE_SECONDS", 10, 0, 60),
    "session_seconds": _int("SESSION_SECONDS", 8 * 3600, 60, 30 * _DAY),
    "authorization_request_seconds": _int("AUTHORIZATION_REQUEST_SECONDS", 600, 60, 3600),
    "client_cache_seconds": _int("CLIENT_CACHE_SECONDS", 30, 0, 300),
    "key_cache_seconds": _int("KEY_CACHE_SECONDS", 300, 0, 3600),
    "secret_rotation_overlap_seconds": _int("SECRET_ROTATION_OVERLAP_SECONDS", 0, 0, 30 * _DAY),
    "login_max_failures": _int("LOGIN_MAX_FAILURES", 10, 1, 1000),
    "login_window_seconds": _int("LOGIN_WINDOW_SECONDS", 900, 10, _DAY),
    "client_auth_max_failures": _int("CLIENT_AUTH_MAX_FAILURES", 50, 1, 10000),
    "login_source_max_failures": _int("LOGIN_SOURCE_MAX_FAILURES", 30, 1, 100000),
    "login_account_max_failures": _int("LOGIN_ACCOUNT_MAX_FAILURES", 100, 1, 100000),
    "login_global_max_failures_per_minute": _int("LOGIN_GLOBAL_MAX_FAILURES_PER_MINUTE", 1000, 1, 1000000),
    "login_backoff_max_seconds": _int("LOGIN_BACKOFF_MAX_SECONDS", _DAY, 60, 30 * _DAY),
    "known_device_days": _int("KNOWN_DEVICE_DAYS", 90, 0, 400),
    "client_auth_source_max_failures": _int("CLIENT_AUTH_SOURCE_MAX_FAILURES", 200, 1, 100000),
    "max_apps_per_user": _int("MAX_APPS_PER_USER", 25, 1, 10000),
    "registrations_per_token_per_day": _int("REGISTRATIONS_PER_TOKEN_PER_DAY", 100, 1, 1000000),
    "parked_requests_per_source": _int("PARKED_REQUESTS_PER_SOURCE", 100, 1, 1000000),
    "api_writes_per_user_per_minute": _int("API_WRITES_PER_USER_PER_MINUTE", 60, 1, 100000),
    "request_deadline_seconds": _float("REQUEST_DEADLINE_SECONDS", 15, 1, 24),
    "ddb_connect_timeout_seconds": _float("DDB_CONNECT_TIMEOUT_SECONDS", 2, 0.1, 10),
    "ddb_read_timeout_seconds": _float("DDB_READ_TIMEOUT_SECONDS", 4, 0.1, 10),
    "ddb_max_retries": _int("DDB_MAX_RETRIES", 2, 0, 5),
    "open_registration_idle_seconds": _int("OPEN_REGISTRATION_IDLE_SECONDS", 30 * _DAY, 3600, 365 * _DAY),
    "open_registration_per_source_per_hour": _int("OPEN_REGISTRATION_PER_SOURCE_PER_HOUR", 10, 1, 10000),
    "open_registration_per_hour": _int("OPEN_REGISTRATION_PER_HOUR", 1000, 1, 1_000_000),
    "metadata_document_min_cache_seconds": _int("METADATA_DOCUMENT_MIN_CACHE_SECONDS", 300, 60, _DAY),
    "metadata_document_max_cache_seconds": _int("METADATA_DOCUMENT_MAX_CACHE_SECONDS", _DAY, 60, 7 * _DAY),
}


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Build Settings from a mapping of environment variables; raise ConfigError naming the culprit."""

    def get(name: str, default: str | None = None) -> str:
        value = environ.get(name, "").strip()
        if value:
            return value
        if default is None:
            raise ConfigError(f"{name} is not set")
        return default

    stage = get("STAGE", "local")
    if stage not in STAGES:
        raise ConfigError(f"STAGE must be one of {', '.join(STAGES)}, got {stage!r}")
    local = stage == "local"
    issuer = _url("ISSUER_URL", get("ISSUER_URL", "http://127.0.0.1:8000" if local else None), stage)
    values: dict[str, object] = {
        "stage": stage,
        "issuer": issuer,
        "api_audience": _url("API_AUDIENCE", get("API_AUDIENCE", issuer + "/v1"), stage),
        "table_name": get("OAUTH_TABLE", f"clipron-oauth-{stage}"),
        "api_table_name": get("API_TABLE", f"clipron-api-{stage}"),
        "kms_key_id": get("KMS_KEY_ID", "alias/clipron-oauth-local" if local else None),
        "aws_region": get("AWS_REGION", environ.get("AWS_DEFAULT_REGION", "").strip() or None),
    }
    for field_name, (variable, default, parse) in _NUMBERS.items():
        values[field_name] = parse(get(variable, default))
    values.update(_registration(get))
    if values["metadata_document_min_cache_seconds"] > values["metadata_document_max_cache_seconds"]:  # type: ignore[operator]
        raise ConfigError("METADATA_DOCUMENT_MIN_CACHE_SECONDS must not exceed METADATA_DOCUMENT_MAX_CACHE_SECONDS")
    if values["refresh_idle_seconds"] > values["refresh_absolute_seconds"]:  # type: ignore[operator]
        raise ConfigError("REFRESH_IDLE_SECONDS must not exceed REFRESH_ABSOLUTE_SECONDS")
    connect, read, retries = (values[name] for name in
                              ("ddb_connect_timeout_seconds", "ddb_read_timeout_seconds", "ddb_max_retries"))
    worst = worst_aws_call_seconds(connect, read, retries)  # type: ignore[arg-type]
    if worst > AWS_CALL_BUDGET_SECONDS:
        raise ConfigError(
            f"DDB_CONNECT_TIMEOUT_SECONDS, DDB_READ_TIMEOUT_SECONDS and DDB_MAX_RETRIES allow one call to take "
            f"{worst:g} s; keep it within {AWS_CALL_BUDGET_SECONDS} s (the Lambda and API Gateway time out)"
        )
    longest = values["request_deadline_seconds"] + connect + read  # type: ignore[operator]
    if longest > AWS_CALL_BUDGET_SECONDS:
        raise ConfigError(
            f"REQUEST_DEADLINE_SECONDS plus one DynamoDB attempt (connect + read timeouts) is {longest:g} s; "
            f"keep it within {AWS_CALL_BUDGET_SECONDS} s (the Lambda and API Gateway time out)"
        )
    missing = {f.name for f in fields(Settings)} - values.keys()
    assert not missing, missing
    return Settings(**values)  # type: ignore[arg-type]


def _registration(get: Callable[..., str]) -> dict[str, object]:
    """Who may register clients, and the outbound fetch of Client ID Metadata Documents."""
    policy = get("REGISTRATION_POLICY", "token")
    if policy not in REGISTRATION_POLICIES:
        raise ConfigError(f"REGISTRATION_POLICY must be one of {', '.join(REGISTRATION_POLICIES)}, got {policy!r}")
    documents = get("CLIENT_ID_METADATA_DOCUMENTS", "on")
    if documents not in ("on", "off"):
        raise ConfigError(f"CLIENT_ID_METADATA_DOCUMENTS must be on or off, got {documents!r}")
    # the standard CA bundle variables (OpenSSL's and requests'): each one named is trusted besides the
    # system CAs, so a test or a TLS-inspecting proxy can add its own CA without hiding the others
    ca_files = tuple(dict.fromkeys(f for f in (get("SSL_CERT_FILE", ""), get("REQUESTS_CA_BUNDLE", "")) if f))
    return {"registration_policy": policy, "client_id_metadata_documents": documents == "on",
            "outbound_ca_files": ca_files}


def worst_aws_call_seconds(connect_timeout: float, read_timeout: float, max_retries: int) -> float:
    """Every attempt timing out, plus botocore's largest standard-mode backoffs (min(2^i, 20) s) between them."""
    attempts = 1 + max_retries
    return attempts * (connect_timeout + read_timeout) + sum(min(2**i, 20) for i in range(attempts - 1))


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from os.environ."""
    return load_settings(os.environ)


def validate_at_start() -> None:
    """Fail the Lambda init (or `chalice local`) with a message naming the bad setting.

    Skipped while the Chalice CLI imports app.py to package or deploy it.
    """
    if not os.environ.get("AWS_CHALICE_CLI_MODE"):
        get_settings()


def key_rotation_days(environ: Mapping[str, str] | None = None) -> int:
    """Days between scheduled signing-key rotations (KEY_ROTATION_DAYS, 1 to 365, default 30).

    Read when app.py is imported: at `chalice deploy`/`package` time it becomes the EventBridge rule.
    """
    name, default, parse = _int("KEY_ROTATION_DAYS", 30, 1, 365)
    return parse((os.environ if environ is None else environ).get(name, "").strip() or default)

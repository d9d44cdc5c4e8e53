"""Django settings for callscope, read only from ``CALLSCOPE_*`` environment variables.

Each variable is declared in `callscope.config` style with a default and documented in
docs/configuration.md. The defaults give the one-machine installation: SQLite (WAL) and the
local audio store under ``CALLSCOPE_DATA_DIR``, console on 127.0.0.1.
"""

from __future__ import annotations

import importlib.util
import secrets
import sys
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from callscope.accounts.auditsinks import audit_logging, merge_into, parse_syslog_address
from callscope.config import (
    ConfigError,
    Setting,
    check_unknown,
    declare,
    parse_bool,
    parse_choice,
    parse_hex_key,
    parse_list,
    parse_networks,
    parse_positive_int,
)

PACKAGE_DIR = Path(__file__).resolve().parent


def _port_range(raw: str) -> tuple[int, int]:
    """``FIRST-LAST`` UDP ports (CALLSCOPE_SIPREC_RTP_PORTS), at least two, within 1024-65535."""
    first_text, sep, last_text = raw.strip().partition("-")
    first, last = int(first_text), int(last_text if sep else first_text)
    if not 1024 <= first < last <= 65535:
        raise ValueError("expected FIRST-LAST with 1024 <= FIRST < LAST <= 65535")
    return first, last


def _opus_complexity(raw: str) -> int:
    """libopus complexity 0-10 (CALLSCOPE_OPUS_*_COMPLEXITY)."""
    value = int(raw.strip())
    if not 0 <= value <= 10:
        raise ValueError("expected an integer from 0 to 10")
    return value


# -- declarations -------------------------------------------------------------------------

DATA_DIR_SETTING = declare(
    "CALLSCOPE_DATA_DIR",
    lambda raw: Path(raw).expanduser().resolve(),
    Path("var").resolve(),
    "Directory for the SQLite database, audio store, spool, static files and generated "
    "secrets. Created on first use.",
)
DATABASE_URL_SETTING = declare(
    "CALLSCOPE_DATABASE_URL",
    str,
    "",
    "Database. Empty: SQLite at DATA_DIR/callscope.sqlite3. "
    "PostgreSQL: postgresql://user:password@host:5432/dbname.",
    secret=True,
)
SECRET_KEY_SETTING = declare(
    "CALLSCOPE_SECRET_KEY",
    str,
    "",
    "Django secret key (sessions, CSRF, password reset tokens; the key sealing TOTP secrets "
    "derives from it). Empty: generated once and kept in DATA_DIR/secret_key (mode 0600).",
    secret=True,
)
SECRET_KEY_FALLBACKS_SETTING: Setting[tuple[str, ...]] = declare(
    "CALLSCOPE_SECRET_KEY_FALLBACKS",
    parse_list,
    (),
    "Former secret keys (comma separated), still accepted after the secret key was "
    "replaced: sessions and sealed TOTP secrets made under them keep working until removed.",
    secret=True,
)
DEBUG_SETTING = declare(
    "CALLSCOPE_DEBUG", parse_bool, False, "Django debug mode. Never in production."
)
BIND_SETTING = declare(
    "CALLSCOPE_BIND", str, "127.0.0.1:8000", "Address and port the console listens on."
)
ACCESS_LOG_SETTING = declare(
    "CALLSCOPE_ACCESS_LOG",
    str,
    "",
    "File to which the console server appends one line per request: time, client, method, "
    "path without the query string (searches carry phone numbers), status, bytes and "
    "milliseconds spent in the server. '-' for standard output; empty: none.",
)
# Processes rather than threads: a worker's threads share one interpreter lock, so a page
# that computes for 15 ms holds up the others in its process (bench/console_load.py: 4 x 2
# gave a third lower p95 than 2 x 4 on 2 cores).
WEB_WORKERS_SETTING = declare(
    "CALLSCOPE_WEB_WORKERS", parse_positive_int, 4, "Console server worker processes."
)
WEB_THREADS_SETTING = declare(
    "CALLSCOPE_WEB_THREADS", parse_positive_int, 2, "Threads per console worker process."
)
ALLOWED_HOSTS_SETTING: Setting[tuple[str, ...]] = declare(
    "CALLSCOPE_ALLOWED_HOSTS",
    parse_list,
    ("127.0.0.1", "localhost", "[::1]"),
    "Host names the console answers to (comma separated).",
)
ALLOWED_NETWORKS_SETTING = declare(
    "CALLSCOPE_ALLOWED_NETWORKS",
    parse_networks,
    parse_networks("127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"),
    "Client networks (CIDR, comma separated) allowed to reach the console.",
)
TRUSTED_PROXY_SETTING = declare(
    "CALLSCOPE_TRUSTED_PROXY",
    parse_bool,
    False,
    "Trust X-Forwarded-For from a reverse proxy for the client address (audit, allow-list).",
)
SECURE_COOKIES_SETTING = declare(
    "CALLSCOPE_SECURE_COOKIES",
    parse_bool,
    False,
    "Mark session and CSRF cookies Secure (set when the console is served over HTTPS).",
)
LANGUAGE_SETTING = declare(
    "CALLSCOPE_LANGUAGE", parse_choice("ja", "en"), "ja", "Default console language."
)
LOG_LEVEL_SETTING = declare(
    "CALLSCOPE_LOG_LEVEL",
    parse_choice("debug", "info", "warning", "error"),
    "info",
    "Log level of callscope's own loggers.",
)
PURE_PYTHON_SETTING = declare(
    "CALLSCOPE_PURE_PYTHON",
    parse_bool,
    False,
    "Run the Python code of the per-packet paths instead of their compiled twins (to compare "
    "the two, or to rule the compiled code out); slower. Read by callscope.core.compiled.",
)
LOG_FORMAT_SETTING = declare(
    "CALLSCOPE_LOG_FORMAT",
    parse_choice("auto", "json", "text"),
    "auto",
    "Log format: json (one object per line), text, or auto (json unless stderr is a terminal).",
)
RETENTION_DAYS_SETTING = declare(
    "CALLSCOPE_RETENTION_DAYS",
    parse_positive_int,
    14,
    "Days audio (and anything derived from it) is kept after the call.",
)
METADATA_RETENTION_DAYS_SETTING = declare(
    "CALLSCOPE_METADATA_RETENTION_DAYS",
    parse_positive_int,
    5 * 366,
    "Days call records (the call log) are kept.",
)
AUDIT_RETENTION_DAYS_SETTING = declare(
    "CALLSCOPE_AUDIT_RETENTION_DAYS",
    parse_positive_int,
    5 * 366,
    "Days audit trail entries are kept.",
)
IDLE_TIMEOUT_SETTING = declare(
    "CALLSCOPE_IDLE_TIMEOUT_MINUTES",
    parse_positive_int,
    15,
    "Minutes without a request after which a console session locks.",
)
SESSION_MAX_HOURS_SETTING = declare(
    "CALLSCOPE_SESSION_MAX_HOURS",
    parse_positive_int,
    10,
    "Absolute lifetime of a console session in hours, however active.",
)
PASSWORD_MAX_AGE_SETTING = declare(
    "CALLSCOPE_PASSWORD_MAX_AGE_DAYS",
    parse_positive_int,
    90,
    "Days after which a password must be changed; 0 turns periodic change off "
    "(see docs/security.md).",
)
AUDIO_MASTER_KEY_SETTING = declare(
    "CALLSCOPE_AUDIO_MASTER_KEY",
    parse_hex_key,
    b"",
    "Master key (64 hex digits) wrapping each recording's data key. Empty: generated once "
    "and kept in DATA_DIR/audio_master_key (mode 0600).",
    secret=True,
)
AUDIO_STORE_SETTING = declare(
    "CALLSCOPE_AUDIO_STORE",
    str,
    "",
    "Audio store. Empty: files under DATA_DIR/audio. S3-compatible: "
    "s3://bucket/prefix (endpoint and credentials from the CALLSCOPE_S3_* settings).",
)
S3_ENDPOINT_SETTING = declare(
    "CALLSCOPE_S3_ENDPOINT", str, "", "S3-compatible endpoint URL, e.g. http://10.0.0.5:8333."
)
S3_ACCESS_KEY_SETTING = declare(
    "CALLSCOPE_S3_ACCESS_KEY", str, "", "S3 access key id.", secret=True
)
S3_SECRET_KEY_SETTING = declare(
    "CALLSCOPE_S3_SECRET_KEY", str, "", "S3 secret access key.", secret=True
)
S3_REGION_SETTING = declare("CALLSCOPE_S3_REGION", str, "us-east-1", "S3 region name.")
OPUS_NB_KBPS_SETTING = declare(
    "CALLSCOPE_OPUS_NARROWBAND_KBPS",
    parse_positive_int,
    18,
    "Opus bitrate per channel for narrowband (8 kHz) calls.",
)
OPUS_WB_KBPS_SETTING = declare(
    "CALLSCOPE_OPUS_WIDEBAND_KBPS",
    parse_positive_int,
    16,
    "Opus bitrate per channel for wideband (16 kHz) calls.",
)
OPUS_NB_COMPLEXITY_SETTING = declare(
    "CALLSCOPE_OPUS_NARROWBAND_COMPLEXITY",
    _opus_complexity,
    1,
    "libopus complexity 0-10 for narrowband calls: higher is slower (10 is ~3.5x slower "
    "than 1; see docs/benchmarks.md).",
)
OPUS_WB_COMPLEXITY_SETTING = declare(
    "CALLSCOPE_OPUS_WIDEBAND_COMPLEXITY",
    _opus_complexity,
    10,
    "libopus complexity 0-10 for wideband calls (below 4 wideband speech quality drops sharply).",
)
OPUS_FRAME_MS_SETTING = declare(
    "CALLSCOPE_OPUS_FRAME_MS",
    lambda raw: int(parse_choice("20", "40", "60")(raw)),
    60,
    "Opus frame duration in milliseconds: 20, 40 or 60 (longer frames: smaller files).",
)
CALL_TIMEOUT_SETTING = declare(
    "CALLSCOPE_CALL_TIMEOUT_SECONDS",
    parse_positive_int,
    4 * 3600,
    "Fallback end of a call with no SIP and no RTP for this long (held calls stay open).",
)
PSEUDONYM_KEY_SETTING = declare(
    "CALLSCOPE_PSEUDONYM_KEY",
    str,
    "",
    "Key for the keyed pseudonyms of phone numbers. Empty: generated once and kept in "
    "DATA_DIR/pseudonym_key (mode 0600).",
    secret=True,
)
PASSWORD_HISTORY_SETTING = declare(
    "CALLSCOPE_PASSWORD_HISTORY",
    parse_positive_int,
    5,
    "Number of earlier passwords a user may not reuse (0: only the current one).",
)
LOCKOUT_FAILURES_SETTING = declare(
    "CALLSCOPE_LOCKOUT_FAILURES",
    parse_positive_int,
    5,
    "Failed log-ins (password or second factor) from one address for one user name before "
    "the account is locked there.",
)
LOCKOUT_MINUTES_SETTING = declare(
    "CALLSCOPE_LOCKOUT_MINUTES",
    parse_positive_int,
    30,
    "Minutes a lock lasts unless the manager lifts it earlier.",
)
AUDIT_LOG_FILE_SETTING = declare(
    "CALLSCOPE_AUDIT_LOG_FILE",
    str,
    "",
    "File to which every audit entry is also appended as a JSON line (for shipping to "
    "another host). Empty: none.",
)
AUDIT_SYSLOG_SETTING = declare(
    "CALLSCOPE_AUDIT_SYSLOG",
    parse_syslog_address,
    "",
    "Syslog destination for a copy of every audit entry (facility authpriv): "
    "udp://host:514, tcp://host:601 or a local socket such as /dev/log. Empty: none.",
)
PURGE_BATCH_SIZE_SETTING = declare(
    "CALLSCOPE_PURGE_BATCH_SIZE",
    parse_positive_int,
    200,
    "Recordings or calls deleted per retention transaction (keeps each purge step short).",
)
TEST_POSTGRES_URL_SETTING = declare(
    "CALLSCOPE_TEST_POSTGRES_URL",
    str,
    "postgresql://postgres@127.0.0.1:5432/test",
    "PostgreSQL server the test suite also runs against (tests only).",
)
HEP_AUTH_KEY_SETTING = declare(
    "CALLSCOPE_HEP_AUTH_KEY",
    str,
    "",
    "Shared key HEP agents must send (HEPv3 chunk 14) to `callscope capture --hep`; packets "
    "with another key or none are counted and dropped. Empty: no key required.",
    secret=True,
)
HEP_CAPTURE_IDS_SETTING = declare(
    "CALLSCOPE_HEP_CAPTURE_IDS",
    lambda raw: ",".join(str(int(item)) for item in parse_list(raw)),  # checked: integers
    "",
    "Capture ids (HEPv3 chunk 12) of the HEP agents allowed, comma-separated, e.g. 2001,2002; "
    "packets from other agents are counted and dropped. Empty: any agent.",
)
SIPREC_RTP_PORTS_SETTING = declare(
    "CALLSCOPE_SIPREC_RTP_PORTS",
    lambda raw: "{}-{}".format(*_port_range(raw)),  # checked: FIRST-LAST
    "40000-40999",
    "UDP ports `callscope capture --siprec` gives to recorded streams, FIRST-LAST: one even "
    "port per stream, two per two-party recording (the default holds 500 recordings).",
)
SIPREC_TLS_CERT_SETTING = declare(
    "CALLSCOPE_SIPREC_TLS_CERT",
    str,
    "",
    "PEM certificate (chain) file for SIP over TLS on the SIPREC port + 1 (5061 beside "
    "5060). Empty: no TLS listener.",
)
SIPREC_TLS_KEY_SETTING = declare(
    "CALLSCOPE_SIPREC_TLS_KEY",
    str,
    "",
    "PEM private key file of CALLSCOPE_SIPREC_TLS_CERT.",
)

# -- values -------------------------------------------------------------------------------

check_unknown()

DATA_DIR: Path = DATA_DIR_SETTING.read()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _generated_secret(filename: str, nbytes: int = 48) -> str:
    """A secret generated once into DATA_DIR (0600) when the environment gives none."""
    path = DATA_DIR / filename
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(nbytes), encoding="ascii")
    return path.read_text(encoding="ascii").strip()


SECRET_KEY = SECRET_KEY_SETTING.read() or _generated_secret("secret_key")
SECRET_KEY_FALLBACKS = list(SECRET_KEY_FALLBACKS_SETTING.read())
AUDIO_MASTER_KEY: bytes = AUDIO_MASTER_KEY_SETTING.read() or bytes.fromhex(
    _generated_secret("audio_master_key", nbytes=32)
)
PSEUDONYM_KEY: str = PSEUDONYM_KEY_SETTING.read() or _generated_secret("pseudonym_key")
DEBUG: bool = DEBUG_SETTING.read()
ALLOWED_HOSTS = list(ALLOWED_HOSTS_SETTING.read())
CALLSCOPE_BIND: str = BIND_SETTING.read()
CALLSCOPE_WEB_WORKERS: int = WEB_WORKERS_SETTING.read() or 1
CALLSCOPE_WEB_THREADS: int = WEB_THREADS_SETTING.read() or 1
CALLSCOPE_ACCESS_LOG: str = ACCESS_LOG_SETTING.read()
CALLSCOPE_ALLOWED_NETWORKS = ALLOWED_NETWORKS_SETTING.read()
CALLSCOPE_TRUSTED_PROXY: bool = TRUSTED_PROXY_SETTING.read()
CALLSCOPE_RETENTION_DAYS: int = RETENTION_DAYS_SETTING.read()
CALLSCOPE_METADATA_RETENTION_DAYS: int = METADATA_RETENTION_DAYS_SETTING.read()
CALLSCOPE_AUDIT_RETENTION_DAYS: int = AUDIT_RETENTION_DAYS_SETTING.read()
CALLSCOPE_PASSWORD_MAX_AGE_DAYS: int = PASSWORD_MAX_AGE_SETTING.read()
CALLSCOPE_AUDIO_STORE: str = AUDIO_STORE_SETTING.read()
CALLSCOPE_S3_ENDPOINT: str = S3_ENDPOINT_SETTING.read()
CALLSCOPE_S3_ACCESS_KEY: str = S3_ACCESS_KEY_SETTING.read()
CALLSCOPE_S3_SECRET_KEY: str = S3_SECRET_KEY_SETTING.read()
CALLSCOPE_S3_REGION: str = S3_REGION_SETTING.read()
CALLSCOPE_OPUS_NARROWBAND_KBPS: int = OPUS_NB_KBPS_SETTING.read()
CALLSCOPE_OPUS_WIDEBAND_KBPS: int = OPUS_WB_KBPS_SETTING.read()
CALLSCOPE_OPUS_NARROWBAND_COMPLEXITY: int = OPUS_NB_COMPLEXITY_SETTING.read()
CALLSCOPE_OPUS_WIDEBAND_COMPLEXITY: int = OPUS_WB_COMPLEXITY_SETTING.read()
CALLSCOPE_OPUS_FRAME_MS: int = OPUS_FRAME_MS_SETTING.read()
CALLSCOPE_CALL_TIMEOUT_SECONDS: int = CALL_TIMEOUT_SETTING.read()
CALLSCOPE_TEST_POSTGRES_URL: str = TEST_POSTGRES_URL_SETTING.read()
CALLSCOPE_HEP_AUTH_KEY: str = HEP_AUTH_KEY_SETTING.read()
CALLSCOPE_HEP_CAPTURE_IDS: frozenset[int] = frozenset(
    int(item) for item in parse_list(HEP_CAPTURE_IDS_SETTING.read())
)
_RTP_FIRST, _RTP_LAST = _port_range(SIPREC_RTP_PORTS_SETTING.read())
CALLSCOPE_SIPREC_RTP_PORTS: range = range(_RTP_FIRST, _RTP_LAST + 1)
CALLSCOPE_SIPREC_TLS_CERT: str = SIPREC_TLS_CERT_SETTING.read()
CALLSCOPE_SIPREC_TLS_KEY: str = SIPREC_TLS_KEY_SETTING.read()
CALLSCOPE_PASSWORD_HISTORY: int = PASSWORD_HISTORY_SETTING.read()
CALLSCOPE_AUDIT_LOG_FILE: str = AUDIT_LOG_FILE_SETTING.read()
CALLSCOPE_AUDIT_SYSLOG: str = AUDIT_SYSLOG_SETTING.read()
CALLSCOPE_PURGE_BATCH_SIZE: int = PURGE_BATCH_SIZE_SETTING.read() or 1
CALLSCOPE_IDLE_TIMEOUT_MINUTES: int = IDLE_TIMEOUT_SETTING.read() or 15
CALLSCOPE_SESSION_MAX_HOURS: int = SESSION_MAX_HOURS_SETTING.read() or 10


def database_from_url(url: str) -> dict[str, object]:
    """Django DATABASES entry for a ``postgresql://`` or ``sqlite:///`` URL."""
    parts = urlsplit(url)
    if parts.scheme in {"postgres", "postgresql"}:
        options = dict(parse_qsl(parts.query))
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")) or "callscope",
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": options,
        }
    if parts.scheme == "sqlite":
        return _sqlite(Path(unquote(parts.path)))
    raise ConfigError("CALLSCOPE_DATABASE_URL", "expected postgresql://... or sqlite:///path")


def _sqlite(path: Path) -> dict[str, object]:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        # Kept open between requests of a console thread (as for PostgreSQL): opening one
        # runs the PRAGMAs below and registers Django's SQL functions, ~1.5 ms a request.
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
        # WAL lets the capture writer and the console readers work at the same time.
        "OPTIONS": {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
    }


_database_url: str = DATABASE_URL_SETTING.read()
DATABASES = {
    "default": database_from_url(_database_url)
    if _database_url
    else _sqlite(DATA_DIR / "callscope.sqlite3")
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "axes",
    "callscope.accounts",
    "callscope.store",
    "callscope.analytics",
    "callscope.console",
    "callscope.ingest",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "callscope.console.middleware.NetworkAllowListMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "callscope.accounts.session_store.SlidingSessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "callscope.accounts.middleware.AccountPolicyMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "callscope.console.middleware.SessionPolicyMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "callscope.urls"
WSGI_APPLICATION = "callscope.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
PASSWORD_HASHERS = [
    # Argon2id (argon2-cffi's default type); the others only verify legacy hashes.
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "callscope.accounts.passwords.PasswordHistoryValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "console:home"
LOGOUT_REDIRECT_URL = "login"

# Server-side sessions with a sliding idle timeout: SESSION_COOKIE_AGE, the expiry written
# at most once a minute (callscope.accounts.session_store; not SESSION_SAVE_EVERY_REQUEST,
# which writes every request); the absolute lifetime is AccountPolicyMiddleware's.
SESSION_ENGINE = "callscope.accounts.session_store"
SESSION_COOKIE_AGE = CALLSCOPE_IDLE_TIMEOUT_MINUTES * 60
SESSION_SAVE_EVERY_REQUEST = False
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Strict"
SECURE_COOKIES: bool = SECURE_COOKIES_SETTING.read()
SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

AXES_FAILURE_LIMIT = LOCKOUT_FAILURES_SETTING.read() or 1
AXES_COOLOFF_TIME = (LOCKOUT_MINUTES_SETTING.read() or 1) / 60  # hours; the manager can lift it
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_IPWARE_PROXY_COUNT = 1 if CALLSCOPE_TRUSTED_PROXY else 0

LANGUAGE_CODE: str = LANGUAGE_SETTING.read()
LANGUAGES = [("ja", "日本語"), ("en", "English")]
LOCALE_PATHS = [PACKAGE_DIR / "locale"]
TIME_ZONE = "Asia/Tokyo"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
# plotly.js served from the installed plotly package (air-gapped: no CDN, no copy in the repo)
_PLOTLY = importlib.util.find_spec("plotly")  # a dependency; found without importing it
STATICFILES_DIRS = (
    [("plotly", Path(_PLOTLY.origin).parent / "package_data")] if _PLOTLY and _PLOTLY.origin else []
)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_MAX_AGE = 3600

_TESTING = "pytest" in sys.modules
if _TESTING:
    # Test runs hash fast; production keeps Argon2id.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *PASSWORD_HASHERS]

from callscope.logs import logging_config  # noqa: E402  (needs the values above)

LOGGING = merge_into(
    logging_config(level=LOG_LEVEL_SETTING.read(), fmt=LOG_FORMAT_SETTING.read()),
    audit_logging(log_file=CALLSCOPE_AUDIT_LOG_FILE, syslog=CALLSCOPE_AUDIT_SYSLOG),
)

"""Binance API credentials, only from the environment or ``config/.env``.

Variables: ``BINANCE_API_KEY`` with either ``BINANCE_API_SECRET`` (an HMAC key) or ``BINANCE_ED25519_KEY_FILE``
(the path of an Ed25519 private key in PEM; optional ``BINANCE_ED25519_KEY_PASSWORD``). The environment wins over
the file. ``config/.env`` holds ``KEY=VALUE`` lines (``#`` comments, blank lines, optional ``export``, values
optionally in single or double quotes); nothing else of the file is interpreted and no value is ever printed.
Ed25519 keys: https://developers.binance.com/docs/binance-spot-api-docs/faqs/api_key_types

:class:`Credentials` never shows the secret: ``repr``/``str`` give the key's first four characters only, and it
refuses to be pickled.
"""
from __future__ import annotations

import os
from pathlib import Path

from mmcore.venues.binance.signing import Ed25519Signer, HmacSigner

KEY_VAR = "BINANCE_API_KEY"
SECRET_VAR = "BINANCE_API_SECRET"
ED25519_VAR = "BINANCE_ED25519_KEY_FILE"
ED25519_PASSWORD_VAR = "BINANCE_ED25519_KEY_PASSWORD"
DEFAULT_ENV_FILE = Path(__file__).resolve().parents[3] / "config" / ".env"
_VARS = (KEY_VAR, SECRET_VAR, ED25519_VAR, ED25519_PASSWORD_VAR)
MAX_ENV_FILE_BYTES = 1 << 20


class CredentialsError(ValueError):
    """Credentials are missing or unusable; the message names the variables (never a value)."""


def parse_env_file(path: Path | str) -> dict[str, str]:
    """``KEY=VALUE`` pairs of an env file (see the module docstring). A missing file gives ``{}``; an unreadable
    or over-long one raises CredentialsError naming the file. Malformed lines are skipped."""
    p = Path(path)
    if not p.exists():
        return {}
    try:
        if p.stat().st_size > MAX_ENV_FILE_BYTES:
            raise CredentialsError(f"{p}: larger than {MAX_ENV_FILE_BYTES} bytes, not an env file")
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialsError(f"{p}: cannot be read ({type(exc).__name__})") from None
    out: dict[str, str] = {}
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if s.startswith("export "):
            s = s[7:].lstrip()
        k, sep, v = s.partition("=")
        k, v = k.strip(), v.strip()
        if not sep or not k.replace("_", "").isalnum():
            continue
        if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
            v = v[1:-1]
        out[k] = v
    return out


class Credentials:
    """An API key and its signer (HMAC or Ed25519). ``api_key`` is public-ish (sent with requests); the signer
    holds the secret. ``kind``: ``"hmac"`` or ``"ed25519"``."""

    __slots__ = ("api_key", "signer", "kind", "_secret")

    def __init__(self, api_key: str, signer, _secret: str | None = None):
        if not isinstance(api_key, str) or not api_key or not api_key.isascii() or any(c.isspace() for c in api_key):
            raise CredentialsError(f"{KEY_VAR}: expected a non-empty ASCII string without spaces")
        self.api_key = api_key
        self.signer = signer
        self.kind = signer.kind
        self._secret = _secret

    def secret_for_ccxt(self) -> str:
        """The HMAC secret, for handing to ccxt (the REST fallback) only. Raises ValueError for Ed25519 keys."""
        if self._secret is None:
            raise ValueError("the ccxt path needs an HMAC key (BINANCE_API_SECRET)")
        return self._secret

    @classmethod
    def hmac(cls, api_key: str, secret: str) -> "Credentials":
        try:
            return cls(api_key, HmacSigner(secret), secret)
        except (ValueError, UnicodeEncodeError):
            raise CredentialsError(f"{SECRET_VAR}: expected a non-empty ASCII string") from None

    def __repr__(self) -> str:
        return f"Credentials(api_key={self.api_key[:4]}..., kind={self.kind}, secret=<hidden>)"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("credentials cannot be pickled")


def load_credentials(env: dict | None = None, env_file: Path | str | None = DEFAULT_ENV_FILE) -> Credentials:
    """Credentials from ``env`` (default ``os.environ``), then ``env_file`` for the variables the environment
    lacks (``None``: no file).

    Raises
    ------
    CredentialsError
        ``BINANCE_API_KEY`` missing, or neither ``BINANCE_API_SECRET`` nor ``BINANCE_ED25519_KEY_FILE`` set, or
        the key file unreadable / not Ed25519 (the message names the variables and the file, never a value).
    """
    source = dict(os.environ if env is None else env)
    file_vals = parse_env_file(env_file) if env_file is not None else {}
    vals = {k: source.get(k) or file_vals.get(k) for k in _VARS}
    where = "the environment" + (f" or {env_file}" if env_file is not None else "")
    key = vals[KEY_VAR]
    if not key:
        raise CredentialsError(f"live trading needs {KEY_VAR} and {SECRET_VAR} (or {ED25519_VAR}) in {where}; "
                               f"{KEY_VAR} is not set")
    if vals[SECRET_VAR]:
        return Credentials.hmac(key, vals[SECRET_VAR])
    if vals[ED25519_VAR]:
        path = Path(vals[ED25519_VAR]).expanduser()
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise CredentialsError(f"{ED25519_VAR}: {path} cannot be read ({type(exc).__name__})") from None
        pw = vals[ED25519_PASSWORD_VAR]
        try:
            return Credentials(key, Ed25519Signer(pem, pw.encode() if pw else None))
        except ValueError as exc:
            raise CredentialsError(f"{ED25519_VAR}: {path}: {exc}") from None
    raise CredentialsError(f"live trading needs {SECRET_VAR} or {ED25519_VAR} with {KEY_VAR} in {where}; "
                           f"neither is set")

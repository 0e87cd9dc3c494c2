"""The one redaction function: every log line, HTTP body, CLI line and error message passes through it.

Three rules, each safe to apply to any text:

- the user information of a URL (``scheme://user:password@host``) becomes ``user:***@``,
  whatever the password holds (``@ : # ? / %``): everything from ``://`` to the last
  ``@`` of the same word is replaced, so an unusual password can only cause too much to
  be hidden, never too little;
- credentials in a query string or a key=value text (``password=``, ``token=``,
  ``api_key=``, ...) and ``Bearer`` tokens become ``***``;
- secrets the daemon read (passwords from files or the environment, the passwords of
  camera URLs) are registered with ``register_secret`` and replaced wherever they
  appear, even inside a message of FFmpeg, GStreamer, httpx or paho that printed them
  in a shape the rules above do not know.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote

__all__ = ["MASK", "redact", "redact_value", "register_secret", "register_url_secrets"]

MASK = "***"

# scheme://, then the rest of the word up to its last "@": the user information.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^\s\"<>]*)@")
_CREDENTIAL_KEYS = (
    "password|passwd|pass|pwd|passphrase|secret|token|access_token|refresh_token|id_token|auth|"
    "api_key|apikey|key|sig|signature|credential|credentials"
)
_KEY_VALUE = re.compile(
    rf"(?P<key>(?<![A-Za-z0-9_])(?:{_CREDENTIAL_KEYS}))(?P<sep>=)(?P<value>[^\s&;,'\"<>]+)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?P<kind>\b(?:Bearer|Basic|Token)\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)

# Secrets shorter than this are not replaced literally (a one-digit password would mask
# every digit of every line); the structural rules above still hide them in URLs.
_MIN_LITERAL = 4
_secrets: frozenset[str] = frozenset()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Hide ``value`` (and its percent-encoded and decoded forms) wherever it appears from now on."""
    if not value:
        return
    forms = {value.strip(), unquote(value), quote(value, safe="")}
    global _secrets  # noqa: PLW0603 - one process-wide set, replaced whole (readers never lock)
    with _lock:
        _secrets = _secrets | {f for f in forms if len(f) >= _MIN_LITERAL}


def register_url_secrets(urls: Iterable[str]) -> None:
    """Register the password (and a lone user-info token) of each URL."""
    for url in urls:
        match = _USERINFO.search(url)
        if match is None:
            continue
        userinfo = match.group("userinfo")
        user, sep, password = userinfo.partition(":")
        register_secret(password if sep else user)


def _mask_userinfo(match: re.Match[str]) -> str:
    user, sep, _password = match.group("userinfo").partition(":")
    # "user:secret@" keeps the user name; a lone "token@" is itself a secret.
    return f"{match.group('scheme')}{user}:{MASK}@" if sep else f"{match.group('scheme')}{MASK}@"


def redact(text: str) -> str:
    """``text`` with every password, token and registered secret replaced by ``***``."""
    if not text:
        return text
    for secret in sorted(_secrets, key=len, reverse=True):  # longest first: no partial leftovers
        if secret in text:
            text = text.replace(secret, MASK)
    if "://" in text and "@" in text:
        text = _USERINFO.sub(_mask_userinfo, text)
    if "=" in text:
        text = _KEY_VALUE.sub(lambda m: f"{m.group('key')}{m.group('sep')}{MASK}", text)
    return _BEARER.sub(lambda m: f"{m.group('kind')}{MASK}", text)


def redact_value(value: Any) -> Any:
    """``redact`` applied to every string inside dicts, lists and tuples (keys included)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_value(k): redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(v) for v in value)
    return value

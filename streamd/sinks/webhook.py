"""HTTP POST of each message, or of a batch as a JSON array, signed with HMAC-SHA256.

Headers of every request:
- ``Content-Type: application/json``
- ``X-Streamd-Signature: sha256=<hex HMAC-SHA256 of the exact body with the shared secret>``
  (when a secret is configured)
- ``Idempotency-Key``: the message's ``message_id`` (for a batch: ``batch-`` and the
  SHA-256 of the ids, in order); every message also carries its own ``message_id``,
  the same on every retry and after a restart, so a receiver can drop duplicates.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import time

import httpx
import orjson

from streamd.config import WebhookSinkConfig, read_secret
from streamd.sinks.base import DeliveryError, Item

__all__ = ["WebhookTransport", "sign"]

_RETRY_STATUSES = {408, 429}


def sign(secret: bytes, body: bytes) -> str:
    """The X-Streamd-Signature value of a body."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time()) if when else None


class WebhookTransport:
    """POSTs to one URL with retries decided by the status code."""

    def __init__(self, name: str, cfg: WebhookSinkConfig, where: str) -> None:
        self.name = name
        self.max_batch = cfg.batch_max * 8
        # Wait up to batch_wait_s for a full request of batch_max messages.
        self.fill = cfg.batch_max
        self.fill_wait_s = cfg.batch_wait_s
        self.keeps_state = False
        self._cfg = cfg
        secret = read_secret(f"{where}: sinks.{name}", cfg.secret_file, cfg.secret_env)
        self._secret = secret.encode() if secret else None
        verify: bool | str = str(cfg.ca) if (cfg.verify_tls and cfg.ca) else cfg.verify_tls
        self._client = httpx.Client(timeout=cfg.timeout_s, verify=verify, headers=cfg.headers)

    def send(self, items: list[Item]) -> None:
        acked = 0
        size = self._cfg.batch_max
        for start in range(0, len(items), size):
            chunk = items[start : start + size]
            try:
                self._post(chunk)
            except DeliveryError as exc:
                exc.acked += acked
                raise
            acked += len(chunk)

    def _post(self, chunk: list[Item]) -> None:
        ids = [(body := orjson.loads(i.payload)).get("message_id") or body.get("event_id", "") for i in chunk]
        if self._cfg.batch_max == 1:
            body, key = chunk[0].payload, ids[0]
        else:
            body = b"[" + b",".join(i.payload for i in chunk) + b"]"
            key = "batch-" + hashlib.sha256("\n".join(ids).encode()).hexdigest()
        headers = {"Content-Type": "application/json", "Idempotency-Key": key}
        if self._secret is not None:
            headers["X-Streamd-Signature"] = sign(self._secret, body)
        try:
            response = self._client.post(self._cfg.url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise DeliveryError(f"timed out after {self._cfg.timeout_s:g} s", retry=True) from exc
        except httpx.TransportError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}", retry=True) from exc
        status = response.status_code
        if 200 <= status < 300:
            return
        start = response.text[:200].replace("\n", " ")
        retry = status >= 500 or status in _RETRY_STATUSES
        raise DeliveryError(f"HTTP {status}: {start}", retry=retry, retry_after=_retry_after(response))

    def close(self) -> None:
        self._client.close()

"""An MQTT broker (paho-mqtt 2, MQTT 5 or 3.1.1), with an availability topic and a last will."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from streamd.config import MqttSinkConfig, read_secret
from streamd.log import Throttle, get_logger
from streamd.redact import redact
from streamd.sinks.base import DeliveryError, Item

__all__ = ["MqttTransport"]

_ACK_TIMEOUT_S = 10.0
# MQTT 5 failure reason codes worth retrying: unspecified, server busy, quota exceeded.
# Others (not authorized, topic name invalid, packet too large, ...) will not change.
_TRANSIENT = {0x80, 0x89, 0x97}


class _Client(mqtt.Client):
    """paho's client, remembering why the last connection attempt failed.

    paho's network thread catches the OSError of a failed (re)connect and only calls
    ``on_connect_fail`` with no reason; a TLS error or a refused port would go unseen.
    """

    last_connect_error: str | None = None

    def reconnect(self) -> MQTTErrorCode:
        try:
            return super().reconnect()
        except OSError as exc:
            self.last_connect_error = redact(f"{type(exc).__name__}: {exc}")
            raise


class MqttTransport:
    """Publishes each message to ``topic`` (with ``{camera}``) and waits for PUBACK/PUBCOMP at QoS 1/2.

    paho's own thread keeps the connection and reconnects with capped backoff; a
    send while disconnected fails at once, so the runner keeps the messages.
    """

    def __init__(self, name: str, cfg: MqttSinkConfig, where: str) -> None:
        self.name = name
        self.max_batch = cfg.max_inflight
        self.fill = 1
        self.fill_wait_s = 0.0
        self.keeps_state = cfg.state_topic is not None
        self._cfg = cfg
        self._log = get_logger(sink=name)
        self._connected = threading.Event()
        self._closing = False
        v5 = cfg.protocol == "5"
        self._connect_throttle = Throttle(60.0)
        self._client = _Client(
            CallbackAPIVersion.VERSION2,
            client_id=cfg.client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            clean_session=None if v5 else True,  # MQTT 5 has clean_start on connect instead
        )
        self._client.max_inflight_messages_set(cfg.max_inflight)  # lowered to the broker's quota later
        password = read_secret(f"{where}: sinks.{name}", cfg.password_file, cfg.password_env)
        if cfg.username is not None:
            self._client.username_pw_set(cfg.username, password)
        if cfg.tls is not None:
            self._client.tls_set(
                ca_certs=str(cfg.tls.ca) if cfg.tls.ca else None,
                certfile=str(cfg.tls.cert) if cfg.tls.cert else None,
                keyfile=str(cfg.tls.key) if cfg.tls.key else None,
                cert_reqs=ssl.CERT_NONE if cfg.tls.insecure else ssl.CERT_REQUIRED,
            )
            self._client.tls_insecure_set(cfg.tls.insecure)
        self._availability = cfg.availability_topic.format(client_id=cfg.client_id)
        self._client.will_set(self._availability, b"offline", qos=1, retain=True)
        self._refused: dict[int, Any] = {}  # mid -> the broker's failure reason code (MQTT 5)
        self._client.on_publish = self._on_publish
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.reconnect_delay_set(max(1, round(cfg.retry.initial_s)), max(1, round(cfg.retry.max_s)))
        port = cfg.port or (8883 if cfg.tls is not None else 1883)
        self._client.connect_async(cfg.host, port, keepalive=cfg.keepalive_s)
        self._client.loop_start()

    def _on_connect_fail(self, client: mqtt.Client, _userdata: Any) -> None:
        held = self._connect_throttle.ready()
        if held is not None:
            error = self._client.last_connect_error
            self._log.warning("mqtt cannot connect", host=self._cfg.host, error=error,
                              attempts_not_logged=held)  # fmt: skip

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self._client.last_connect_error = f"the broker refused the connection: {reason}"
            self._log.warning("mqtt connection refused", reason=str(reason))
            return
        self._client.last_connect_error = None
        self._connect_throttle.reset()
        # An MQTT 5 broker says how many QoS 1/2 messages it takes unacknowledged (mosquitto:
        # 20). paho ignores it and also ignores the "quota exceeded" PUBREC that the broker then
        # sends at QoS 2, reporting the dropped message as delivered. So never publish more at
        # once: a send holds at most this many, less one for the availability message.
        receive_max = getattr(props, "ReceiveMaximum", None) if props is not None else None
        if receive_max:
            inflight = max(1, min(self._cfg.max_inflight, int(receive_max)))
            self.max_batch = max(1, inflight - 1)
            # paho's own limit also bounds what it resends after a reconnect. Its public setter
            # refuses while connected (paho 2.1), and this is the first moment the value is
            # known; the attribute is what that setter assigns.
            client._max_inflight_messages = inflight
        sock = client.socket()
        if isinstance(sock, socket.socket):  # ssl.SSLSocket is one too
            # paho leaves Nagle on: each batch then waits out a delayed ACK (~40 ms) on loopback.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.publish(self._availability, b"online", qos=1, retain=True)
        self._connected.set()
        self._log.info("mqtt connected", host=self._cfg.host)

    def _on_publish(self, _client: mqtt.Client, _userdata: Any, mid: int, reason: Any, _props: Any) -> None:
        # paho marks a message published even when the broker's PUBACK refused it (MQTT 5).
        if reason is not None and reason.is_failure:
            self._refused[mid] = reason

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if self._connected.is_set() and not self._closing:
            self._log.warning("mqtt disconnected", reason=str(reason))
        self._connected.clear()

    def send(self, items: list[Item]) -> None:
        if not self._connected.is_set():
            reason = self._client.last_connect_error
            raise DeliveryError(f"not connected to the broker{f': {reason}' if reason else ''}", retry=True)
        infos: list[mqtt.MQTTMessageInfo] = []
        for item in items:
            topic, retain = self._topic(item)
            info = self._client.publish(topic, item.payload, qos=self._cfg.qos, retain=retain)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise DeliveryError(
                    f"publish failed: {mqtt.error_string(info.rc)}", retry=True, acked=len(infos)
                )
            infos.append(info)
        if self._cfg.qos == 0:
            return
        for acked, info in enumerate(infos):
            try:
                info.wait_for_publish(timeout=_ACK_TIMEOUT_S)
            except (RuntimeError, ValueError) as exc:
                raise DeliveryError(f"not acknowledged: {exc}", retry=True, acked=acked) from exc
            if not info.is_published():
                raise DeliveryError("no acknowledgement from the broker in time", retry=True, acked=acked)
            refused = self._refused.pop(info.mid, None)
            if refused is not None:
                raise DeliveryError(
                    f"the broker refused it: {refused}", retry=refused.value in _TRANSIENT, acked=acked
                )

    def _topic(self, item: Item) -> tuple[str, bool]:
        """Where an item goes, and whether the broker keeps it for later subscribers."""
        cfg = self._cfg
        if item.kind == "event":
            return cfg.event_topic.format(camera=item.camera), False
        if item.kind == "state" and cfg.state_topic is not None:
            return cfg.state_topic.format(camera=item.camera, key=item.key), True  # the current value
        return cfg.topic.format(camera=item.camera), cfg.retain

    def close(self) -> None:
        self._closing = True
        if self._connected.is_set():
            # A clean goodbye: the broker does not send the last will, so say offline ourselves.
            self._client.publish(self._availability, b"offline", qos=1, retain=True).wait_for_publish(2.0)
        self._client.disconnect()
        self._client.loop_stop()

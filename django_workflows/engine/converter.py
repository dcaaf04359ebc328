"""Payload conversion (port of go-workflows ``backend/converter``).

A payload is the JSON text of one value: an argument, a result, a signal. The default
converter refuses anything JSON cannot represent, and never falls back to pickle: stored
payloads must not be able to run code on the workers that read them.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

#: The stored, converter-encoded form of one value.
Payload = str


class Converter(Protocol):
    """Turns values into payloads and back."""

    def to_payload(self, value: Any) -> Payload: ...

    def from_payload(self, payload: Payload) -> Any: ...


class PayloadError(TypeError):
    """A value could not be converted to or from a payload."""


class JsonConverter:
    """The default converter: compact JSON, no NaN, no objects JSON does not know."""

    def to_payload(self, value: Any) -> Payload:
        try:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise PayloadError(f"value of type {type(value).__name__} is not JSON serializable: {exc}") from exc

    def from_payload(self, payload: Payload) -> Any:
        try:
            return json.loads(payload)
        except (TypeError, ValueError) as exc:
            raise PayloadError(f"payload is not valid JSON: {exc}") from exc


default_converter = JsonConverter()

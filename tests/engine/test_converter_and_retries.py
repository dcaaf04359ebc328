"""The payload converter (engine.converter) and retry policies (engine.retries)."""

from __future__ import annotations

import math
import pickle
from datetime import datetime, timedelta
from typing import Any

import pytest

from django_workflows.engine.converter import JsonConverter, PayloadError, default_converter
from django_workflows.engine.retries import DEFAULT_RETRY_OPTIONS, DEFAULT_SUB_WORKFLOW_RETRY_OPTIONS, RetryOptions


@pytest.mark.parametrize(
    "value",
    [None, True, 0, -7, 1.5, "", "ünïcode ✓", [1, "a", None], {"nested": {"list": [1, 2.5]}}],
)
def test_json_round_trip(value: Any) -> None:
    assert default_converter.from_payload(default_converter.to_payload(value)) == value


def test_payloads_are_compact_json() -> None:
    assert JsonConverter().to_payload({"a": [1, 2]}) == '{"a":[1,2]}'
    assert default_converter.to_payload("é") == '"é"'


class _Exploit:
    """An object that would run code if it were ever unpickled."""

    def __reduce__(self) -> Any:
        return (print, ("pwned",))


@pytest.mark.parametrize(
    ("value", "type_name"),
    [(object(), "object"), ({1, 2}, "set"), (datetime(2026, 1, 1), "datetime"), (_Exploit(), "_Exploit"), (b"raw", "bytes")],
)
def test_values_json_cannot_represent_are_refused(value: Any, type_name: str) -> None:
    with pytest.raises(PayloadError) as info:
        default_converter.to_payload(value)
    assert isinstance(info.value, TypeError)
    assert f"value of type {type_name} is not JSON serializable" in str(info.value)


def test_nan_is_refused() -> None:
    with pytest.raises(PayloadError):
        default_converter.to_payload(math.nan)


def test_bad_payloads_are_refused_and_never_unpickled() -> None:
    with pytest.raises(PayloadError, match="not valid JSON"):
        default_converter.from_payload("{not json")
    pickled = pickle.dumps({"a": 1})
    with pytest.raises(PayloadError):
        default_converter.from_payload(pickled)  # type: ignore[arg-type]


# -- retry options -------------------------------------------------------------------------------


def test_backoff_math() -> None:
    options = RetryOptions(max_attempts=5, first_retry_interval=1, backoff_coefficient=2)
    assert [options.backoff(n) for n in range(4)] == [timedelta(seconds=s) for s in (1, 2, 4, 8)]
    capped = RetryOptions(max_attempts=5, first_retry_interval=timedelta(seconds=1), backoff_coefficient=3, max_retry_interval=5)
    assert [capped.backoff(n).total_seconds() for n in range(4)] == [1, 3, 5, 5]
    constant = RetryOptions(max_attempts=3, first_retry_interval=0.5)
    assert {constant.backoff(n) for n in range(5)} == {timedelta(seconds=0.5)}
    assert DEFAULT_RETRY_OPTIONS.backoff(3) == timedelta(0)  # retries at once


def test_defaults() -> None:
    assert DEFAULT_RETRY_OPTIONS.max_attempts == 3 and DEFAULT_RETRY_OPTIONS.backoff_coefficient == 1
    assert DEFAULT_SUB_WORKFLOW_RETRY_OPTIONS.max_attempts == 1
    zero = RetryOptions()
    assert (zero.max_attempts, zero.first_retry_interval, zero.retry_timeout) == (0, timedelta(0), timedelta(0))


def test_durations_accept_seconds_or_timedelta() -> None:
    options = RetryOptions(first_retry_interval=2, max_retry_interval=timedelta(minutes=1), retry_timeout=0.5)
    assert options.first_retry_interval == timedelta(seconds=2)
    assert options.max_retry_interval == timedelta(minutes=1)
    assert options.retry_timeout == timedelta(seconds=0.5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_attempts": -1}, "max_attempts"),
        ({"max_attempts": 1.5}, "max_attempts"),
        ({"backoff_coefficient": -1}, "backoff_coefficient"),
    ],
)
def test_invalid_retry_options(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RetryOptions(**kwargs)


def test_invalid_duration_type() -> None:
    with pytest.raises(TypeError, match="first_retry_interval must be seconds"):
        RetryOptions(first_retry_interval="1s")  # type: ignore[arg-type]

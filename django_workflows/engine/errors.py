"""Errors that cross the workflow boundary, and the engine's own errors.

Port of go-workflows ``internal/workflowerrors`` and ``backend/errors.go``. An error raised by an
activity or a sub-workflow reaches the calling workflow as a ``WorkflowError`` that keeps the
original type *name*, message and traceback; the original class is never imported back from
stored data (payloads are JSON, and error types are names, not import paths).
"""

from __future__ import annotations

import dataclasses
import enum
import traceback
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """The stored form of a ``WorkflowError`` (the ``Error`` attribute of failure events)."""

    type: str
    message: str
    permanent: bool = False
    stacktrace: str = ""
    cause: ErrorInfo | None = None
    #: Which timeout fired, for an ``ActivityTimeoutError`` (a ``TimeoutType`` value); else "".
    timeout_type: str = ""
    #: Workflow code raised an exception that is not a ``WorkflowError`` (a ``PanicError``);
    #: ``type`` is then that exception's class name.
    panic: bool = False

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.permanent:
            data["permanent"] = True
        if self.stacktrace:
            data["stacktrace"] = self.stacktrace
        if self.cause is not None:
            data["cause"] = self.cause.to_dict()
        if self.timeout_type:
            data["timeout_type"] = self.timeout_type
        if self.panic:
            data["panic"] = True
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ErrorInfo:
        cause = data.get("cause")
        return cls(
            type=str(data.get("type", "")),
            message=str(data.get("message", "")),
            permanent=bool(data.get("permanent", False)),
            stacktrace=str(data.get("stacktrace", "")),
            cause=cls.from_dict(cause) if isinstance(cause, dict) else None,
            timeout_type=str(data.get("timeout_type", "")),
            # Histories written before the flag existed stored panics as type "PanicError".
            panic=bool(data.get("panic", False)) or data.get("type") == "PanicError",
        )


class WorkflowError(Exception):
    """An error returned by a workflow, an activity or a sub-workflow.

    ``type`` names the class of the original exception (``"ValueError"``, ``"PanicError"``...),
    ``permanent`` stops retries, ``cause`` is the error this one wraps, and ``stacktrace`` is the
    formatted traceback where the error was first raised.
    """

    default_type = ""

    def __init__(
        self,
        message: str = "",
        *,
        type: str | None = None,
        permanent: bool = False,
        cause: WorkflowError | None = None,
        stacktrace: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.type = self.default_type if type is None else type
        self.permanent = permanent
        self.cause = cause
        self.stacktrace = stacktrace

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(type={self.type!r}, message={self.message!r})"

    @classmethod
    def from_exception(cls, exc: BaseException, *, permanent: bool | None = None) -> WorkflowError:
        """Wrap any exception, keeping its type name, message, traceback and cause chain."""
        if isinstance(exc, WorkflowError):
            if permanent and not exc.permanent:
                return WorkflowError(
                    exc.message, type=exc.type, permanent=True, cause=exc.cause, stacktrace=exc.stacktrace
                )
            return exc
        cause_exc = exc.__cause__
        cause = cls.from_exception(cause_exc) if cause_exc is not None else None
        return WorkflowError(
            str(exc),
            type=exc.__class__.__name__,
            permanent=bool(permanent),
            cause=cause,
            stacktrace=format_traceback(exc),
        )

    @property
    def panic(self) -> bool:
        """Whether workflow code raised this as an exception that is not a ``WorkflowError``."""
        return isinstance(self, PanicError)

    def to_info(self) -> ErrorInfo:
        return ErrorInfo(
            type=self.type,
            message=self.message,
            permanent=self.permanent,
            stacktrace=self.stacktrace,
            cause=self.cause.to_info() if self.cause is not None else None,
            panic=self.panic,
        )

    @staticmethod
    def from_info(info: ErrorInfo) -> WorkflowError:
        """Rebuild an error from its stored form; engine error types come back as their classes
        (a panic as a ``PanicError`` whatever its type)."""
        cls: type[WorkflowError] = PanicError if info.panic else _ENGINE_ERROR_TYPES.get(info.type, WorkflowError)
        cause = WorkflowError.from_info(info.cause) if info.cause is not None else None
        err = cls.__new__(cls)
        WorkflowError.__init__(
            err, info.message, type=info.type, permanent=info.permanent, cause=cause, stacktrace=info.stacktrace
        )
        err._restore(info)
        return err

    def _restore(self, info: ErrorInfo) -> None:
        """Set what a subclass keeps beyond the common fields (``from_info`` skips ``__init__``)."""
        return None


class PermanentError(WorkflowError):
    """An error that is never retried (go-workflows ``NewPermanentError``)."""

    def __init__(self, message: str = "", *, type: str | None = None, cause: WorkflowError | None = None) -> None:
        super().__init__(message, type=type, permanent=True, cause=cause)


class PanicError(WorkflowError):
    """Workflow code raised an exception that is not a ``WorkflowError`` (a bug, go's panic).

    ``type`` is the class name of that exception (``"KeyError"``), ``message`` its text and
    ``stacktrace`` where it was raised; ``panic`` is true. Errors stored by earlier versions
    have the type ``"PanicError"`` and the original type in the message; they still come back
    as this class.
    """

    default_type = "PanicError"

    @classmethod
    def from_exception(cls, exc: BaseException, *, permanent: bool | None = None) -> PanicError:
        """The panic of workflow code that raised ``exc``: its type name, text, traceback and cause."""
        cause = WorkflowError.from_exception(exc.__cause__) if exc.__cause__ is not None else None
        return cls(
            str(exc), type=exc.__class__.__name__, permanent=bool(permanent), cause=cause, stacktrace=format_traceback(exc)
        )


class PayloadTooLarge(WorkflowError, ValueError):
    """A payload (an input, a result, a signal's value, heartbeat details) is larger than the
    backend's ``max_payload_size``; it is refused before anything is written.

    ``size`` and ``limit`` are in bytes (UTF-8), ``what`` names the payload. Raised by the
    client for a start or a signal; an activity attempt or a workflow whose result is too large
    fails with it, and it is never retried (another attempt would produce the same value).
    """

    default_type = "PayloadTooLarge"
    # Class defaults too: ``from_info`` rebuilds errors without calling this ``__init__``.
    size = 0
    limit = 0
    what = ""

    def __init__(self, message: str = "", *, size: int = 0, limit: int = 0, what: str = "payload", **kwargs: Any) -> None:
        kwargs.setdefault("permanent", True)
        super().__init__(
            message or f"{what} is {size:,} bytes, over the payload limit of {limit:,} bytes (max_payload_size)",
            **kwargs,
        )
        self.size = size
        self.limit = limit
        self.what = what


class NondeterminismError(WorkflowError):
    """Replaying history produced different commands than the history records.

    Raised by the executor with where it happened: the history event (``sequence_id``,
    ``event_type``), what that event says the code did (``expected``) and what the code did
    instead (``got``); the ``Replayer`` reports these. An error rebuilt from stored data has
    only its message.
    """

    default_type = "NondeterminismError"
    # Class defaults too: ``from_info`` rebuilds errors without calling this ``__init__``.
    sequence_id = 0
    event_type = ""
    expected = ""
    got = ""

    def __init__(
        self,
        message: str = "",
        *,
        sequence_id: int = 0,
        event_type: str = "",
        expected: str = "",
        got: str = "",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("permanent", True)
        super().__init__(message, **kwargs)
        self.sequence_id = sequence_id
        self.event_type = event_type
        self.expected = expected
        self.got = got


class DeadlockDetected(WorkflowError):
    """Workflow code did not yield back to the engine within the worker's deadlock timeout (a
    ``time.sleep``, blocking I/O or a long loop in workflow code); the message names the
    workflow and the stack says where it hung."""

    default_type = "DeadlockDetected"

    def __init__(self, message: str = "", **kwargs: Any) -> None:
        kwargs.setdefault("permanent", True)
        super().__init__(message, **kwargs)


class Canceled(WorkflowError):
    """The context of a workflow operation was canceled (go's ``context.Canceled``)."""

    default_type = "Canceled"

    def __init__(self, message: str = "context canceled", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)


class ActivityAbandoned(WorkflowError):
    """An activity's worker died too many times while running it; it is not leased again."""

    default_type = "ActivityAbandoned"

    def __init__(self, message: str = "", **kwargs: Any) -> None:
        kwargs.setdefault("permanent", True)
        super().__init__(message, **kwargs)


class TimeoutType(str, enum.Enum):
    """Which timeout of an activity fired (``ActivityTimeoutError.timeout_type``); the values
    are the ``ActivityOptions`` field names without ``_timeout``."""

    START_TO_CLOSE = "start_to_close"
    SCHEDULE_TO_CLOSE = "schedule_to_close"
    SCHEDULE_TO_START = "schedule_to_start"
    HEARTBEAT = "heartbeat"

    def __str__(self) -> str:
        return self.value


#: Timeouts after which another attempt cannot help: the time for all attempts is spent, or
#: no worker took the activity from its queue (another attempt would wait there the same way).
_FINAL_TIMEOUTS = frozenset({TimeoutType.SCHEDULE_TO_CLOSE, TimeoutType.SCHEDULE_TO_START})


class ActivityTimeoutError(WorkflowError):
    """An activity attempt ran out of time; ``timeout_type`` says which timeout fired.

    Start-to-close and heartbeat timeouts are retried by the activity's retry options like any
    failure; schedule-to-close and schedule-to-start timeouts are permanent.
    """

    default_type = "ActivityTimeout"

    def __init__(self, message: str = "", *, timeout_type: TimeoutType | str, **kwargs: Any) -> None:
        kind = TimeoutType(timeout_type)
        kwargs.setdefault("permanent", kind in _FINAL_TIMEOUTS)
        super().__init__(message or f"activity timed out ({kind.value} timeout)", **kwargs)
        self.timeout_type = kind

    def to_info(self) -> ErrorInfo:
        return dataclasses.replace(super().to_info(), timeout_type=self.timeout_type.value)

    def _restore(self, info: ErrorInfo) -> None:
        try:
            self.timeout_type = TimeoutType(info.timeout_type)
        except ValueError:  # written by something else than this engine: say what we know
            self.timeout_type = TimeoutType.START_TO_CLOSE


class WorkflowTimedOut(WorkflowError):
    """The execution ran longer than its ``execution_timeout`` and was ended by the backend."""

    default_type = "WorkflowTimedOut"

    def __init__(self, message: str = "workflow execution timed out", **kwargs: Any) -> None:
        kwargs.setdefault("permanent", True)
        super().__init__(message, **kwargs)


class ChannelClosed(Exception):
    """Raised by ``Channel.receive`` when the channel is closed and drained."""

    def __init__(self) -> None:
        super().__init__("channel closed")


_ENGINE_ERROR_TYPES: dict[str, type[WorkflowError]] = {
    "PanicError": PanicError,
    "NondeterminismError": NondeterminismError,
    "DeadlockDetected": DeadlockDetected,
    "Canceled": Canceled,
    "ActivityAbandoned": ActivityAbandoned,
    "ActivityTimeout": ActivityTimeoutError,
    "WorkflowTimedOut": WorkflowTimedOut,
    "PayloadTooLarge": PayloadTooLarge,
}


def can_retry(err: BaseException) -> bool:
    """Whether ``err`` may be retried (go-workflows ``CanRetry``)."""
    if isinstance(err, WorkflowError):
        return not err.permanent
    return True


def one_line(exc: BaseException) -> str:
    """``Type: message`` on one line, for a log line (database drivers put hints on further
    lines); the traceback belongs at DEBUG."""
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def format_traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


# ---------------------------------------------------------------------------------------------
# Backend and client errors (go-workflows backend/errors.go, client/)


class BackendError(Exception):
    """Base class of errors raised by backends and the client."""


class InstanceNotFound(BackendError):
    def __init__(self, message: str = "workflow instance not found") -> None:
        super().__init__(message)


class InstanceFinished(InstanceNotFound):
    """The execution exists but has ended, so it takes no more signals or cancellations."""

    def __init__(self, message: str = "workflow instance already finished") -> None:
        super().__init__(message)


class InstanceAlreadyExists(BackendError):
    def __init__(self, message: str = "workflow instance already exists") -> None:
        super().__init__(message)


class InstanceNotFinished(BackendError):
    def __init__(self, message: str = "workflow instance is not finished") -> None:
        super().__init__(message)


class NotSupported(BackendError):
    def __init__(self, message: str) -> None:
        super().__init__(f"not supported: {message}")


class LeaseLost(BackendError):
    """The task's lease expired or another worker holds it now; this worker must drop the task."""

    def __init__(self, message: str = "task lease lost: it expired or another worker holds it") -> None:
        super().__init__(message)


class CompletionRejected(BackendError):
    """A workflow task tried to finish the workflow while new events were waiting for it.

    The worker drops its result; the next task replays with the new events (a signal sent
    while the final task ran is never accepted and then lost).
    """

    def __init__(self) -> None:
        super().__init__("new events arrived while the workflow was finishing; the task runs again")


class WorkflowTimeout(TimeoutError):
    def __init__(self, message: str = "workflow did not finish in specified timeout") -> None:
        super().__init__(message)


class WorkflowTerminated(WorkflowError):
    """The workflow was terminated by an operator; it produced no result."""

    default_type = "Terminated"


_ENGINE_ERROR_TYPES["Terminated"] = WorkflowTerminated

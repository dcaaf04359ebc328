"""Mock expectations for ``WorkflowTester`` (the part of go-workflows' ``tester/`` that uses
testify's ``mock.Mock`` for ``OnActivity`` and ``OnSubWorkflow``).

An expectation names an activity or sub-workflow, optionally the exact arguments it must be
called with, what it answers (a value, an exception, or a function of the arguments) and,
optionally, how many times it must be called. A call is answered by the first expectation for
that name whose arguments match and that has calls left; a call nothing answers fails the test
at once with ``UnexpectedCall``, listing what was expected.

Arguments are compared after they went through the converter, as the workflow's arguments did:
``on_activity(f, (1, 2))`` matches a call whose argument arrived as the JSON list ``[1, 2]``.
Matchers such as ``unittest.mock.ANY`` work in any position.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..engine.converter import Converter, PayloadError
from ..engine.errors import TimeoutType

_UNLIMITED = -1


class UnexpectedCall(AssertionError):
    """A mocked activity or sub-workflow was called in a way no expectation allows."""


class MockCall:
    """One expectation, configured fluently:
    ``tester.on_activity(charge, "order-1").returns(12).once()``.

    Without ``returns``/``raises``/``calls`` the mock returns ``None``; without ``times``/``once``
    it answers any number of calls and ``assert_expectations`` does not check it.
    """

    def __init__(self, kind: str, name: str, args: tuple[Any, ...] | None, converter: Converter) -> None:
        self.kind = kind
        self.name = name
        self._args = args
        self._expected_args = None if args is None else [_normalize(arg, converter) for arg in args]
        self._converter = converter
        self._answer: Callable[..., Any] = lambda *args: None
        self._answer_label = "returns None"
        self.expected_calls = _UNLIMITED
        #: How many calls this expectation answered.
        self.call_count = 0
        #: The mock never answers (``hangs``), or answers with this timeout (``times_out``).
        self.hang = False
        self.timeout_type: TimeoutType | None = None

    # -- configuration -----------------------------------------------------------------------

    def returns(self, value: Any = None) -> MockCall:
        """Answer with ``value`` (it must be convertible, like any activity result)."""
        try:
            self._converter.to_payload(value)
        except PayloadError as exc:
            raise TypeError(f"mock result for {self.kind} {self.name} cannot be stored: {exc}") from None
        self._answer = lambda *args: value
        self._answer_label = f"returns {value!r}"
        self.hang, self.timeout_type = False, None
        return self

    def raises(self, error: BaseException) -> MockCall:
        """Fail with ``error``; the workflow sees it as a ``WorkflowError`` keeping its type name
        and message (a ``PermanentError`` is not retried)."""
        if not isinstance(error, Exception):
            raise TypeError(f"raises() needs an exception instance, got {error!r}")

        def answer(*args: Any) -> Any:
            raise error

        self._answer = answer
        self._answer_label = f"raises {error!r}"
        self.hang, self.timeout_type = False, None
        return self

    def calls(self, fn: Callable[..., Any]) -> MockCall:
        """Answer with ``fn(*args)``: its return value, or the exception it raises."""
        if not callable(fn):
            raise TypeError(f"calls() needs a callable, got {fn!r}")
        self._answer = fn
        self._answer_label = f"calls {getattr(fn, '__name__', fn)!r}"
        self.hang, self.timeout_type = False, None
        return self

    def hangs(self) -> MockCall:
        """Never answer, like an activity that is stuck: its timeouts fire in workflow time
        (when time skips to them), and a cancellation request makes it answer ``Canceled``.
        Only for activities."""
        self._for_activities("hangs")
        self.hang, self.timeout_type = True, None
        self._answer_label = "hangs"
        return self

    def times_out(self, timeout_type: TimeoutType | str = TimeoutType.START_TO_CLOSE) -> MockCall:
        """Time out with ``timeout_type`` (a ``TimeoutType`` or its value) when that timeout of
        the activity fires in workflow time; the activity must have that timeout set. Also the
        way to see a schedule-to-start timeout, since the tester starts activities at once."""
        self._for_activities("times_out")
        self.hang, self.timeout_type = False, TimeoutType(timeout_type)
        self._answer_label = f"times out ({self.timeout_type.value})"
        return self

    def _for_activities(self, what: str) -> None:
        if self.kind != "activity":
            raise TypeError(f"{what}() is for mocked activities, not for a {self.kind}")

    def times(self, n: int) -> MockCall:
        """Answer exactly ``n`` calls; further calls go to the next matching expectation, and
        ``assert_expectations`` fails unless all ``n`` happened."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"times() needs a positive int, got {n!r}")
        self.expected_calls = n
        return self

    def once(self) -> MockCall:
        return self.times(1)

    # -- use ---------------------------------------------------------------------------------

    def matches(self, args: Sequence[Any]) -> bool:
        return self._expected_args is None or list(self._expected_args) == list(args)

    @property
    def used_up(self) -> bool:
        return self.expected_calls != _UNLIMITED and self.call_count >= self.expected_calls

    def answer(self, args: Sequence[Any]) -> Any:
        """Count the call and produce its outcome (a value, or the exception raised)."""
        self.call_count += 1
        return self._answer(*args)

    def describe(self) -> str:
        call = f"{self.name} with any arguments" if self._args is None else _format_call(self.name, self._args)
        expected = "" if self.expected_calls == _UNLIMITED else f", expected {_plural(self.expected_calls)}"
        return f"{call}: {self._answer_label}{expected}, called {_plural(self.call_count)}"


class MockSet:
    """The expectations for one kind of target (activities or sub-workflows), by name."""

    def __init__(self, kind: str, converter: Converter) -> None:
        self.kind = kind
        self._converter = converter
        self._calls: dict[str, list[MockCall]] = {}

    def add(self, name: str, args: tuple[Any, ...] | None) -> MockCall:
        call = MockCall(self.kind, name, args, self._converter)
        self._calls.setdefault(name, []).append(call)
        return call

    def is_mocked(self, name: str) -> bool:
        # As in go-workflows, a name that is mocked once never falls back to the real code.
        return name in self._calls

    def find(self, name: str, args: Sequence[Any]) -> MockCall:
        """The expectation that answers this call; ``UnexpectedCall`` when there is none."""
        candidates = self._calls.get(name, [])
        matching = [call for call in candidates if call.matches(args)]
        for call in matching:
            if not call.used_up:
                return call
        problem = "more often than expected" if matching else "with unexpected arguments"
        expected = "\n".join(f"  {call.describe()}" for call in candidates)
        raise UnexpectedCall(
            f"mocked {self.kind} called {problem}: {_format_call(name, args)}\nexpected calls:\n{expected}"
        )

    def unmet(self) -> list[str]:
        return [
            f"{self.kind} {call.describe()}"
            for calls in self._calls.values()
            for call in calls
            if call.expected_calls != _UNLIMITED and call.call_count != call.expected_calls
        ]


def _normalize(value: Any, converter: Converter) -> Any:
    """``value`` as it looks after a round trip through the converter; matchers stay as they are."""
    try:
        return converter.from_payload(converter.to_payload(value))
    except PayloadError:
        return value


def _format_call(name: str, args: Sequence[Any]) -> str:
    return f"{name}({', '.join(repr(arg) for arg in args)})"


def _plural(count: int) -> str:
    return f"{count} time" if count == 1 else f"{count} times"

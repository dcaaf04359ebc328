"""The registry (engine.registry): names, registration errors and argument checks, with
go-workflows' messages."""

from __future__ import annotations

from typing import Any

import pytest

from django_workflows.engine.registry import (
    ActivityNotFound,
    ArgumentMismatch,
    RegistrationError,
    Registry,
    WorkflowNotFound,
    check_arguments,
)


async def order(ctx: Any, order_id: str) -> str:
    return order_id


def charge(order_id: str, amount: int) -> int:
    return amount


def test_names_default_to_the_function_name() -> None:
    registry = Registry()
    registry.register_workflow(order)
    registry.register_activity(charge)
    assert registry.get_workflow("order") is order
    assert registry.get_activity("charge") is charge
    assert registry.workflow_name(order) == "order"
    assert registry.activity_name(charge) == "charge"
    # A name given as a string is taken as it is.
    assert registry.workflow_name("anything") == "anything"


def test_name_override() -> None:
    registry = Registry()
    registry.register_workflow(order, "orders.v2")
    registry.register_activity(charge, name="payments.charge")
    assert registry.get_workflow("orders.v2") is order
    assert registry.workflow_name(order) == "orders.v2"
    assert registry.activity_name(charge) == "payments.charge"
    with pytest.raises(WorkflowNotFound):
        registry.get_workflow("order")


def test_lambda_needs_a_name() -> None:
    registry = Registry()
    with pytest.raises(RegistrationError, match="cannot infer a name"):
        registry.register_activity(lambda: None)
    registry.register_activity(lambda: 1, name="one")
    assert registry.get_activity("one")() == 1


def test_duplicate_registration() -> None:
    registry = Registry()
    registry.register_workflow(order)
    registry.register_workflow(order)  # the same function again is fine

    async def other(ctx: Any) -> None:
        return None

    with pytest.raises(RegistrationError, match='workflow with name "order" already registered'):
        registry.register_workflow(other, "order")
    registry.register_activity(charge)
    with pytest.raises(RegistrationError, match='activity with name "charge" already registered'):
        registry.register_activity(lambda: None, name="charge")


def test_workflow_signature_rules() -> None:
    registry = Registry()
    with pytest.raises(RegistrationError, match="workflow is not a function"):
        registry.register_workflow(42)  # type: ignore[arg-type]

    def sync_workflow(ctx: Any) -> None:
        return None

    with pytest.raises(RegistrationError, match="must be an async function"):
        registry.register_workflow(sync_workflow)

    async def no_context() -> None:
        return None

    with pytest.raises(RegistrationError, match="does not accept context parameter"):
        registry.register_workflow(no_context)


def test_activity_object_methods_are_named_by_method() -> None:
    class Payments:
        def charge(self, amount: int) -> int:
            return amount

        def refund(self, amount: int) -> int:
            return -amount

        def _private(self) -> None:
            return None

    payments = Payments()
    registry = Registry()
    registry.register_activity(payments)
    assert registry.get_activity("refund")(3) == -3
    assert registry.activity_name(payments.charge) == "charge"
    with pytest.raises(ActivityNotFound):
        registry.get_activity("_private")
    with pytest.raises(RegistrationError, match="instance, not a class"):
        registry.register_activity(Payments)
    with pytest.raises(RegistrationError, match="name= cannot be used"):
        Registry().register_activity(payments, name="x")


def test_not_found_messages() -> None:
    registry = Registry()
    with pytest.raises(WorkflowNotFound, match="^workflow shipping not found$"):
        registry.get_workflow("shipping")
    with pytest.raises(ActivityNotFound, match="^activity not found: charge$"):
        registry.get_activity("charge")


def test_update_copies_registrations() -> None:
    source = Registry()
    source.register_workflow(order, "o")
    source.register_activity(charge)
    target = Registry()
    target.update(source)
    assert target.get_workflow("o") is order and target.get_activity("charge") is charge


# -- argument checks -----------------------------------------------------------------------------


def _message(fn: Any, args: tuple[Any, ...], *, skip_context: bool = False) -> str:
    with pytest.raises(ArgumentMismatch) as info:
        check_arguments(fn, args, skip_context=skip_context)
    return str(info.value)


def test_argument_count() -> None:
    assert _message(charge, ("o-1",)) == "mismatched argument count: expected 2, got 1"
    assert _message(charge, ("o-1", 1, 2)) == "mismatched argument count: expected 2, got 3"
    assert _message(order, (), skip_context=True) == "mismatched argument count: expected 1, got 0"
    check_arguments(order, ("o-1",), skip_context=True)

    def defaults(a: int, b: int = 2) -> None:
        return None

    def varargs(a: int, *rest: int) -> None:
        return None

    assert _message(defaults, (1, 2, 3)) == "mismatched argument count: expected 1 to 2, got 3"
    assert _message(varargs, ()) == "mismatched argument count: expected at least 1, got 0"
    check_arguments(varargs, (1, 2, 3, 4), skip_context=False)


def test_argument_types() -> None:
    assert _message(charge, ("o-1", "12")) == "mismatched argument type: expected int, got str"
    assert _message(charge, ("o-1", True)) == "mismatched argument type: expected int, got bool"
    assert _message(charge, (1, 12)) == "mismatched argument type: expected str, got int"

    def typed(ratio: float, flag: bool, items: list, mapping: dict, anything: Any) -> None:  # type: ignore[type-arg]
        return None

    check_arguments(typed, (1, True, (1, 2), {}, object()), skip_context=False)  # int is a float
    check_arguments(typed, (None, None, None, None, None), skip_context=False)  # None is not judged
    assert _message(typed, (1.0, 1, [], {}, 0)) == "mismatched argument type: expected bool, got int"
    assert _message(typed, (1.0, True, "ab", {}, 0)) == "mismatched argument type: expected list, got str"

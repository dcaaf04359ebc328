"""The ORM backend's named statements (``backends/orm/statements.py``) and its lease vocabulary
(``backends/orm/sql.py``), on the database of this run."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection

from django_workflows.backends.orm.sql import visible, visible_q
from django_workflows.backends.orm.statements import Dialect, Now, Statement
from django_workflows.engine.clock import utcnow
from django_workflows.models import Payload, PendingEvent
from django_workflows.models import WorkflowInstance as InstanceRow

from . import test_orm_support
from .test_orm_support import VENDOR, BackendMaker

orm = test_orm_support.orm  # the fixture

PLACEHOLDER = "?" if VENDOR == "sqlite" else "%s"


def _statement(text: str) -> Statement:
    return Statement("example", text, Dialect(connection))


def test_named_parameters_render_in_the_order_of_the_text() -> None:
    sql, params = _statement("SELECT %(b)s, %(a)s, %(b)s").render({"a": 1, "b": 2})
    assert sql == f"SELECT {PLACEHOLDER}, {PLACEHOLDER}, {PLACEHOLDER}"
    assert params == [2, 1, 2]


def test_a_missing_parameter_is_named_in_the_error() -> None:
    with pytest.raises(TypeError, match="statement example needs the parameter 'token'"):
        _statement("UPDATE t SET x = 1 WHERE lease_token = %(token)s").render({"row_id": 1})


def test_lists_expand_and_tuples_group() -> None:
    p = PLACEHOLDER
    sql, params = _statement("WHERE id IN (%(ids)s) VALUES %(rows)s").render(
        {"ids": [1, 2, 3], "rows": [(4, "a"), (5, "b")]}
    )
    assert sql == f"WHERE id IN ({p}, {p}, {p}) VALUES ({p}, {p}), ({p}, {p})"
    assert params == [1, 2, 3, 4, "a", 5, "b"]


def test_rows_of_one_statement_with_nulls_in_different_places_each_get_their_own_text() -> None:
    # Row texts are cached by the types of their items: a NULL moved to another column, or a
    # database clock in a row, must not reuse another row's text.
    p = PLACEHOLDER
    dialect = Dialect(connection)
    statement = Statement("rows", "VALUES %(rows)s", dialect)
    clock_text, clock_params = dialect.now_text(Now(timedelta(seconds=5)))
    for _ in range(2):  # the second time from the cache
        sql, params = statement.render({"rows": [(1, None, "a"), (None, 2, "b"), (3, 4, None), (5, Now(timedelta(seconds=5)), 6)]})
        assert sql == (
            f"VALUES ({p}, NULL, {p}), (NULL, {p}, {p}), ({p}, {p}, NULL), ({p}, {clock_text}, {p})"
        )
        assert params == [1, "a", 2, "b", 3, 4, 5, *clock_params, 6]
    # A plain IN list, and one with a NULL or a nested row in it, render as before.
    assert statement.render({"rows": [7, 8]}) == (f"VALUES {p}, {p}", [7, 8])
    assert statement.render({"rows": [7, None]}) == (f"VALUES {p}, NULL", [7])
    assert statement.render({"rows": [(7, 8), 9]}) == (f"VALUES ({p}, {p}), {p}", [7, 8, 9])


@pytest.mark.django_db
def test_a_none_is_written_as_null_so_every_database_can_type_it() -> None:
    # PostgreSQL with server-side binding cannot type a bound NULL that only `IS NULL` sees
    # ("could not determine data type of parameter"); as text, NULL takes its type from context.
    sql, params = _statement("SELECT CASE WHEN %(beat)s IS NULL THEN 1 ELSE 2 END").render(
        {"beat": None}
    )
    assert sql == "SELECT CASE WHEN NULL IS NULL THEN 1 ELSE 2 END"
    assert params == []
    with connection.cursor() as cursor:
        cursor.cursor.execute(sql, params)  # the driver's cursor, as HotSql runs statements
        assert cursor.fetchone()[0] == 1


def test_names_are_known_before_rendering() -> None:
    assert _statement("SELECT %(a)s WHERE x <= {now} AND y = %(b)s").names == {"a", "b"}


@pytest.mark.django_db
def test_now_is_the_database_clock_even_inside_a_row() -> None:
    sql, params = _statement("SELECT {now}, %(later)s").render({"later": Now(timedelta(hours=1))})
    with connection.cursor() as cursor:
        cursor.cursor.execute(sql, params)  # the driver's cursor, as HotSql runs statements
        now, later = cursor.fetchone()
    if isinstance(now, str):  # SQLite: Django's text form
        from django.utils.dateparse import parse_datetime

        now, later = parse_datetime(now), parse_datetime(later)
    assert now.replace(tzinfo=None) + timedelta(hours=1) - later.replace(tzinfo=None) < timedelta(seconds=5)


@pytest.mark.django_db(transaction=True)
def test_visible_and_visible_q_select_the_same_events(orm: BackendMaker) -> None:
    backend = orm()
    row = InstanceRow.objects.create(
        instance_id="visible", execution_id="e", active_instance_id="visible", workflow_name="w", queue="q",
        created_at=utcnow(),
    )
    payload = Payload.objects.create(id="p", instance=row, data="{}")
    for index, offset in enumerate((None, timedelta(hours=-1), timedelta(hours=1))):
        PendingEvent.objects.create(
            instance=row, payload=payload, event_id=f"e{index}", event_type="SignalReceived", timestamp=utcnow(),
            visible_at=None if offset is None else utcnow() + offset,
        )
    table = connection.ops.quote_name(PendingEvent._meta.db_table)
    statement = Statement("visible", f"SELECT event_id FROM {table} WHERE {visible()} ORDER BY event_id", Dialect(connection))
    sql, params = statement.render({})

    def by_sql() -> Any:
        with connection.cursor() as cursor:
            cursor.cursor.execute(sql, params)
            return [r[0] for r in cursor.fetchall()]

    by_q = list(PendingEvent.objects.filter(visible_q()).order_by("event_id").values_list("event_id", flat=True))
    assert by_q == by_sql() == ["e0", "e1"]
    assert backend.get_stats().pending_workflow_tasks == {"q": 1}

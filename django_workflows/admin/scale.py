"""What keeps the instance list fast on a store of 100,000 executions and a million history rows:
every query the list runs is bounded by an index or by a cap, none counts or sorts a whole table.

- ``EstimatedCountPaginator``: the list's count. An exact count only while it is small (it
  counts at most ``COUNT_CAP + 1`` rows through ``LIMIT``); above that PostgreSQL's estimate
  (``pg_class.reltuples`` for the whole table, the planner's row estimate of the filtered query
  otherwise), elsewhere "more than 10,000". The pagination line says which (``count_label``).
- ``capped_status_counts``: the counts above the list, one ``LIMIT``-ed count per status
  through the ``(state, outcome, created_at)`` index, in one query; "10,000+" above the cap.
- ``IndexedValuesFilter``: the workflow name and queue filters list their values by walking
  the column's index (a recursive query that jumps from one value to the next: as many index
  probes as there are values, at most ``VALUES_CAP``), not with ``SELECT DISTINCT`` over the table.
- ``date_hierarchy``: the creation-date drill-down, from the first and last creation time
  (two index probes) instead of ``SELECT DISTINCT`` of truncated dates over every row; it
  offers every year, month or day between them, without checking each for rows.
- ``search``: instance id prefix (in any case) and exact execution id, both through an index
  (migration 0008: ``UPPER(instance_id)``, with ``varchar_pattern_ops`` on PostgreSQL, and
  ``execution_id``); Django's ``^``/``=`` search compares ``UPPER()`` of both columns.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable
from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Q, QuerySet
from django.db.models.functions import Upper
from django.utils import formats, timezone
from django.utils.functional import cached_property
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from ..engine.core import InstanceState
from ..models import HistoryEvent, Outcome, WorkflowInstance

#: Rows counted exactly; above this the list and the status counts say "more than" (or, on
#: PostgreSQL, give the planner's estimate).
COUNT_CAP = 10_000
#: Most values a value filter (workflow name, queue) offers.
VALUES_CAP = 100


def capped_count(queryset: QuerySet[Any], cap: int | None = None) -> int:
    """``min(count, cap + 1)``: counts at most ``cap + 1`` rows (``COUNT(*)`` of a ``LIMIT``-ed
    subquery); ``cap`` defaults to ``COUNT_CAP`` (read at the call: tests lower it)."""
    cap = COUNT_CAP if cap is None else cap
    # values("pk"): the list's annotations (the delayed-start EXISTS) are not computed per row.
    return int(queryset.order_by().values("pk")[: cap + 1].count())


def unbounded_counts(statements: Iterable[str]) -> list[str]:
    """The statements that count rows of a whole instances or history table: a ``COUNT`` with
    neither ``WHERE`` nor ``LIMIT`` (what the list must never run; tests and the bench check it)."""
    tables = (WorkflowInstance._meta.db_table, HistoryEvent._meta.db_table)
    found = []
    for sql in statements:
        upper = sql.upper()
        if "COUNT(" in upper and any(t in sql for t in tables) and " WHERE " not in upper and " LIMIT " not in upper:
            found.append(sql)
    return found


def pg_estimate(queryset: QuerySet[Any]) -> int:
    """PostgreSQL's estimate of the rows of ``queryset``: ``reltuples`` of the table when it is
    not filtered, else the planner's estimate (EXPLAIN, not run)."""
    connection = connections[queryset.db]
    with connection.cursor() as cursor:
        if not queryset.query.where:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [queryset.model._meta.db_table]
            )
            row = cursor.fetchone()
            # -1: never vacuumed or analyzed (a new table); the caller falls back on the cap.
            return max(int(row[0]), 0) if row else 0
        sql, params = queryset.order_by().values("pk").query.sql_with_params()
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0]
        plan = json.loads(plan) if isinstance(plan, str) else plan
        return int(plan[0]["Plan"]["Plan Rows"])


class EstimatedCountPaginator(Paginator):
    """The instance list's paginator: exact counts up to ``COUNT_CAP``, estimates above (see
    the module docstring). ``approximate`` says the count is not exact; ``count_label`` is what
    the pagination line shows."""

    approximate = False

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return super().count
        vendor = connections[queryset.db].vendor
        if vendor == "postgresql" and not queryset.query.where:
            # The whole table: no need to count the first 10,000 to know it is big.
            estimate = pg_estimate(queryset)
            if estimate > COUNT_CAP:
                self.approximate = True
                return estimate
        counted = capped_count(queryset)
        if counted <= COUNT_CAP:
            return counted
        self.approximate = True
        if vendor == "postgresql":
            return max(pg_estimate(queryset), counted)
        return counted

    @property
    def count_label(self) -> str:
        count = self.count
        if not self.approximate:
            return formats.number_format(count)
        if count > COUNT_CAP + 1:
            return str(_("about %(count)s") % {"count": formats.number_format(count, force_grouping=True)})
        return str(_("more than %(count)s") % {"count": formats.number_format(COUNT_CAP, force_grouping=True)})


#: Status key -> the rows of that status (as ``admin.display.status_key`` names them, without
#: the ``scheduled``/``blocked`` split the list filter makes).
_STATUS_FILTERS: dict[str, dict[str, Any]] = {
    "running": {"state": InstanceState.ACTIVE.value},
    "continued_as_new": {"state": InstanceState.CONTINUED_AS_NEW.value},
    **{
        str(outcome): {"state": InstanceState.FINISHED.value, "outcome": str(outcome)}
        for outcome in (Outcome.COMPLETED, Outcome.FAILED, Outcome.CANCELED, Outcome.TERMINATED, Outcome.TIMED_OUT)
    },
}


def capped_status_counts(using: str, cap: int | None = None) -> dict[str, int]:
    """Executions per status key, each counted up to ``cap + 1`` (default ``COUNT_CAP``)
    through the status index, in one query (a ``UNION ALL`` of ``LIMIT``-ed counts)."""
    cap = COUNT_CAP if cap is None else cap
    # values("state"): a column of the index, so PostgreSQL counts in the index alone.
    rows = WorkflowInstance.objects.using(using).order_by().values("state")
    parts = [(key, rows.filter(**lookup)[: cap + 1]) for key, lookup in _STATUS_FILTERS.items()]
    connection = connections[using]
    statements, params = [], []
    for index, (_key, part) in enumerate(parts):
        sql, part_params = part.query.sql_with_params()
        statements.append(f"SELECT {index}, COUNT(*) FROM ({sql}) s{index}")
        params.extend(part_params)
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(statements), params)
        found = dict(cursor.fetchall())
    return {key: int(found.get(index, 0)) for index, (key, _part) in enumerate(parts)}


def count_text(count: int, cap: int | None = None) -> str:
    """A status count as the list shows it: ``"10,000+"`` above the cap (default ``COUNT_CAP``)."""
    cap = COUNT_CAP if cap is None else cap
    if count > cap:
        return formats.number_format(cap, force_grouping=True) + "+"
    return str(count)


def indexed_values(
    queryset: QuerySet[Any], column: str, cap: int = VALUES_CAP, state: int | None = None
) -> list[Any]:
    """The distinct values of an indexed ``column`` of the whole table (of the rows in ``state``:
    through the claim index, which starts with state), in order, by a loose index scan: each
    step finds the next larger value through the index (a recursive CTE on PostgreSQL and
    SQLite), instead of reading every row as ``SELECT DISTINCT`` does there. MariaDB/MySQL run a
    ``GROUP BY`` on an index prefix as a loose index scan themselves ("Using index for
    group-by"), while in their recursive CTE the correlated ``MIN`` scans the whole index at
    every step (135 ms against 0.2 ms at 18,000 rows). With ``state`` the group is
    ``state, column``: a leftmost prefix of the claim index, which a loose scan needs."""
    connection = connections[queryset.db]
    table = connection.ops.quote_name(queryset.model._meta.db_table)
    col = connection.ops.quote_name(queryset.model._meta.get_field(column).column)
    where, params = ("", []) if state is None else (f" AND {connection.ops.quote_name('state')} = %s", [state])
    if connection.vendor == "mysql":
        group = col if state is None else f"{connection.ops.quote_name('state')}, {col}"
        sql = f"SELECT {col} FROM {table} WHERE {col} IS NOT NULL{where} GROUP BY {group} ORDER BY {col} LIMIT %s"
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, cap])
            return [row[0] for row in cursor.fetchall()]
    sql = (
        f"WITH RECURSIVE wf_values(v, n) AS ("
        f" SELECT MIN({col}), 1 FROM {table} WHERE 1 = 1{where}"
        f" UNION ALL SELECT (SELECT MIN({col}) FROM {table} WHERE {col} > wf_values.v{where}), n + 1"
        f" FROM wf_values WHERE wf_values.v IS NOT NULL AND n < %s"
        f") SELECT v FROM wf_values WHERE v IS NOT NULL ORDER BY v"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *params, cap])
        return [row[0] for row in cursor.fetchall()]


class IndexedValuesFilter(admin.AllValuesFieldListFilter):
    """Django's "all values" filter, its values read by ``indexed_values`` (Django's runs
    ``SELECT DISTINCT`` over the table)."""

    def __init__(self, field: Any, request: Any, params: Any, model: Any, model_admin: Any, field_path: str) -> None:
        # Skip AllValuesFieldListFilter.__init__ (the DISTINCT query), keep what it sets up.
        self.lookup_kwarg = field_path
        self.lookup_kwarg_isnull = f"{field_path}__isnull"
        self.lookup_val = params.get(self.lookup_kwarg)
        self.lookup_val_isnull = params.get(self.lookup_kwarg_isnull)
        self.empty_value_display = model_admin.get_empty_value_display()
        queryset = model_admin.get_queryset(request)
        self.lookup_choices = indexed_values(queryset, field.name)
        admin.FieldListFilter.__init__(self, field, request, params, model, model_admin, field_path)


def search(queryset: QuerySet[Any], term: str) -> QuerySet[Any]:
    """Rows whose instance id starts with ``term`` (in any case) or whose execution id is
    ``term``, through indexes: ``UPPER(instance_id)`` (``models.PrefixSearchIndex``) and
    ``execution_id`` (execution ids are lowercase hex: compared exactly, not through UPPER)."""
    prefix = Q(instance_id__istartswith=term)
    if connections[queryset.db].vendor == "sqlite" and term.isascii():
        # SQLite's LIKE uses no index; the same prefix as a range of UPPER(instance_id) uses
        # the expression index, and the LIKE keeps the meaning exact. ASCII only: SQLite's
        # UPPER leaves other letters as they are, Python's would not.
        upper = term.upper()
        queryset = queryset.alias(wf_upper_id=Upper("instance_id"))
        prefix &= Q(wf_upper_id__gte=upper, wf_upper_id__lt=upper[:-1] + chr(ord(upper[-1]) + 1))
    return queryset.filter(prefix | Q(execution_id=term.lower()))


def date_hierarchy(cl: Any) -> dict[str, Any] | None:
    """The context of ``admin/date_hierarchy.html``, as Django's ``date_hierarchy`` tag makes
    it, but from the first and last value of the field (two ``ORDER BY ... LIMIT 1`` queries
    through its index) instead of ``SELECT DISTINCT`` over every row: every year, month or day
    between the two is offered."""
    if not cl.date_hierarchy:
        return None
    field_name = cl.date_hierarchy
    year_field, month_field, day_field = f"{field_name}__year", f"{field_name}__month", f"{field_name}__day"
    year_lookup, month_lookup, day_lookup = (cl.params.get(name) for name in (year_field, month_field, day_field))

    def link(filters: dict[str, Any]) -> str:
        return str(cl.get_query_string(filters, [f"{field_name}__"]))

    def local(value: Any) -> Any:
        if isinstance(value, datetime.datetime) and timezone.is_aware(value):
            return timezone.localtime(value)
        return value

    rows = cl.queryset.order_by().exclude(**{f"{field_name}__isnull": True}).values_list(field_name, flat=True)
    first, last = local(rows.order_by(field_name).first()), local(rows.order_by(f"-{field_name}").first())
    if not (year_lookup or month_lookup or day_lookup) and first and last and first.year == last.year:
        year_lookup = str(first.year)
        if first.month == last.month:
            month_lookup = str(first.month)
    if year_lookup and month_lookup and day_lookup:
        day = datetime.date(int(year_lookup), int(month_lookup), int(day_lookup))
        return {
            "show": True,
            "back": {
                "link": link({year_field: year_lookup, month_field: month_lookup}),
                "title": capfirst(formats.date_format(day, "YEAR_MONTH_FORMAT")),
            },
            "choices": [{"title": capfirst(formats.date_format(day, "MONTH_DAY_FORMAT"))}],
        }
    if not (first and last):
        return {"show": True, "back": {"link": link({}), "title": _("All dates")} if year_lookup else None, "choices": []}
    if year_lookup and month_lookup:
        year, month = int(year_lookup), int(month_lookup)
        days = [datetime.date(year, month, day) for day in range(first.day, last.day + 1)]
        return {
            "show": True,
            "back": {"link": link({year_field: year_lookup}), "title": str(year_lookup)},
            "choices": [
                {
                    "link": link({year_field: year_lookup, month_field: month_lookup, day_field: day.day}),
                    "title": capfirst(formats.date_format(day, "MONTH_DAY_FORMAT")),
                }
                for day in days
            ],
        }
    if year_lookup:
        year = int(year_lookup)
        months = [datetime.date(year, month, 1) for month in range(first.month, last.month + 1)]
        return {
            "show": True,
            "back": {"link": link({}), "title": _("All dates")},
            "choices": [
                {
                    "link": link({year_field: year_lookup, month_field: month.month}),
                    "title": capfirst(formats.date_format(month, "YEAR_MONTH_FORMAT")),
                }
                for month in months
            ],
        }
    return {
        "show": True,
        "back": None,
        "choices": [
            {"link": link({year_field: str(year)}), "title": str(year)} for year in range(first.year, last.year + 1)
        ],
    }

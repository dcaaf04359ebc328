"""Template filters of the workflow admin pages (``{% load workflows_admin %}``).

``wf_time`` renders every time on those pages the same way (``admin.display.time_parts``): a
``<time>`` element with the ISO 8601 value in ``datetime`` and ``title``, the local time to the
second, and the milliseconds in a smaller span.
"""

from __future__ import annotations

import inspect
from datetime import datetime
from typing import Any

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from ..admin.display import time_parts

register = template.Library()


@register.filter
def wf_time(value: Any) -> SafeString | str:
    if not isinstance(value, datetime):
        return "—"
    machine, main, millis = time_parts(value)
    return format_html('<time class="wf-time" datetime="{}" title="{}">{}<span class="wf-ms">{}</span></time>',
                       machine, machine, main, millis)


@register.tag(name="wf_date_hierarchy")
def wf_date_hierarchy_tag(parser: Any, token: Any) -> Any:
    """Django's ``{% date_hierarchy cl %}`` without its ``SELECT DISTINCT`` over every row
    (``admin.scale.date_hierarchy``); the instance list's change_list.html uses it."""
    from django.contrib.admin.templatetags.base import InclusionAdminNode

    from ..admin.scale import date_hierarchy

    # Django 6.1 added the tag's name as the first argument (for its error messages).
    named = "name" in inspect.signature(InclusionAdminNode.__init__).parameters
    head = ("wf_date_hierarchy", parser, token) if named else (parser, token)
    return InclusionAdminNode(*head, func=date_hierarchy, template_name="date_hierarchy.html", takes_context=False)

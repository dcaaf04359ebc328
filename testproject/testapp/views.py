"""Views the tests call through Django's test client: enqueue a task in a transaction that
commits or rolls back, the way an application's view would."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_POST

from .tasks import add


class _RollBack(Exception):
    pass


@require_POST
def enqueue_add(request: HttpRequest) -> JsonResponse:
    """Enqueue ``add(a, b)``; with ``rollback=1`` the view's transaction rolls back afterwards."""
    result_id = ""
    try:
        with transaction.atomic():
            result = add.enqueue(int(request.POST["a"]), int(request.POST["b"]))
            result_id = result.id
            if request.POST.get("rollback"):
                raise _RollBack
    except _RollBack:
        return JsonResponse({"id": result_id, "committed": False}, status=409)
    return JsonResponse({"id": result_id, "committed": True, "status": str(result.status)})

"""The example shop's one model: an order whose life is driven by ``order_workflow``."""

from __future__ import annotations

from django.db import models


class Order(models.Model):
    class Status(models.TextChoices):
        NEW = "new", "New"
        AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        SHIPPED = "shipped", "Shipped"

    item = models.CharField(max_length=200)
    quantity = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.NEW)
    reminders_sent = models.PositiveIntegerField(default=0)
    tracking_number = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Order {self.pk}: {self.quantity} x {self.item}"

    @property
    def workflow_instance_id(self) -> str:
        return f"order-{self.pk}"

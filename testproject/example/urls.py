from django.urls import path

from . import views

app_name = "example"

urlpatterns = [
    path("", views.index, name="index"),
    path("instances/<str:instance_id>/", views.instance, name="instance"),
    path("orders/", views.orders, name="orders"),
    path("orders/<int:pk>/", views.order, name="order"),
]

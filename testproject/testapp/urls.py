from django.urls import path

from . import views

app_name = "testapp"

urlpatterns = [
    path("tasks/add/", views.enqueue_add, name="enqueue-add"),
]

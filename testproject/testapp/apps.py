from django.apps import AppConfig


class TestAppConfig(AppConfig):
    name = "testproject.testapp"
    label = "testapp"
    verbose_name = "Test workflows"

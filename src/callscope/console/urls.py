"""Console pages."""

from django.urls import path

from callscope.console import views

app_name = "console"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
]

"""Console pages."""

from django.urls import path
from django.views.i18n import set_language

from callscope.console import calls, dashboards, playback, views

app_name = "console"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("language", set_language, name="set_language"),
    path("calls/", calls.search, name="search"),
    path("calls/export.<str:fmt>", calls.export, name="export"),
    path("calls/<int:call_id>/", calls.call_detail, name="call_detail"),
    path("calls/<int:call_id>/audio.ogg", playback.call_audio, name="call_audio"),
    path("capture/", views.health, name="health"),
    path("dashboards/", dashboards.overview, name="dashboards"),
    path("dashboards/sections/", dashboards.units, name="dashboard_units"),
    path("dashboards/times/", dashboards.distributions, name="dashboard_distributions"),
    path("dashboards/matrix/", dashboards.matrix, name="dashboard_matrix"),
    path("dashboards/report.pdf", dashboards.report, name="dashboard_report"),
    path("dashboards/<str:table>.<str:fmt>", dashboards.export, name="dashboard_export"),
]

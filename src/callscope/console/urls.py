"""Console pages."""

from django.urls import path
from django.views.i18n import set_language

from callscope.console import calls, dashboards, directory, playback, views

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
    path("directory/", directory.directory, name="directory"),
    path("directory/export.csv", directory.directory_export, name="directory_export"),
    path("directory/import/", directory.directory_import, name="directory_import"),
    path("directory/new/", directory.entry_new, name="directory_entry_new"),
    path("directory/<int:entry_id>/", directory.entry_detail, name="directory_entry"),
    path("directory/<int:entry_id>/change/", directory.entry_change, name="directory_entry_change"),
    path("directory/<int:entry_id>/end/", directory.entry_end, name="directory_entry_end"),
]

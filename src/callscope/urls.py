"""Top-level URL configuration: authentication pages and the console."""

from django.urls import include, path

urlpatterns = [
    path("accounts/", include("callscope.accounts.urls")),
    path("", include("callscope.console.urls")),
]

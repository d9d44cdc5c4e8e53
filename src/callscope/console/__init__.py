"""The web console, Japanese first: Django views and templates (htmx from django-htmx, no
CDN) for search, call detail and playback, dashboards, the evidence workflow and
administration. It reads the store and analytics and changes state only through `do_*`
actions.
"""

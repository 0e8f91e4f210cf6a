"""dashboard_kit: what every server-rendered aTES page shares on screen.

- :mod:`dashboard_kit.pages`: the frame (``shared_templates/``), the common look
  (``shared_static/``), the links between the dashboards, the page filters and
  :class:`~dashboard_kit.pages.DashboardPages`, which renders a dashboard's pages;
- :mod:`dashboard_kit.forms`: the signed cookies of forms: the CSRF guard and one-time
  notices carried across a redirect.

The dashboards and the provider's pages use it. It may use :mod:`auth_client` (who is
signed in) but never the provider (``auth``) nor any service (``tests/test_boundaries.py``
checks it).
"""

"""auth: accounts and single sign-on (an OAuth 2.1 / OpenID Connect provider) for aTES.

Other services use only its client side (``tests/test_boundaries.py`` checks it):
:mod:`auth.client` (sign-in, token checks), :mod:`auth.dashboard_ui` (what the dashboards
share) and :mod:`auth.replica` (their replica of auth's accounts).
"""

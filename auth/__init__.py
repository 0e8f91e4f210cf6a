"""auth: accounts and single sign-on (an OAuth 2.1 / OpenID Connect provider) for aTES.

No other service imports it (``tests/test_boundaries.py`` checks it): they sign in, check
tokens and keep their replica of the accounts with :mod:`auth_client`, and draw their pages
with :mod:`dashboard_kit`, which the provider's own pages use too.
"""

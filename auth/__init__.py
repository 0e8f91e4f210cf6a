"""auth: accounts and single sign-on (an OAuth 2.1 / OpenID Connect provider) for aTES.

Other services use only :mod:`auth.client` (sign-in) and :mod:`auth.replica` (their
replica of auth's accounts).
"""

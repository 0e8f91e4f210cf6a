"""auth_client: what a service needs to trust aTES sign-in, without the provider's code.

- :mod:`auth_client.settings`: the ``ATES_*`` variables the provider and its clients both
  read (the provider's URL, the dashboards' URLs and ports, the OAuth clients and their
  secrets, the audience, the command-line client);
- :mod:`auth_client.verification`: checking the provider's tokens against its published
  keys, and :class:`~auth_client.verification.CurrentUser`, who is calling;
- :mod:`auth_client.guards`: FastAPI dependencies that say who is calling and whether
  they may;
- :mod:`auth_client.sign_in`: signing a dashboard's browsers in and out at the provider;
- :mod:`auth_client.replica`: a service's replica of auth's accounts, kept from its events;
- :mod:`auth_client.pkce` and :mod:`auth_client.token_flow`: getting tokens without a
  browser (the ``ates token`` command, benchmarks and tests).

The services import it, and so does the provider; it never imports the provider (``auth``)
nor any service (``tests/test_boundaries.py`` checks it).
"""

"""The platform kit every service stands on: settings, database sessions, logs, metrics,
tracing, the HTTP app factory and its page helpers, migrations and live updates.

It knows no service and no event: messaging builds on it, services build on both.
"""

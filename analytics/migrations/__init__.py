"""The analytics database's migrations (``versions/``), and alongside them the messaging
tables' branch (outbox, inbox)."""

ALONGSIDE = ("messaging.migrations",)

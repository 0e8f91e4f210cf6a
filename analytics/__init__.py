"""The analytics service: an admin-only dashboard projected from the event streams."""

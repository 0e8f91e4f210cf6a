"""tasks: the task tracker: random assignment, reshuffles, completion, task events."""

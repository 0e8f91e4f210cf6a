"""The rules of the task tracker, free of I/O: who gets tasks, what a task may look like,
who may do what. The service layer applies them inside its transactions."""

from __future__ import annotations

import random
import re
from uuid import UUID

ADMIN = "admin"
MANAGER = "manager"
ACCOUNTANT = "accountant"
WORKER = "worker"
ROLES = (ADMIN, MANAGER, ACCOUNTANT, WORKER)

NEVER_ASSIGNED_ROLES = frozenset({ADMIN, MANAGER})
ASSIGNABLE_ROLES = tuple(role for role in ROLES if role not in NEVER_ASSIGNED_ROLES)
RESHUFFLE_ROLES = frozenset({ADMIN, MANAGER})

OPEN = "open"
DONE = "done"
STATUSES = (OPEN, DONE)

TITLE_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 10_000
JIRA_ID_PATTERN = r"^[A-Z][A-Z0-9]+-[0-9]+$"
_JIRA_ID = re.compile(JIRA_ID_PATTERN)
_BRACKETS = frozenset("[]")

class TaskError(Exception):
    """Base of the domain errors; the message is meant for the person who asked."""


class ValidationError(TaskError):
    """The input breaks a rule (title, Jira key, filters...)."""


class NoEligibleAssignee(TaskError):
    def __init__(self) -> None:
        super().__init__(
            "no one can take the task: there is no active account whose role is "
            "neither admin nor manager"
        )


class TaskNotFound(TaskError):
    def __init__(self, task_id: UUID | str) -> None:
        super().__init__(f"task {task_id} does not exist")


class NotAssignee(TaskError):
    def __init__(self, task_id: UUID | str) -> None:
        super().__init__(f"only the current assignee may complete task {task_id}")


class AlreadyDone(TaskError):
    def __init__(self, task_id: UUID | str) -> None:
        super().__init__(f"task {task_id} is already done")


class Forbidden(TaskError):
    """The actor's role does not allow the action."""


def is_eligible_assignee(role: str | None, active: bool, deleted: bool) -> bool:
    """Only active, existing accounts that are neither admin nor manager get tasks."""
    return active and not deleted and role in ASSIGNABLE_ROLES


def validate_title(title: str) -> str:
    """The title without surrounding whitespace; a Jira key belongs in its own field."""
    cleaned = title.strip()
    if not cleaned:
        raise ValidationError("title is required")
    if len(cleaned) > TITLE_MAX_LENGTH:
        raise ValidationError(f"title must be at most {TITLE_MAX_LENGTH} characters")
    if not _BRACKETS.isdisjoint(cleaned):
        raise ValidationError(
            "title must not contain [ or ]: put the Jira key (like UBERPOP-42) in jira_id"
        )
    return cleaned


def validate_jira_id(jira_id: str | None) -> str | None:
    """``None`` or a key like ``UBERPOP-42`` (typed in any case; stored upper-case)."""
    if jira_id is None or not jira_id.strip():
        return None
    key = jira_id.strip().upper()
    if not _JIRA_ID.match(key):
        raise ValidationError(f"jira_id must look like UBERPOP-42, not {jira_id.strip()!r}")
    return key


def validate_description(description: str | None) -> str | None:
    if description is None or not description.strip():
        return None
    if len(description) > DESCRIPTION_MAX_LENGTH:
        raise ValidationError(f"description must be at most {DESCRIPTION_MAX_LENGTH} characters")
    return description


# A draw is far wider than any pool of assignees, so that the database can reduce it to a
# slot (``slot_of``) in the statement that reads the pool's size: a pick is then one round
# trip, and ``draw % pool_size`` is uniform to within pool_size / 2**62.
DRAW_BITS = 62


def draw(rng: random.Random) -> int:
    """A uniformly random number of ``DRAW_BITS`` bits, to be reduced to a slot."""
    return rng.getrandbits(DRAW_BITS)


def slot_of(drawn: int, pool_size: int) -> int:
    """The slot 1..``pool_size`` that ``drawn`` picks (the pick query computes the same)."""
    if pool_size < 1:
        raise NoEligibleAssignee()
    return 1 + drawn % pool_size


def choose_slot(pool_size: int, rng: random.Random) -> int:
    """A uniformly random slot of a pool of eligible assignees numbered 1..``pool_size``."""
    return slot_of(draw(rng), pool_size)


def may_reshuffle(role: str) -> bool:
    return role in RESHUFFLE_ROLES


def ensure_may_reshuffle(role: str) -> None:
    if not may_reshuffle(role):
        raise Forbidden("only admins and managers may reshuffle tasks")


def ensure_may_complete(task_id: UUID, status: str, assignee_id: UUID, actor_id: UUID) -> None:
    if assignee_id != actor_id:
        raise NotAssignee(task_id)
    if status == DONE:
        raise AlreadyDone(task_id)


def validate_status(status: str | None) -> str | None:
    if status is not None and status not in STATUSES:
        raise ValidationError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    return status

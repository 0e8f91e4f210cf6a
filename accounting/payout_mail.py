"""The payout mail: amount paid, and that day's fees and rewards with their tasks.

Closing a day only queues a mail per payout; the mailer composes it here, in the
database, right before its first attempt. The day is closed by then, so its transactions
are final, and a task title that reached accounting after the close still shows.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

SUBJECT = "Your aTES payout for %s: %s"
TEXT_BODY = (
    "Hello %s,\n\n"
    "you have been paid %s for %s.\n\n"
    "Your fees and rewards of that day:\n%s\n\n"
    "aTES accounting\n"
)
TEXT_LINE = "  %-6s %10s  %s"
HTML_BODY = (
    "<html><body><p>Hello %s,</p>"
    "<p>you have been paid <strong>%s</strong> for %s.</p>"
    "<p>Your fees and rewards of that day:</p>"
    "<table><tr><th>type</th><th>amount</th><th>task</th></tr>%s</table>"
    "<p>aTES accounting</p></body></html>"
)
HTML_LINE = "<tr><td>%s</td><td>%s</td><td>%s</td></tr>"
NO_LINES = "none"


def _money(cents: str) -> str:
    """SQL for ``-$12.34`` from an expression in cents."""
    return (
        f"(CASE WHEN ({cents}) < 0 THEN '-' ELSE '' END || '$' || (abs({cents}) / 100)::text"
        f" || '.' || lpad((abs({cents}) % 100)::text, 2, '0'))"
    )


def _html(value: str) -> str:
    """SQL escaping the text of ``value`` for HTML."""
    escaped = value
    for char, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;")):
        escaped = f"replace({escaped}, '{char}', '{entity}')"
    return escaped


# The task of a fee or reward; a correction adds its reason (an adjustment has no task).
_TASK_LABEL = (
    "concat_ws(': ', coalesce('[' || k.jira_id || '] ', '')"
    " || coalesce(k.title, 'task ' || t.task_id::text), t.reason)"
)
_TEMPLATES = {
    "subject": SUBJECT,
    "text_body": TEXT_BODY,
    "text_line": TEXT_LINE,
    "html_body": HTML_BODY,
    "html_line": HTML_LINE,
    "no_lines": NO_LINES,
}
_NAME = "coalesce(a.full_name, 'popug')"

_COMPOSE = text(
    f"""
    WITH m AS (
        SELECT {", ".join(f"CAST(:{name} AS text) AS {name}" for name in _TEMPLATES)}
    ),
    paid AS (
        SELECT e.payout_id, p.account_id, p.day, p.amount, {_NAME} AS name
        FROM payout_emails e JOIN payouts p ON p.id = e.payout_id
        LEFT JOIN accounts a ON a.public_id = p.account_id
        WHERE e.payout_id = :payout_id
    ),
    lines AS (
        SELECT string_agg(format(m.text_line, t.type, {_money("t.amount")}, {_TASK_LABEL}),
                          E'\\n' ORDER BY t.id) AS text_lines,
               string_agg(
                   format(m.html_line, t.type, {_money("t.amount")}, {_html(_TASK_LABEL)}),
                   '' ORDER BY t.id
               ) AS html_lines
        FROM paid
        JOIN transactions t ON t.account_id = paid.account_id AND t.day = paid.day
        LEFT JOIN tasks k ON k.public_id = t.task_id
        CROSS JOIN m
        WHERE t.type <> 'payout'
    )
    UPDATE payout_emails e SET
        subject = format(m.subject, paid.day::text, {_money("paid.amount")}),
        text_body = format(m.text_body, paid.name, {_money("paid.amount")}, paid.day::text,
                           coalesce(l.text_lines, '  ' || m.no_lines)),
        html_body = format(m.html_body, {_html("paid.name")}, {_money("paid.amount")},
                           paid.day::text,
                           coalesce(l.html_lines, format(m.html_line, m.no_lines, '', '')))
    FROM paid CROSS JOIN m CROSS JOIN lines l
    WHERE e.payout_id = paid.payout_id
    """
)


def compose(session: Session, payout_id: int) -> None:
    """Write the subject and both bodies of the queued mail of payout ``payout_id``."""
    session.execute(_COMPOSE, {"payout_id": payout_id, **_TEMPLATES})

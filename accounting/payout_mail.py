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
# The HTML part is laid out with tables and styled inline only: mail clients drop <style>
# blocks and ignore most layout CSS. ``%%`` is a literal percent sign for format().
_CELL = "padding:8px;border-top:1px solid #d5dde2;vertical-align:top;"
_HEAD = "padding:8px;font-size:12px;color:#5b6b75;text-transform:uppercase;"
HTML_BODY = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    "<title>Your aTES payout</title></head>"
    '<body style="margin:0;padding:0;background-color:#f4f7f6;">'
    '<table role="presentation" width="100%%" cellpadding="0" cellspacing="0" border="0"'
    ' style="width:100%%;background-color:#f4f7f6;">'
    '<tr><td align="center" style="padding:24px 12px;">'
    '<table role="presentation" width="600" cellpadding="0" cellspacing="0" border="0"'
    ' style="width:100%%;max-width:600px;background-color:#ffffff;border:1px solid #d5dde2;'
    'font-family:Arial,Helvetica,sans-serif;color:#1d2a33;">'
    '<tr><td style="padding:16px 24px;background-color:#1f7a5a;color:#ffffff;font-size:18px;'
    'font-weight:bold;">aTES accounting</td></tr>'
    '<tr><td style="padding:24px;font-size:16px;line-height:24px;">'
    '<p style="margin:0 0 12px;">Hello %s,</p>'
    '<p style="margin:0 0 16px;">you have been paid <strong>%s</strong> for %s.</p>'
    '<p style="margin:0 0 8px;">Your fees and rewards of that day:</p>'
    '<table width="100%%" cellpadding="0" cellspacing="0" border="0"'
    ' style="width:100%%;border-collapse:collapse;font-size:14px;line-height:20px;">'
    f'<tr><th align="left" style="{_HEAD}">Type</th>'
    f'<th align="right" style="{_HEAD}">Amount</th>'
    f'<th align="left" style="{_HEAD}">Task</th></tr>'
    "%s</table></td></tr>"
    '<tr><td style="padding:16px 24px;border-top:1px solid #d5dde2;font-size:12px;'
    'color:#5b6b75;">aTES accounting: this mail is sent when a day is closed.</td></tr>'
    "</table></td></tr></table></body></html>"
)
HTML_LINE = (
    f'<tr><td style="{_CELL}">%s</td>'
    f'<td align="right" style="{_CELL}white-space:nowrap;">%s</td>'
    f'<td style="{_CELL}">%s</td></tr>'
)
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

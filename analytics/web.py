"""The admin dashboard: today's figures, the most expensive tasks around a chosen date and
a per-day chart drawn as inline SVG (no script, no external asset)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from analytics.api import HISTORY_DEFAULT_DAYS, BadRequest, parse_day
from analytics.domain import ChartDay, Period, chart_geometry, format_cents
from analytics.service import Analytics, DayHistory
from auth.dashboard_ui import Visitor

TEMPLATES = Path(__file__).parent / "templates"
templates = Jinja2Templates(directory=str(TEMPLATES))
templates.env.filters["money"] = format_cents


def chart_days(history: list[DayHistory]) -> list[ChartDay]:
    return [ChartDay(d.day, d.earnings.management_earned, d.negative_balances) for d in history]


def web_router(analytics: Analytics) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/", response_class=HTMLResponse)
    def dashboard(request: Request, user: Visitor, date: str | None = None) -> HTMLResponse:
        if not user.has_role("admin"):
            return templates.TemplateResponse(request, "forbidden.html", {"user": user},
                                              status_code=403)
        today = analytics.today()
        try:
            chosen, error = parse_day(date, today), None
        except BadRequest as bad:
            chosen, error = today, bad.detail
        history = analytics.history(chosen - timedelta(days=HISTORY_DEFAULT_DAYS - 1), chosen)
        context = {
            "user": user,
            "today": today,
            "chosen": chosen,
            "error": error,
            "summary": analytics.summary(today),
            "most_expensive": [analytics.most_expensive_task(p, chosen) for p in Period],
            "history": list(reversed(history)),
            "chart": chart_geometry(chart_days(history)),
        }
        return templates.TemplateResponse(request, "dashboard.html", context,
                                          status_code=400 if error else 200)

    return router

"""The admin dashboard: today's figures, the popugs in the red by name, the most expensive
tasks around a chosen date and a per-day chart drawn as inline SVG (no script), in the
frame every aTES dashboard shares (``dashboard_kit.pages``)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from analytics.api import HISTORY_DEFAULT_DAYS, BadRequest, parse_day
from analytics.domain import ChartDay, Period, chart_geometry, describe_chart, format_cents
from analytics.queries import AnalyticsQueries, DayHistory
from auth_client.sign_in import AuthClientConfig
from dashboard_kit.pages import DashboardLinks, DashboardPages, Visitor, page_templates

STATIC_DIR = Path(__file__).parent / "static"
CSRF_COOKIE = "ates_analytics_csrf"
NEGATIVE_SHOWN = 10

templates = page_templates(Path(__file__).parent / "templates")
templates.env.filters["money"] = format_cents


def chart_days(history: list[DayHistory]) -> list[ChartDay]:
    return [ChartDay(d.day, d.earnings.management_earned, d.negative_balances) for d in history]


class Dashboard(DashboardPages):
    def __init__(self, analytics: AnalyticsQueries, auth: AuthClientConfig, links: DashboardLinks):
        super().__init__(templates, auth, CSRF_COOKIE, links)
        self.analytics = analytics

    def page(self, request: Request, user: Visitor, date: str | None) -> HTMLResponse:
        if not user.has_role("admin"):
            return self.message(request, user, "Not allowed",
                                "The analytics dashboard is for admins only; you are signed "
                                f"in as a {user.role}.", 403, link=self.links.tasks)
        analytics = self.analytics
        today = analytics.today()
        try:
            chosen, error = parse_day(date, today), None
        except BadRequest as bad:
            chosen, error = today, bad.detail
        first = chosen - timedelta(days=HISTORY_DEFAULT_DAYS - 1)
        history = analytics.history_with_data(first, chosen)
        days = chart_days(history)
        context = {
            "today": today,
            "chosen": chosen,
            "error": error,
            "summary": analytics.summary(today, limit=NEGATIVE_SHOWN),
            "most_expensive": [analytics.most_expensive_task(p, chosen) for p in Period],
            "history": list(reversed(history)),
            "chart": chart_geometry(days) if days else None,
            "chart_text": describe_chart(days),
        }
        return self.render(request, user, "dashboard.html", context,
                           status_code=400 if error else 200)


def web_router(dashboard: Dashboard) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/", response_class=HTMLResponse)
    def page(request: Request, user: Visitor, date: str | None = None) -> HTMLResponse:
        return dashboard.page(request, user, date)

    return router

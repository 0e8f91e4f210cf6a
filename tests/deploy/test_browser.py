"""The browser the end-to-end tests use: Debian's Chromium under Playwright."""

from __future__ import annotations

from deploy.mailsink import MailSink


def test_chromium_renders_the_mail_page_on_a_phone_sized_screen(browser_context, tmp_path):
    with MailSink(smtp_port=0, http_port=0) as sink:
        page = browser_context(viewport={"width": 390, "height": 844}).new_page()
        page.goto(sink.http_url)
        assert page.locator("body").inner_text().strip() != ""
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, "the page must not scroll sideways on a phone"
        page.screenshot(path=str(tmp_path / "mail.png"))
        assert (tmp_path / "mail.png").stat().st_size > 1000

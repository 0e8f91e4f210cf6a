"""axe-core accessibility checks for Playwright pages.

``assert_accessible(page, "tasks: all tasks as manager")`` injects axe-core into the page,
runs it, and fails listing every violation (rule id, impact, the elements it names).

axe-core comes from npm: the pinned release's tarball is downloaded once, checked against
the sha512 integrity the registry publishes for it, and kept under ``~/.cache/ates/``
(``ATES_CACHE_DIR`` elsewhere).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import tarfile
from functools import cache
from pathlib import Path

import httpx

AXE_VERSION = "4.14.1"
AXE_TARBALL = f"https://registry.npmjs.org/axe-core/-/axe-core-{AXE_VERSION}.tgz"
# The registry's dist.integrity of that version.
AXE_INTEGRITY = ("sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASy"
                 "FNNtuFooJpZe37OgudVGtQ==")
# The checks of WCAG 2.1 A and AA, and the good practices axe reports besides.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


def cache_dir() -> Path:
    return Path(os.environ.get("ATES_CACHE_DIR") or Path.home() / ".cache" / "ates")


def integrity_of(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def _download_tarball() -> bytes:
    response = httpx.get(AXE_TARBALL, follow_redirects=True, timeout=60)
    response.raise_for_status()
    data = response.content
    if integrity_of(data) != AXE_INTEGRITY:
        raise AssertionError(f"{AXE_TARBALL} does not match its registry integrity")
    return data


def _extract_axe(tarball: bytes) -> str:
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        member = archive.extractfile("package/axe.min.js")
        return member.read().decode("utf-8")


@cache
def axe_source() -> str:
    """axe.min.js of the pinned release, from the cache or else from npm."""
    tarball_path = cache_dir() / f"axe-core-{AXE_VERSION}.tgz"
    if tarball_path.exists() and integrity_of(tarball_path.read_bytes()) == AXE_INTEGRITY:
        return _extract_axe(tarball_path.read_bytes())
    tarball = _download_tarball()
    tarball_path.parent.mkdir(parents=True, exist_ok=True)
    partial = tarball_path.with_suffix(f".{os.getpid()}.part")
    partial.write_bytes(tarball)
    partial.replace(tarball_path)
    return _extract_axe(tarball)


def axe_violations(page) -> list[dict]:
    """The violations axe finds on the page as it is now."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        # Evaluated rather than added as a <script>: the pages' CSP refuses inline scripts.
        page.evaluate(f"() => {{ {axe_source()}\n }}")
    result = page.evaluate(
        "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags},"
        " resultTypes: ['violations']})",
        AXE_TAGS,
    )
    return result["violations"]


def describe(violations: list[dict]) -> str:
    lines = []
    for violation in violations:
        targets = ", ".join(" ".join(map(str, node["target"])) for node in violation["nodes"])
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']}"
                     f" at {targets}")
    return "\n".join(lines)


def assert_accessible(page, context: str) -> None:
    """Fail listing the axe violations on the page (rule id, impact, target) if any."""
    violations = axe_violations(page)
    assert not violations, f"{context} ({page.url}):\n{describe(violations)}"

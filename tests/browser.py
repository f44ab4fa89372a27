"""Headless-Chromium helper of the HTML report tests: open pages, report what each image did.

Needs Debian's ``chromium`` (``apt-get install chromium``) or ``$POSETRANSFER_CHROMIUM``; without
it the test fails with the install command, unless ``POSETRANSFER_SKIP_BROWSER_TESTS=1`` (then
it is skipped).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

SKIP_ENV = "POSETRANSFER_SKIP_BROWSER_TESTS"
CHROMIUM_ENV = "POSETRANSFER_CHROMIUM"

_HARNESS = """<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>
FRAMES<pre id="result">pending</pre><script>
window.addEventListener("load", () => {
  const out = {};
  for (const frame of document.querySelectorAll("iframe")) {
    try {
      const doc = frame.contentDocument;
      out[frame.dataset.name] = {
        title: doc.title,
        images: Array.from(doc.images, (i) =>
          [i.getAttribute("src"), i.complete, i.naturalWidth, i.naturalHeight]),
        resources: frame.contentWindow.performance.getEntriesByType("resource")
          .map((r) => r.name),
      };
    } catch (err) { out[frame.dataset.name] = {error: String(err)}; }
  }
  document.getElementById("result").textContent = encodeURIComponent(JSON.stringify(out));
});
</script></body></html>
"""


def find_chromium() -> str:
    """The Chromium executable, or a test failure (skip only when explicitly asked)."""
    candidates = [os.environ.get(CHROMIUM_ENV), shutil.which("chromium")]
    candidates += [shutil.which("chromium-browser"), "/usr/bin/chromium"]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"Chromium not found and {SKIP_ENV}=1")
    pytest.fail(
        "Chromium not found: the HTML report test opens the report in headless Chromium. "
        "Install it (Debian/Ubuntu: `sudo apt-get install -y chromium`; CI does this in .ci/run), "
        f"point {CHROMIUM_ENV} at a Chromium/Chrome binary, or set {SKIP_ENV}=1 to skip.",
        pytrace=False,
    )


def load_in_chromium(reports: dict[str, Path], work: Path) -> dict[str, dict]:
    """Open each report in an iframe of one headless Chromium page; return what each saw."""
    frames = "".join(
        f'<iframe data-name="{name}" src="{path.resolve().as_uri()}"></iframe>'
        for name, path in reports.items()
    )
    harness = work / "harness.html"
    harness.write_text(_HARNESS.replace("FRAMES", frames), encoding="utf-8")
    command = [
        find_chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--allow-file-access-from-files",  # lets the harness read its file:// iframes
        f"--user-data-dir={work / 'profile'}",
        "--virtual-time-budget=5000",
        "--dump-dom",
        harness.as_uri(),
    ]
    env = {**os.environ, "HOME": str(work)}
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    dom = result.stdout
    start, end = dom.find('<pre id="result">'), dom.find("</pre>")
    found = dom[start + len('<pre id="result">') : end] if 0 <= start < end else ""
    if result.returncode != 0 or not found or found == "pending":
        raise AssertionError(
            f"Chromium did not report (exit {result.returncode}): {dom[-500:]!r}\n"
            f"{result.stderr[-2000:]}"
        )
    return json.loads(unquote(found))

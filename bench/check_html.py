"""Open report.html pages in a real headless browser (Debian's chromium): every image must decode, nothing may
be fetched from a network, and a screenshot shows the page as a reader sees it.

    python bench/check_html.py runs/NAME/report.html [more pages] [--screenshots DIR]
    make check-html PAGE=runs/NAME/report.html          (make browser installs chromium if it is missing)

For each page: a copy with a small script appended (the page itself holds no script) is loaded with
--dump-dom; the script counts the <img> elements whose PNG decoded (naturalWidth > 0) once the page has loaded.
Then the page itself is screenshot at 1200x3000. Exit 0 if every page passes, 1 naming the first that fails.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # root in a container has no user namespace for the sandbox
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]
PROBE = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const decoded = images.filter((img) => img.complete && img.naturalWidth > 0).length;
  document.documentElement.setAttribute("data-images", decoded + "/" + images.length);
});
</script>"""


def _chromium(profile: str, *args: str) -> subprocess.CompletedProcess:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("check_html: chromium is not installed; run `make browser` (apt-get install chromium)")
    command = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def check(page: Path, screenshot: Path) -> str | None:
    """None if ``page`` passes, else what is wrong (one line); writes the screenshot either way."""
    text = page.read_text(encoding="utf-8")
    external = re.findall(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:|//)[^"'\s>]*""", text, flags=re.IGNORECASE)
    if external:
        return f"{page} refers to the network: {external[0]}"
    with tempfile.TemporaryDirectory() as scratch:
        probe = Path(scratch) / "probe.html"
        probe.write_text(text.replace("</body>", PROBE + "\n</body>"), encoding="utf-8")
        dom = _chromium(f"{scratch}/profile", "--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
        shot = _chromium(
            f"{scratch}/profile-shot", f"--screenshot={screenshot}", "--window-size=1200,3000", page.resolve().as_uri()
        )
    found = re.search(r'data-images="(\d+)/(\d+)"', dom.stdout)
    if found is None:
        return f"{page}: chromium did not load the page ({dom.returncode}): {dom.stderr.strip()[-300:]}"
    decoded, total = map(int, found.groups())
    if total == 0 or decoded != total:
        return f"{page}: {decoded} of {total} images decoded"
    if shot.returncode != 0 or not screenshot.is_file():
        return f"{page}: no screenshot ({shot.returncode}): {shot.stderr.strip()[-300:]}"
    print(f"{page}: {decoded}/{total} images decoded, no network reference; screenshot {screenshot}")
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="+", type=Path, help="report.html files")
    parser.add_argument("--screenshots", type=Path, default=None, help="where the PNGs go (default: a temp dir)")
    args = parser.parse_args(argv)
    out = args.screenshots or Path(tempfile.mkdtemp(prefix="check_html-"))
    out.mkdir(parents=True, exist_ok=True)
    for number, page in enumerate(args.pages):
        if not page.is_file():
            print(f"check_html: {page} is not a file", file=sys.stderr)
            return 1
        problem = check(page, out / f"{number}-{page.parent.name}.png")
        if problem:
            print(f"check_html: {problem}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

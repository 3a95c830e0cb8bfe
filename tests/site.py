"""Drive the built book in headless Chromium: what a reader's browser sees.

Used by ``tests/test_book.py``. Chromium comes from Debian's ``chromium`` package
(``make test`` installs it when missing); Playwright drives it through
``executable_path``, so no browser is downloaded.
"""
import functools
import http.server
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urljoin, urlparse

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium_path():
    return shutil.which("chromium") or shutil.which("chromium-browser")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextmanager
def serve(folder: Path):
    """Serve ``folder`` on a free loopback port; yields the base URL."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def browser_page(base_url: str):
    """A Chromium page in which every request to another machine is refused.

    The published site loads MathJax and Thebe from CDNs; offline they cannot load,
    so requests leaving ``base_url`` are aborted and their failures are not counted
    as the book's errors (they are listed in ``PageReport.external``)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.external = []

        def route(route):
            if route.request.url.startswith(base_url):
                route.continue_()
            else:
                page.external.append(route.request.url)
                route.abort()

        context.route("**/*", route)
        try:
            yield page
        finally:
            browser.close()


def visit(page, url: str) -> dict:
    """Load ``url``; report console errors, broken images, images without alt text,
    internal links and accessibility violations of serious or critical impact."""
    from axe_playwright_python.sync_playwright import Axe

    errors = []

    def on_console(message):
        if message.type == "error" and not _is_external_failure(message, page.external):
            errors.append(message.text)

    def on_page_error(exc):
        errors.append(str(exc))

    page.external.clear()
    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    response = page.goto(url, wait_until="load")
    page.wait_for_timeout(200)
    # axe fetches stylesheets itself (and requests one that does not exist): stop
    # listening before it runs, so only the page's own errors count.
    page.remove_listener("console", on_console)
    page.remove_listener("pageerror", on_page_error)
    images = page.eval_on_selector_all(
        "img", "els => els.map(e => ({src: e.getAttribute('src'), alt: e.getAttribute('alt'),"
               " ok: e.complete && e.naturalWidth > 0}))")
    links = page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
    violations = Axe().run(page).response["violations"]
    return {
        "status": response.status if response else None,
        "console_errors": errors,
        "broken_images": [i["src"] for i in images if not i["ok"]],
        "images_without_alt": [i["src"] for i in images if not (i["alt"] or "").strip()],
        "internal_links": sorted({urljoin(url, href).split("#")[0] for href in links
                                  if _is_internal(href)}),
        "accessibility": [
            f"{v['id']} ({v['impact']}): {v['help']} — {len(v['nodes'])} element(s), "
            f"first: {v['nodes'][0]['target']}"
            for v in violations if v["impact"] in ("serious", "critical")
        ],
    }


def _is_internal(href: str) -> bool:
    parsed = urlparse(href)
    return not parsed.scheme and not parsed.netloc and not href.startswith(("#", "mailto:", "javascript:"))


def _is_external_failure(message, external) -> bool:
    location = (message.location or {}).get("url", "")
    text = message.text
    return "net::ERR_FAILED" in text and (location in external or not location.startswith("http://127.0.0.1"))

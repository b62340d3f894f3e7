"""Fixtures: a store with synthetic studies, the app served by uvicorn in a thread, and Debian's Chromium.

The browser tests FAIL (never skip) without Chromium: `apt-get install -y chromium` is part of the setup.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("HYPERSCOUT_CHROMIUM", "/usr/bin/chromium")


class Server:
    """The app on an ephemeral port, in a thread (uvicorn installs no signal handlers off the main thread)."""

    def __init__(self, app: Any, host: str = "127.0.0.1") -> None:
        import uvicorn

        from hyperscout_ui.server import bind

        self.app = app
        self.sock = bind(host, 0)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:  # wait for uvicorn's own "started" flag, bounded
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.app.state.hub.end_streams()
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def stop_studies(store_dir: Path) -> None:
    """SIGINT every study still owned by a live process of this host, so no test leaves one running."""
    from hyperscout.store import Store, store_file

    if not store_file(store_dir).is_file():
        return
    store = Store(store_dir, readonly=True)
    try:
        for s in store.list_studies():
            owner = s["owner"]
            if s["state"] == "running" and owner is not None and owner.alive() and owner.pid != os.getpid():
                try:
                    os.kill(owner.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass
    finally:
        store.close()


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def serve(store_dir: Path, tmp_path: Path) -> Iterator[Any]:
    """``serve(**create_app_kwargs) -> Server``; every server and launched study is stopped afterwards."""
    from hyperscout_ui.app import create_app

    servers: list[Server] = []

    def start(host: str = "127.0.0.1", **kw: Any) -> Server:
        kw.setdefault("base_dir", tmp_path)
        kw.setdefault("poll", 0.1)
        srv = Server(create_app(store_dir, **kw), host)
        servers.append(srv)
        return srv

    yield start
    stop_studies(store_dir)
    for srv in servers:
        for child in srv.app.state.actions._children:
            if child.poll() is None:
                try:
                    child.wait(20)
                except Exception:
                    os.killpg(child.pid, signal.SIGKILL)
        srv.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)) and not shutil.which("chromium"):
        pytest.fail(f"Chromium not found at {CHROMIUM}: install it with `apt-get install -y chromium` "
                    "(or set HYPERSCOUT_CHROMIUM)", pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is missing: `pip install hyperscout-ui[test]` (never `playwright install`)",
                    pytrace=False)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM if os.path.isfile(CHROMIUM) else shutil.which("chromium"))
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page that records page errors and refuses every request that is not to this machine."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    pg = ctx.new_page()
    pg.set_default_timeout(30_000)
    pg.errors = []
    pg.outside = []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))

    def route(r: Any) -> None:
        url = r.request.url
        if url.startswith(("http://127.0.0.1", "file:", "data:", "blob:", "about:")):
            r.continue_()
        else:
            pg.outside.append(url)
            r.abort()

    pg.route("**/*", route)
    yield pg
    ctx.close()


@pytest.fixture
def shoot(tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    """``shoot(page, name)``: a full-page screenshot under the test's tmp dir and $HYPERSCOUT_ARTIFACTS."""
    folder = tmp_path / "screens"
    folder.mkdir(exist_ok=True)

    def take(pg: Any, name: str) -> Path:
        path = folder / f"{request.node.name}-{name}.png"
        pg.screenshot(path=str(path), full_page=True)
        dest = os.environ.get("HYPERSCOUT_ARTIFACTS")
        if dest:
            Path(dest).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(dest) / path.name)
        return path

    return take


def plots_rendered(pg: Any, ids: list[str]) -> None:
    """Wait until each plotly div holds a drawn SVG (or WebGL canvas) with content."""
    pg.evaluate("() => window.__hs.renderAll && window.__hs.renderAll()")
    pg.wait_for_function(
        """ids => ids.every(id => {
            const d = document.getElementById(id);
            if (!d || !window.__hs.plots[id]) return false;
            const svg = d.querySelector('svg.main-svg');
            const marks = d.querySelectorAll('.scatterlayer path, .barlayer path, .point, canvas').length;
            return svg && svg.getBoundingClientRect().width > 0 && marks > 0;
        })""", arg=ids, timeout=60_000)

"""What keeps a big study's page fast: the snapshot's bytes are kept until the study changes, scatter
plots draw a sample (the best and latest jobs always in it), plots below the fold wait until they are
scrolled to, and live updates still reach a sampled plot.

Browser waits are on DOM and page-state conditions, never on time.
"""

from __future__ import annotations

import gzip
import json
import random
import threading
import time
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from hyperscout_ui.app import create_app
from hyperscout_ui.synth import add_job, make_study

INTERACTIVE = """() => window.__hs && window.__hs.marks.table && window.__hs.plots['p-history'] && window.__hs.plots['p-time']"""
IDLE = "() => new Promise((ok) => requestIdleCallback(() => requestIdleCallback(() => ok(true))))"


def test_snapshot_bytes_are_kept_until_the_study_changes(tmp_path: Path) -> None:
    writer = make_study(tmp_path, "s", 40, running=True)
    with TestClient(create_app(tmp_path), base_url="http://127.0.0.1") as c:
        c.get("/api/study?name=s")
        for t in threading.enumerate():  # the first look starts the importance computation: let it land
            if t.name == "importance-s":
                t.join(120)
        a = c.get("/api/study?name=s", headers={"Accept-Encoding": "gzip"})
        b = c.get("/api/study?name=s", headers={"Accept-Encoding": "gzip"})
        assert a.status_code == b.status_code == 200
        assert a.headers["content-encoding"] == "gzip" and float(a.headers["x-hs-now"]) > 0
        assert a.content == b.content and len(a.json()["jobs"]) == 40 and a.json()["importance"]
        plain = c.get("/api/study?name=s", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers and plain.json() == a.json()
        with writer.batch():
            add_job(writer, "s", 40, random.Random(2), time.time(), status="completed")
        after = c.get("/api/study?name=s")
        assert [r[0] for r in after.json()["jobs"]][-1] == 40 and after.json()["cursor"] != a.json()["cursor"]
    writer.close()


def test_snapshot_body_is_the_snapshot(tmp_path: Path) -> None:
    make_study(tmp_path, "s", 12).close()
    app = create_app(tmp_path)
    raw, gz = app.state.hub.snapshot_body("s")
    snap = app.state.hub.snapshot("s")
    assert gz is not None and gzip.decompress(gz) == raw
    got = json.loads(raw)
    assert got["jobs"] == snap["jobs"] and got["cursor"] == snap["cursor"] and got["summary"] == snap["summary"]
    assert app.state.hub.snapshot_body("nope")[1] is None and json.loads(app.state.hub.snapshot_body("nope")[0])["pending"]
    app.state.hub.close()


def drawn(page: Any, plot: str) -> list[dict[str, Any]]:
    return page.evaluate("id => document.getElementById(id).data.map(t => ({name: t.name || '', x: [...(t.x || [])]}))",
                         plot)


def test_big_study_samples_scatter_plots_and_draws_below_the_fold_when_scrolled_to(
        serve: Any, page: Any, shoot: Any, store_dir: Path) -> None:
    writer = make_study(store_dir, "big", 400, running=True)
    srv = serve()
    # the thresholds of a 10,000-job study, scaled to 400 jobs: sample above 120 points, nothing drawn off-screen
    page.add_init_script("window.HS_POINTS = 120; window.HS_LAZY_AT = 0;")
    page.goto(srv.url + "/study/big")
    page.wait_for_function(INTERACTIVE)
    S = page.evaluate("() => ({best: window.__hs.S.summary.best.n, top: window.__hs.S.summary.top})")
    completed = next(t for t in drawn(page, "p-history") if t["name"].startswith("completed"))
    done = jobs_with(page, "completed")
    assert f"of {done} drawn" in completed["name"] and len(completed["x"]) < done
    assert S["best"] in completed["x"] and set(S["top"]) <= set(completed["x"])  # the best jobs are always drawn
    latest = page.evaluate("() => [...window.__hs.S.jobs.values()].filter(r => r[2] === 'completed' && r[0] >= 300)"
                           ".map(r => r[0])")
    assert latest and set(latest) <= set(completed["x"])  # and so are the latest 100
    # below the fold: not drawn while the page idles, drawn once scrolled into view
    page.evaluate(IDLE)
    page.evaluate(IDLE)
    assert not page.evaluate("() => Boolean(window.__hs.plots['p-slices'])")
    page.locator("#p-slices").scroll_into_view_if_needed()
    page.wait_for_function("() => window.__hs.plots['p-slices'] && document.querySelector('#p-slices .point')")
    assert "completed jobs drawn" in page.locator("#p-slices").inner_text()
    shoot(page, "big-slices")
    # live: a new job reaches the sampled plot (the latest jobs are always in the sample)
    page.locator("#p-history").scroll_into_view_if_needed()
    with writer.batch():
        add_job(writer, "big", 400, random.Random(9), time.time(), status="completed")
    page.wait_for_function("""() => document.getElementById('p-history').data.some(
        t => (t.name || '').startsWith('completed') && [...t.x].includes(400))""")
    # every point on request
    page.select_option("#pt-limit", "all")
    page.wait_for_function("""n => document.getElementById('p-history').data.some(
        t => t.name === 'completed' && t.x.length === n)""", arg=jobs_with(page, "completed"))
    writer.close()
    assert page.errors == [] and page.outside == []


def jobs_with(page: Any, status: str) -> int:
    return page.evaluate("st => [...window.__hs.S.jobs.values()].filter(r => r[2] === st && r[3]).length", status)

"""End to end in Debian's Chromium (Playwright): launch from the form, watch it live, open a job's log,
stop, resume, extend, clone, export and delete; form errors; the token off loopback; the offline report.

Every wait is on a DOM condition or a store row, never a bare sleep.
"""

from __future__ import annotations

import random
import re
import time
from pathlib import Path
from typing import Any

from conftest import plots_rendered

from hyperscout.store import Store
from hyperscout_ui.synth import add_job, make_study

TRIAL = """\
import argparse, time
from hyperscout import report_scalar
p = argparse.ArgumentParser()
p.add_argument("--x", type=float)
p.add_argument("--opt", default="a")
a = p.parse_args()
for i in range(4):
    print(f"iteration {i} x={a.x}", flush=True)
    report_scalar("val", "loss", (a.x - 0.3) ** 2 + 1.0 / (i + 1), i)
    time.sleep(0.15)
"""
PLOTS = ["p-history", "p-time", "p-parcoords", "p-curves", "p-slices", "p-resources"]


def fill_form(page: Any, name: str, script: str = "trial.py", jobs: int = 60) -> None:
    page.fill('[name="study.name"]', name)
    page.check("#f-task\\.kind-script")
    page.fill('[name="task.script"]', script)
    page.fill('[name="objective[0].title"]', "val")
    page.fill('[name="objective[0].series"]', "loss")
    page.select_option('[name="objective[0].sign"]', "min")
    page.select_option('[name="strategy.name"]', "random")
    page.fill('[name="limits.max_number_of_concurrent_tasks"]', "2")
    page.fill('[name="parameters[0].name"]', "x")
    page.fill('[name="parameters[0].min_value"]', "0")
    page.fill('[name="parameters[0].max_value"]', "1")
    page.click("#advanced summary")
    page.fill('[name="limits.total_max_jobs"]', str(jobs))


def jobs_seen(page: Any, status: str = "completed") -> int:
    return page.evaluate("st => [...window.__hs.S.jobs.values()].filter(r => r[2] === st).length", status)


def wait_state(page: Any, state: str) -> None:
    page.wait_for_selector(f'#study-state[data-state="{state}"]', timeout=60_000)


def test_launch_watch_stop_resume_extend_clone_delete(serve: Any, page: Any, shoot: Any, tmp_path: Path,
                                                     store_dir: Path) -> None:
    (tmp_path / "trial.py").write_text(TRIAL)
    srv = serve()
    page.goto(srv.url + "/launch")
    shoot(page, "launch-form")
    fill_form(page, "e2e")
    page.click("#do-launch")
    page.wait_for_url(re.compile(r"/study/e2e"))
    wait_state(page, "running")  # the page reloads itself when the detached study has claimed its lease

    # live: rows and plots grow without a reload
    page.wait_for_function("() => [...window.__hs.S.jobs.values()].filter(r => r[2] === 'completed').length >= 3")
    before = jobs_seen(page)
    page.wait_for_function("n => [...window.__hs.S.jobs.values()].filter(r => r[2] === 'completed').length > n",
                           arg=before)
    assert page.evaluate("() => window.__hs.deltas") > 0
    plots_rendered(page, PLOTS)
    page.wait_for_selector('#jobs tbody tr[data-status="completed"]')
    # a plot that costs time redraws at most once a second while live: wait for the redraw, not the rows
    page.wait_for_function("() => document.querySelectorAll('#p-history .scatterlayer .point').length >= 3")
    shoot(page, "study-running")

    # a job's page: parameters, curves, and its log (live)
    page.click('#jobs tbody tr[data-status="completed"] a')
    page.wait_for_url(re.compile(r"/job/"))
    page.wait_for_function("() => document.querySelector('#log-stdout').textContent.includes('iteration 3')")
    plots_rendered(page, ["scalar-0"])
    assert page.locator("#job-state").get_attribute("data-status") == "completed"
    assert page.locator("#job-events").inner_text().count("completed") >= 1
    shoot(page, "job")
    page.go_back()

    # stop: SIGINT to the owner of the lease; the page shows it ended
    wait_state(page, "running")
    page.click("#act-stop")
    page.wait_for_selector("#notice")
    wait_state(page, "ended")
    store = Store(store_dir, readonly=True)
    acts = [e["data"]["action"] for e in store.events("e2e") if e["kind"] == "ui_action"]
    assert acts == ["launch", "stop"]
    done = len(store.load_jobs("e2e", with_metrics=False))

    # resume: the same study file runs again, in its own session
    page.click("#act-resume")
    wait_state(page, "running")
    page.wait_for_function("n => window.__hs.S.jobs.size > n", arg=done)
    page.click("#act-stop")
    wait_state(page, "ended")

    # extend by 2 jobs: total_max_jobs rewritten in the study file kept in the store, and it runs again
    page.fill("#more-jobs", "2")
    page.click("#act-extend")
    wait_state(page, "running")
    toml = (store_dir / "ui" / "studies" / "s-e2e.toml").read_text()
    assert "total_max_jobs = 62" in toml and "[[parameters]]" in toml
    page.click("#act-stop")
    wait_state(page, "ended")
    plots_rendered(page, PLOTS)
    shoot(page, "study-ended")

    # export (a download, audited)
    with page.expect_download() as dl:
        page.click("#act-export")
    assert dl.value.path().read_text().startswith("job,number,rank,status,val/loss")

    # clone: the form comes back filled
    page.click("#act-clone")
    page.wait_for_url(re.compile(r"/launch\?from=e2e"))
    assert page.input_value('[name="study.name"]') == "e2e-clone"
    assert page.input_value('[name="task.script"]') == str(tmp_path / "trial.py")
    assert page.input_value('[name="parameters[0].max_value"]') == "1"
    page.click("#do-validate")
    page.wait_for_selector("#form-note:has-text('Valid')")
    shoot(page, "clone-form")

    # delete, with confirmation
    page.goto(srv.url + "/study/e2e")
    page.click("#act-delete")
    page.fill("#confirm-name", "e2e")
    shoot(page, "delete-confirm")
    page.click("#confirm-delete")
    page.wait_for_url(re.compile(r"/\?notice="))
    page.wait_for_selector("#list-status")
    assert page.locator('#studies tr[data-study="e2e"]').count() == 0
    assert store.get_study("e2e") is None
    assert [e["data"]["action"] for e in store.events("e2e") if e["kind"] == "ui_action"][-4:] == \
        ["extend", "stop", "export", "delete"]
    store.close()
    assert page.errors == [] and page.outside == []


def test_bad_input_shows_the_error_beside_its_field(serve: Any, page: Any, shoot: Any, tmp_path: Path,
                                                    store_dir: Path) -> None:
    (tmp_path / "trial.py").write_text(TRIAL)
    srv = serve()
    page.goto(srv.url + "/launch")
    fill_form(page, "bad")
    page.fill('[name="parameters[0].min_value"]', "5")
    page.click("#do-launch")
    err = page.locator('[data-error-for="parameters[0].min_value"]')
    err.wait_for()
    assert "below max_value" in err.inner_text()
    assert page.locator("#form-errors").is_visible()
    shoot(page, "form-error")
    page.fill('[name="parameters[0].min_value"]', "0")
    page.fill('[name="task.script"]', "no_such_script.py")
    page.click("#do-validate")
    page.locator('[data-error-for="task.script"]:has-text("does not exist")').wait_for()
    page.fill('[name="task.script"]', "trial.py")
    page.click('[name="strategy.name"]')
    page.fill('[name="strategy.options_extra"]', "frobnicate = 3")
    page.click("#do-validate")
    page.locator('[data-error-for="strategy.options_extra"]:has-text("frobnicate")').wait_for()
    assert not (store_dir / "hyperscout.sqlite").exists() or Store(store_dir, readonly=True).get_study("bad") is None
    assert page.errors == []


def test_live_rows_and_plots_from_store_writes(serve: Any, page: Any, shoot: Any, store_dir: Path) -> None:
    writer = make_study(store_dir, "live", 30, running=True)
    srv = serve()
    page.goto(srv.url + "/")
    page.wait_for_selector('#studies tr[data-study="live"][data-state="running"]')
    shoot(page, "list")
    page.goto(srv.url + "/study/live")
    plots_rendered(page, [*PLOTS, "p-importance"])
    deltas = page.evaluate("() => window.__hs.deltas")
    rng = random.Random(5)
    for n in range(30, 33):
        with writer.batch():
            add_job(writer, "live", n, rng, time.time(), status="completed")
        page.wait_for_function("n => window.__hs.S.jobs.has(n)", arg=n)
    page.wait_for_selector('#jobs tbody tr[data-n="32"]')
    page.wait_for_function("() => window.__hs.plots['p-history'] && window.__hs.S.jobs.size === 33")
    assert page.evaluate("() => window.__hs.deltas") > deltas
    writer.release_study("live", writer.get_study("live")["owner"], "ended", "stopped")
    wait_state(page, "ended")
    writer.close()
    assert page.errors == [] and page.outside == []


def test_token_is_required_off_loopback(serve: Any, browser: Any, store_dir: Path) -> None:
    make_study(store_dir, "tok", 5).close()
    srv = serve(host="0.0.0.0", token="sesame", loopback_only=False)
    ctx = browser.new_context()
    pg = ctx.new_page()
    r = pg.goto(srv.url + "/")
    assert r.status == 403 and "token is required" in pg.content()
    r = pg.goto(srv.url + "/api/study?name=tok")
    assert r.status == 403
    pg.goto(srv.url + "/?token=sesame")
    assert pg.url == srv.url + "/"  # the token left the address bar for an HttpOnly cookie
    pg.wait_for_selector('#studies tr[data-study="tok"]')
    cookies = {c["name"]: c for c in ctx.cookies()}
    assert cookies["hyperscout_token"]["httpOnly"] and cookies["hyperscout_token"]["sameSite"] == "Strict"
    other = browser.new_context()  # no cookie: a POST is refused before any CSRF check
    assert other.request.post(srv.url + "/action/clear", form={"csrf": "x"}).status == 403
    assert other.request.get(srv.url + "/api/studies").status == 403
    other.close()
    ctx.close()


def test_report_opens_offline_with_the_same_plots(page: Any, shoot: Any, store_dir: Path, tmp_path: Path) -> None:
    from hyperscout.cli import main

    make_study(store_dir, "rep", 80, objectives=2, budgets=True).close()
    out = tmp_path / "rep.html"
    assert main(["report", "rep", "-o", str(out), "--storage", str(store_dir)]) == 0
    html = out.read_text()
    assert not re.search(r"<script[^>]*\ssrc=", html) and not re.search(r"<link[^>]*\shref=", html)
    assert len(html) > 4_000_000  # plotly.js is inside
    page.goto(out.as_uri())
    plots_rendered(page, [*PLOTS, "p-importance", "p-pareto"])
    assert page.locator("#actions").count() == 0
    assert page.locator("#jobs tbody tr").count() == 50
    shoot(page, "report")
    assert page.errors == [] and page.outside == []


def test_report_of_an_unknown_study_is_one_line(store_dir: Path, capsys: Any) -> None:
    from hyperscout.cli import main

    make_study(store_dir, "x", 2).close()
    assert main(["report", "nope", "--storage", str(store_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no study 'nope'" in err and "x" in err

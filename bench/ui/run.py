"""Study page of ``hyperscout ui`` at 10,000 jobs vs 100 jobs, and optuna-dashboard on the same trials.

    python bench/ui/run.py [--jobs 10000] [--small 100] [--updates 10] [--json out.json]

Measured in headless Debian Chromium (Playwright, ``executable_path=/usr/bin/chromium``):

* the JSON behind the page: server time and size, cold (first load of the study) and warm;
* the page: time to the jobs table, to the first plot, to the plots above the fold (history and
  time), and how long a click on a table header takes to re-sort; a cold browser cache (new
  context: plotly.js downloaded and compiled) and a warm one (same context, second visit);
* live updates: a job committed to the store -> its row in the page (end to end), the server's
  refresh cost and delta size, and the page's own redraw time per update;
* optuna-dashboard 0.x on the same trials (in-memory Optuna storage), if it is installed: its
  ``/api/studies/0`` and the time to its first plot.

Studies are written straight into a store with the core's ``Store`` API (``hyperscout_ui.synth``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("HYPERSCOUT_CHROMIUM", "/usr/bin/chromium")
ABOVE_FOLD = "() => window.__hs.plots['p-history'] && window.__hs.plots['p-time']"


def _serve(store_dir: Path) -> Any:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins" / "hyperscout-ui" / "tests"))
    from conftest import Server

    from hyperscout_ui.app import create_app

    return Server(create_app(store_dir, poll=0.1))


def server_side(store_dir: Path, name: str) -> dict[str, Any]:
    from hyperscout_ui.data import StudyModel, UIStore
    from hyperscout_ui.synth import add_job

    store = UIStore(store_dir, readonly=True)
    t = time.perf_counter()
    model = StudyModel(store, name)
    cold_load = time.perf_counter() - t
    t = time.perf_counter()
    body = json.dumps(model.snapshot(), separators=(",", ":"))
    snapshot = time.perf_counter() - t
    from hyperscout.store import Store

    writer = Store(store_dir)
    rng = random.Random(7)
    costs, sizes = [], []
    for k in range(5):
        with writer.batch():
            add_job(writer, name, 100_000 + k, rng, time.time(), status="completed")
        t = time.perf_counter()
        delta = model.refresh()
        costs.append(time.perf_counter() - t)
        sizes.append(len(json.dumps(delta, separators=(",", ":"))))
    t = time.perf_counter()
    model.refresh()
    idle = time.perf_counter() - t
    writer.close()
    store.close()
    return {"model_load_s": round(cold_load, 3), "snapshot_s": round(snapshot, 3), "json_MB": round(len(body) / 1e6, 2),
            "refresh_per_update_ms": round(1000 * statistics.median(costs), 1),
            "delta_bytes": int(statistics.median(sizes)), "refresh_idle_ms": round(1000 * idle, 2)}


def page_times(browser: Any, url: str, visits: int = 3) -> list[dict[str, Any]]:
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    out = []
    for i in range(visits):
        t = time.perf_counter()
        page.goto(url)
        page.wait_for_function(ABOVE_FOLD, timeout=120_000)
        fold = time.perf_counter() - t
        marks = page.evaluate("() => window.__hs.marks")
        page.wait_for_timeout(0)
        t = time.perf_counter()
        page.evaluate("() => document.querySelector('#jobs th[data-key=st]').click()")
        page.wait_for_selector("#jobs th[data-key=st]:has-text('▼')")
        click = time.perf_counter() - t
        out.append({"visit": "cold" if i == 0 else "warm", "table_s": marks.get("table", 0) / 1000,
                    "first_plot_s": marks.get("plot:p-history", 0) / 1000, "above_fold_s": round(fold, 2),
                    "click_sort_ms": round(1000 * click), "plotly_loaded_s": marks.get("plotly", 0) / 1000})
    page.evaluate("() => window.__hs.renderAll()")
    page.wait_for_function("() => ['p-parcoords','p-curves','p-slices','p-resources'].every(i => window.__hs.plots[i])",
                           timeout=120_000)
    out.append({"plot_ms": page.evaluate(
        "() => Object.fromEntries(Object.entries(window.__hs.plots).map(([k, v]) => [k, Math.round(v.ms)]))")})
    ctx.close()
    return out


def live_updates(browser: Any, url: str, store_dir: Path, name: str, n: int) -> dict[str, Any]:
    from hyperscout.store import Store
    from hyperscout_ui.synth import add_job

    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    page.goto(url)
    page.wait_for_function(ABOVE_FOLD, timeout=120_000)
    page.wait_for_function("() => !window.__hs.S.dirty.size || true")
    writer = Store(store_dir)
    rng = random.Random(3)
    latencies = []
    page.evaluate("() => { window.__hs.renders = []; }")
    for k in range(n):
        number = 200_000 + k
        with writer.batch():
            add_job(writer, name, number, rng, time.time(), status="completed")
        t = time.perf_counter()
        page.wait_for_function("n => window.__hs.S.jobs.has(n) && document.querySelector('#jobs tbody tr')", arg=number)
        latencies.append(time.perf_counter() - t)
    renders = page.evaluate("() => window.__hs.renders")
    writer.close()
    ctx.close()
    return {"commit_to_row_ms_median": round(1000 * statistics.median(latencies)),
            "commit_to_row_ms_max": round(1000 * max(latencies)),
            "page_redraw_ms_median": round(statistics.median(renders)) if renders else None, "updates": n}


def optuna_dashboard(browser: Any, store_dir: Path, name: str) -> dict[str, Any]:
    try:
        import optuna
        import optuna_dashboard
    except ImportError:
        return {"skipped": "optuna-dashboard is not installed (`pip install optuna-dashboard`)"}
    from hyperscout.store import Store

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    store = Store(store_dir, readonly=True)
    jobs = store.load_jobs(name)
    store.close()
    dists = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True),
             "dropout": optuna.distributions.FloatDistribution(0.0, 0.5),
             "layers": optuna.distributions.IntDistribution(1, 6),
             "optimizer": optuna.distributions.CategoricalDistribution(["adam", "sgd", "rmsprop"])}
    states = {"completed": optuna.trial.TrialState.COMPLETE, "pruned": optuna.trial.TrialState.PRUNED,
              "failed": optuna.trial.TrialState.FAIL}
    t = time.perf_counter()
    trials = [optuna.trial.create_trial(
        params=j.params, distributions=dists, state=states[j.status.value],
        value=j.objective_values[0] if j.objective_values else None,
        intermediate_values={m.iteration: m.value for m in j.metrics if m.series == "loss"}) for j in jobs]
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name=name, direction="minimize")
    study.add_trials(trials)
    build = time.perf_counter() - t
    from hyperscout_ui.server import bind

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    threading.Thread(target=optuna_dashboard.run_server, args=(storage,), kwargs={"host": "127.0.0.1", "port": port},
                     daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(base + "/api/studies", timeout=5).read()
            break
        except OSError:
            if time.monotonic() > deadline:
                return {"error": "optuna-dashboard did not start"}
            time.sleep(0.05)
    t = time.perf_counter()
    size = len(urllib.request.urlopen(base + "/api/studies/0", timeout=300).read())
    api = time.perf_counter() - t
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    t = time.perf_counter()
    page.goto(base + "/dashboard/studies/0")
    page.wait_for_selector(".js-plotly-plot .main-svg", timeout=300_000)
    first = time.perf_counter() - t
    t = time.perf_counter()
    responsive = page.evaluate("() => new Promise(ok => requestAnimationFrame(() => ok(performance.now())))")
    block = time.perf_counter() - t
    ctx.close()
    return {"version": optuna_dashboard.__version__, "build_trials_s": round(build, 2), "api_study_s": round(api, 2),
            "api_study_MB": round(size / 1e6, 1), "first_plot_s": round(first, 2),
            "next_frame_after_first_plot_s": round(block, 2), "_": bool(responsive)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--small", type=int, default=100)
    ap.add_argument("--updates", type=int, default=10)
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--no-optuna", action="store_true")
    args = ap.parse_args()
    if not os.path.isfile(CHROMIUM):
        print(f"bench/ui: Chromium not found at {CHROMIUM}: `apt-get install -y chromium`", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    from hyperscout_ui.synth import make_study

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as tmp:
        store_dir = Path(tmp) / "store"
        t = time.perf_counter()
        make_study(store_dir, "big", args.jobs).close()
        make_study(store_dir, "small", args.small, seed=1).close()
        results["generate_s"] = round(time.perf_counter() - t, 1)
        for name in ("big", "small"):
            results[f"server_{name}"] = server_side(store_dir, name)
        srv = _serve(store_dir)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM)
                for name in ("big", "small"):
                    url = f"{srv.url}/study/{name}"
                    results[f"page_{name}"] = page_times(browser, url)
                    results[f"live_{name}"] = live_updates(browser, url, store_dir, name, args.updates)
                if not args.no_optuna:
                    results["optuna_dashboard_big"] = optuna_dashboard(browser, store_dir, "big")
                browser.close()
        finally:
            srv.stop()
    results["jobs"] = {"big": args.jobs, "small": args.small}
    text = json.dumps(results, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    big = results["page_big"]
    warm = [v["above_fold_s"] for v in big if v.get("visit") == "warm"]
    print(f"bench/ui: {args.jobs}-job page above the fold: cold {big[0]['above_fold_s']} s, warm "
          f"{min(warm) if warm else '?'} s (target < 2 s); table {big[0]['table_s']} s cold")
    return 0


if __name__ == "__main__":
    sys.exit(main())

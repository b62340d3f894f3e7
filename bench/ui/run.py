"""Study page of ``hyperscout ui`` at 10,000 jobs vs 100 jobs, and optuna-dashboard on the same trials.

    python bench/ui/run.py [--jobs 10000] [--small 100] [--updates 10] [--rounds 3] [--baseline REF]
                           [--json out.json]

Measured in headless Debian Chromium (Playwright, ``executable_path=/usr/bin/chromium``), viewport
1400x900.

**Interactive** means, counted from the navigation's start (``performance.now()``): the jobs table is
drawn and sortable (its header has its click handler), every plot whose box intersects the first
viewport (above the fold: objective per job, and the top of objective over time) is drawn, and the
main thread is free (the figure reported beside it, ``task_wait_ms``, is how long a task queued at
that moment waits; ``long_tasks_after_ms`` sums the long tasks of the next second). The target is
a 10,000-job study interactive in under 2 s.

* the JSON behind the page: server time and size, cold (first load of the study) and warm;
* the page: time to the jobs table, to plotly.js evaluated, to the first plot, to interactive, and
  how long a click on a table header takes to re-sort; a cold browser (new context: plotly.js
  downloaded and compiled) and a warm one (same context, second and third visits). Round 1's cold
  visit is also the server's first look at the study (model loaded from the store); later rounds
  are cold browsers on a warm server. ``--rounds`` repeats the whole set; medians are reported;
* live updates: a job committed to the store -> its row in the page (end to end), the server's
  refresh cost and delta size, and the page's own redraw time per update (main-thread time of the
  redraws it triggers);
* ``--baseline REF``: the same page from the plugin as it is at git ``REF`` (``git archive`` of
  ``plugins/hyperscout-ui/src``, served by a subprocess over the same store), measured in the same
  rounds, alternating with the working tree's, so both see the same machine load;
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
# the page's own long tasks, recorded from the start of every document
LONG_TASKS = """window.__lt = [];
try { new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__lt.push([e.startTime, e.duration]); })
  .observe({ type: "longtask", buffered: true }); } catch (e) {}"""
# interactive: the table drawn and sortable, and every plot in the first viewport drawn
INTERACTIVE = """() => {
  const hs = window.__hs;
  if (!hs || !hs.marks || !hs.marks.table || !document.querySelector('#jobs th[data-key=st]')) return false;
  const ids = [...document.querySelectorAll('#study-body .plot')].filter((d) => {
    const r = d.getBoundingClientRect();
    return r.height > 0 && r.top < innerHeight && r.bottom > 0;
  }).map((d) => d.id);
  if (!ids.length || !ids.every((i) => hs.plots[i])) return false;
  return { ids, at: Math.max(hs.marks.table, ...ids.map((i) => hs.plots[i].at)) };
}"""
TASK_WAIT = "() => new Promise((ok) => { const t = performance.now(); setTimeout(() => ok(performance.now() - t), 0); })"


def _serve(store_dir: Path) -> Any:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins" / "hyperscout-ui" / "tests"))
    from conftest import Server

    from hyperscout_ui.app import create_app

    return Server(create_app(store_dir, poll=0.1))


class Baseline:
    """The plugin as it is at git ``ref``, served by a subprocess over the same store."""

    def __init__(self, ref: str, store_dir: Path, tmp: Path) -> None:
        import subprocess

        root = Path(__file__).resolve().parents[2]
        src = tmp / "baseline"
        src.mkdir()
        archive = subprocess.run(["git", "-C", str(root), "archive", ref, "plugins/hyperscout-ui/src"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
        from hyperscout_ui.server import bind

        sock = bind("127.0.0.1", 0)
        port = sock.getsockname()[1]
        sock.close()
        code = ("import sys, uvicorn; sys.path.insert(0, sys.argv[1]); from hyperscout_ui.app import create_app; "
                "uvicorn.run(create_app(sys.argv[2], poll=0.1), host='127.0.0.1', port=int(sys.argv[3]), "
                "log_level='warning')")
        self.proc = subprocess.Popen([sys.executable, "-c", code, str(src / "plugins" / "hyperscout-ui" / "src"),
                                      str(store_dir), str(port)])
        self.url = f"http://127.0.0.1:{port}"
        self.ref = ref
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.url + "/api/studies", timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"the baseline server ({ref}) did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)


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


def page_times(browser: Any, url: str, visits: int = 3, plots: bool = True) -> list[dict[str, Any]]:
    """One new browser context: a cold visit, then warm ones; then every plot drawn (each one's cost)."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    ctx.add_init_script(LONG_TASKS)
    page = ctx.new_page()
    out: list[dict[str, Any]] = []
    for i in range(visits):
        t = time.perf_counter()
        page.goto(url)
        done = page.wait_for_function(INTERACTIVE, timeout=120_000).json_value()
        wall = time.perf_counter() - t
        wait = page.evaluate(TASK_WAIT)
        marks = page.evaluate("() => window.__hs.marks")
        page.wait_for_timeout(1000)
        after = page.evaluate("at => window.__lt.filter(([s]) => s >= at).reduce((a, [, d]) => a + d, 0)", done["at"])
        t = time.perf_counter()
        page.evaluate("() => document.querySelector('#jobs th[data-key=st]').click()")
        page.wait_for_selector("#jobs th[data-key=st]:has-text('▼')")
        click = time.perf_counter() - t
        out.append({"visit": "cold" if i == 0 else "warm", "table_s": marks.get("table", 0) / 1000,
                    "plotly_loaded_s": marks.get("plotly", 0) / 1000,
                    "first_plot_s": min(v for k, v in marks.items() if k.startswith("plot:")) / 1000,
                    "interactive_s": round(done["at"] / 1000, 3), "interactive_wall_s": round(wall, 2),
                    "in_view": done["ids"], "task_wait_ms": round(wait), "long_tasks_after_ms": round(after),
                    "click_sort_ms": round(1000 * click)})
    if plots:
        page.evaluate("() => window.__hs.renderAll()")
        page.wait_for_function("() => ['p-parcoords','p-curves','p-slices','p-resources'].every(i => window.__hs.plots[i])",
                               timeout=120_000)
        out.append({"plot_ms": page.evaluate(
            "() => Object.fromEntries(Object.entries(window.__hs.plots).map(([k, v]) => [k, Math.round(v.ms)]))")})
    ctx.close()
    return out


def summarize(rounds: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """Medians over rounds: round 1's cold visit (cold server too), later cold visits, warm visits."""
    keys = ("table_s", "plotly_loaded_s", "first_plot_s", "interactive_s", "task_wait_ms", "long_tasks_after_ms",
            "click_sort_ms")

    def med(visits: list[dict[str, Any]]) -> dict[str, Any]:
        return {k: round(statistics.median(v[k] for v in visits), 3) for k in keys} | {"n": len(visits)} if visits \
            else {}

    visits = [[v for v in r if "visit" in v] for r in rounds]
    out = {"cold_server_cold_browser": med([r[0] for r in visits[:1]]),
           "cold_browser": med([r[0] for r in visits[1:]]),
           "warm_browser": med([v for r in visits for v in r[1:]])}
    plot_ms = [v["plot_ms"] for r in rounds for v in r if "plot_ms" in v]
    if plot_ms:
        out["plot_ms"] = {k: round(statistics.median(p.get(k, 0) for p in plot_ms)) for k in plot_ms[0]}
    return out


def live_updates(browser: Any, url: str, store_dir: Path, name: str, n: int, first: int) -> dict[str, Any]:
    from hyperscout.store import Store
    from hyperscout_ui.synth import add_job

    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    ctx.add_init_script(LONG_TASKS)
    page = ctx.new_page()
    page.goto(url)
    page.wait_for_function(INTERACTIVE, timeout=120_000)
    page.wait_for_timeout(1000)  # let the first draw's idle work finish
    writer = Store(store_dir)
    rng = random.Random(3)
    latencies = []
    page.evaluate("() => { window.__hs.renders = []; window.__lt = []; }")
    t_all = time.perf_counter()
    for k in range(n):
        number = first + k
        with writer.batch():
            add_job(writer, name, number, rng, time.time(), status="completed")
        t = time.perf_counter()
        page.wait_for_function("n => window.__hs.S.jobs.has(n) && document.querySelector('#jobs tbody tr')", arg=number)
        latencies.append(time.perf_counter() - t)
    page.evaluate("() => new Promise((ok) => { const go = () => (window.__hs.S.dirty.size && !window.__hs.S.flushing "
                  "? setTimeout(go, 50) : ok()); go(); })")
    page.wait_for_timeout(500)
    span = time.perf_counter() - t_all
    renders = page.evaluate("() => window.__hs.renders")
    busy = page.evaluate("() => window.__lt.reduce((a, [, d]) => a + d, 0)")
    writer.close()
    ctx.close()
    return {"commit_to_row_ms_median": round(1000 * statistics.median(latencies)),
            "commit_to_row_ms_max": round(1000 * max(latencies)),
            "redraw_ms_per_update": round(sum(renders) / n), "long_tasks_ms_per_update": round(busy / n),
            "redraws": len(renders), "redraw_ms_total": round(sum(renders)),
            "long_tasks_ms_total": round(busy), "span_s": round(span, 2), "updates": n}


def plotly_floor(browser: Any, base: str, n: int = 3) -> dict[str, Any]:
    """A page holding nothing but plotly.js, in a new context (cold): the least a cold visit can take."""
    import re

    html = urllib.request.urlopen(base + "/", timeout=30).read().decode()
    src = re.search(r'data-plotly="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    body = f'<!doctype html><script src="{src}" onload="window.__t = performance.now()"></script>'
    loaded, evaluate = [], []
    for _ in range(n):
        ctx = browser.new_context()
        ctx.add_init_script(LONG_TASKS)
        page = ctx.new_page()
        page.route(base + "/__floor", lambda r: r.fulfill(content_type="text/html", body=body))
        page.goto(base + "/__floor")
        loaded.append(page.wait_for_function("() => window.__t").json_value())
        evaluate.append(page.evaluate("() => Math.max(0, ...window.__lt.map(([, d]) => d))"))
        ctx.close()
    return {"loaded_s": round(statistics.median(loaded) / 1000, 3), "evaluate_ms": round(statistics.median(evaluate)),
            "runs": n}


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


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--small", type=int, default=100)
    ap.add_argument("--updates", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3, help="repeat the page visits (medians are reported)")
    ap.add_argument("--baseline", metavar="REF", help="also measure the plugin as it is at this git ref")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--no-optuna", action="store_true")
    args = ap.parse_args()
    if not os.path.isfile(CHROMIUM):
        print(f"bench/ui: Chromium not found at {CHROMIUM}: `apt-get install -y chromium`", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    from hyperscout_ui.synth import make_study

    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M"), "load_average_start": load_average(),
                               "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as tmp:
        store_dir = Path(tmp) / "store"
        t = time.perf_counter()
        make_study(store_dir, "big", args.jobs).close()
        make_study(store_dir, "small", args.small, seed=1).close()
        results["generate_s"] = round(time.perf_counter() - t, 1)
        for name in ("big", "small"):
            results[f"server_{name}"] = server_side(store_dir, name)
        srv = _serve(store_dir)
        base = Baseline(args.baseline, store_dir, Path(tmp)) if args.baseline else None
        variants = {"": srv.url, **({"baseline_": base.url} if base else {})}
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM)
                for name in ("big", "small"):
                    rounds: dict[str, list[Any]] = {v: [] for v in variants}
                    for r in range(args.rounds):
                        order = list(variants) if r % 2 == 0 else list(variants)[::-1]
                        for v in order:
                            rounds[v].append(page_times(browser, f"{variants[v]}/study/{name}", plots=r == 0))
                    for v, got in rounds.items():
                        results[f"{v}page_{name}"] = summarize(got)
                        results[f"{v}page_{name}_visits"] = got
                    for i, v in enumerate(variants):
                        first = (200_000 if name == "big" else 300_000) + 1000 * i
                        results[f"{v}live_{name}"] = live_updates(browser, f"{variants[v]}/study/{name}", store_dir,
                                                                  name, args.updates, first)
                results["plotly_floor"] = plotly_floor(browser, srv.url)
                if not args.no_optuna:
                    results["optuna_dashboard_big"] = optuna_dashboard(browser, store_dir, "big")
                browser.close()
        finally:
            srv.stop()
            if base:
                base.stop()
    results["load_average_end"] = load_average()
    results["jobs"] = {"big": args.jobs, "small": args.small}
    if base:
        results["baseline_ref"] = args.baseline
    text = json.dumps(results, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    for v in variants:
        big = results[f"{v}page_big"]
        print(f"bench/ui{' (' + args.baseline + ')' if v else ''}: {args.jobs}-job page interactive: "
              f"cold server+browser {big['cold_server_cold_browser'].get('interactive_s')} s, "
              f"cold browser {big['cold_browser'].get('interactive_s', '?')} s, "
              f"warm {big['warm_browser'].get('interactive_s')} s (target < 2 s)")
    print(f"bench/ui: load average {results['load_average_start']} -> {results['load_average_end']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

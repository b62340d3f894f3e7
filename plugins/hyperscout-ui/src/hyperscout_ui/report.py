"""``hyperscout report``: the study page frozen into one HTML file that opens offline.

The file inlines plotly.js, the page's own script and the study's data (the same snapshot the
live page loads), so it shows the same plots and tables, drawn by the same code.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import plotly

from hyperscout.errors import ConfigError
from hyperscout.store import json_safe
from hyperscout_ui.actions import Actions
from hyperscout_ui.data import StudyModel, UIStore, open_reader
from hyperscout_ui.importance import compute_importance

__all__ = ["render_report", "write_report"]

HERE = Path(__file__).parent
#: above this many jobs the report keeps the default learning-curve set (best 10 + latest 90), as the page
ALL_CURVES_UP_TO = 2000


def _script_safe(text: str) -> str:
    """Text that cannot close the <script> element it is inlined in."""
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def render_report(store: UIStore, store_dir: Path, study: str) -> str:
    from hyperscout_ui.app import _env

    if store.get_study(study) is None:
        names = ", ".join(s["name"] for s in store.list_studies()) or "none"
        raise ConfigError(f"no study {study!r} in {store.path}; studies there: {names}")
    model = StudyModel(store, study, Actions(store_dir).study_files().get(study))
    model.importance = json_safe(compute_importance(model.ranked_for_importance(), model.axes, model.primary))
    snap = model.snapshot("all" if len(model.jobs) <= ALL_CURVES_UP_TO else "default")
    data = json.dumps(snap, separators=(",", ":"), allow_nan=False, default=str)
    plotly_js = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_text(encoding="utf-8")
    return _env().get_template("report.html").render(
        name=study, static=True, store=str(store_dir), written=time.strftime("%Y-%m-%d %H:%M"),
        css=(HERE / "static" / "app.css").read_text(encoding="utf-8"), data=_script_safe(data),
        plotly=_script_safe(plotly_js), appjs=_script_safe((HERE / "static" / "app.js").read_text(encoding="utf-8")),
        csrf="", v="")


def write_report(storage: str | Path, study: str, output: str | Path | None = None) -> Path:
    store_dir = Path(storage).expanduser().resolve()
    store = open_reader(store_dir)
    if store is None:
        raise ConfigError(f"no store at {store_dir}; run a study first or pass --storage DIR")
    try:
        html = render_report(store, store_dir, study)
    finally:
        store.close()
    out = Path(output or f"{study}.html")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out

"""Summaries, markdown tables and best-so-far plots of the quality benchmark."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tasks import MF_TASK, SF_TASKS, describe_dims
from units import DIRECT_LABELS, MF_DIRECT_LABELS, MF_LABELS, SF_LABELS

#: strategies that use a model (the first target is about them)
MODEL_BASED = ("optuna", "skopt_gp", "skopt_rf", "bohb")
MF_STRATEGIES = ("hyperband", "bohb", "optuna_hb")
OVERHEAD_TARGET = 1.05


def stats(values: Sequence[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=float)
    return {"median": float(np.median(a)), "q25": float(np.percentile(a, 25)), "q75": float(np.percentile(a, 75)),
            "min": float(a.min()), "max": float(a.max())}


def fmt(x: float) -> str:
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    if abs(x) >= 1000:
        return f"{x:.0f}"
    return f"{x:.4g}"


def cell(s: dict[str, float]) -> str:
    return f"{fmt(s['median'])} [{fmt(s['q25'])}, {fmt(s['q75'])}]"


def summarize(cfg: dict[str, Any], sf_units: list[dict[str, Any]], mf_units: list[dict[str, Any]],
              overhead: list[dict[str, Any]]) -> dict[str, Any]:
    """Everything the report shows, computed once (also what quality.json holds)."""
    sf: dict[str, Any] = {}
    for t in cfg["sf_tasks"]:
        sf[t] = {}
        for g in cfg["sf_groups"]:
            runs = sorted((u for u in sf_units if u["task"] == t and u["group"] == g), key=lambda u: u["seed"])
            if not runs:
                continue
            bests = [min(u["values"]) for u in runs]
            curves = [np.minimum.accumulate(u["values"]).tolist() for u in runs]
            entry: dict[str, Any] = {"best": bests, "stats": stats(bests), "curves": curves,
                                     "opt_seconds": [u["opt_seconds"] for u in runs]}
            if all("direct" in u for u in runs):
                dbests = [min(u["direct"]["values"]) for u in runs]
                entry["direct"] = {
                    "best": dbests, "stats": stats(dbests),
                    "identical": sum(u["direct"]["identical"] for u in runs),
                    "n": sum(u["direct"]["n"] for u in runs),
                    "curves": [np.minimum.accumulate(u["direct"]["values"]).tolist() for u in runs],
                    "opt_seconds": [u["direct"]["opt_seconds"] for u in runs],
                }
            sf[t][g] = entry
        rnd = sf[t]["random"]["stats"]["median"]
        for g, e in sf[t].items():
            e["beats_random"] = g != "random" and e["stats"]["median"] < rnd
    mf: dict[str, Any] = {}
    for g in cfg["mf_groups"]:
        runs = sorted((u for u in mf_units if u["group"] == g), key=lambda u: u["seed"])
        if not runs:
            continue
        entry = {"best": [u["best"] for u in runs], "stats": stats([u["best"] for u in runs]),
                 "curves": [u["curve"] for u in runs],
                 "jobs": [u["jobs"] for u in runs], "pruned": [u["pruned"] for u in runs],
                 "full_budget_jobs": [u["full_budget_jobs"] for u in runs],
                 "iterations": [u["iterations"] for u in runs]}
        if all("direct" in u for u in runs):
            ds = [u["direct"] for u in runs]
            entry["direct"] = {"kind": ds[0]["kind"], "best": [d["best"] for d in ds],
                               "stats": stats([d["best"] for d in ds]), "curves": [d["curve"] for d in ds],
                               "jobs": [d["jobs"] for d in ds], "pruned": [d["pruned"] for d in ds],
                               "full_budget_jobs": [d["full_budget_jobs"] for d in ds],
                               "iterations": [min(d["iterations"], cfg["mf_budget"]) for d in ds],
                               "identical_ends": sum(d["identical_ends"] for d in ds),
                               "n_ends": sum(d["n_ends"] for d in ds)}
        mf[g] = entry
    if "random" in mf:
        for g, e in mf.items():
            e["beats_random"] = g != "random" and e["stats"]["median"] < mf["random"]["stats"]["median"]
    return {"config": cfg, "single_fidelity": sf, "multi_fidelity": mf, "overhead": overhead,
            "targets": targets(cfg, sf, mf, overhead)}


def _same_quality(e: dict[str, Any]) -> tuple[bool, str]:
    """Same quality: identical suggestions in every run, or a median inside the direct runs' IQR or better."""
    d = e["direct"]
    if d.get("identical", d.get("identical_ends")) == d.get("n", d.get("n_ends")):
        return True, "identical"
    ok = e["stats"]["median"] <= d["stats"]["q75"]
    return ok, f"median {fmt(e['stats']['median'])} vs direct {cell(d['stats'])}"


def targets(cfg: dict[str, Any], sf: dict[str, Any], mf: dict[str, Any], overhead: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    n_tasks = len(sf)
    need = min(3, n_tasks)
    for g in MODEL_BASED:
        if g not in cfg["sf_groups"] or not sf:
            continue
        wins = [t for t in sf if sf[t].get(g, {}).get("beats_random")]
        out.append({"target": f"{SF_LABELS[g]} beats random's median on >= {need} of {n_tasks} tasks",
                    "met": len(wins) >= need, "detail": f"{len(wins)}/{n_tasks}: {', '.join(wins) or 'none'}"})
    for g in MF_STRATEGIES:
        if g in mf and "random" in mf:
            out.append({"target": f"multi-fidelity: {MF_LABELS[g]} beats random at equal iterations",
                        "met": bool(mf[g]["beats_random"]),
                        "detail": f"median {fmt(mf[g]['stats']['median'])} vs random {fmt(mf['random']['stats']['median'])}"})
    for g, lib in (("optuna", "optuna"), ("skopt_gp", "skopt"), ("bohb", "bohb")):
        per_task = [(t, _same_quality(sf[t][g])) for t in sf if g in sf[t] and "direct" in sf[t][g]]
        mf_key = {"optuna": "optuna_hb", "bohb": "bohb"}.get(g)
        if mf_key and mf_key in mf and "direct" in mf[mf_key]:
            per_task.append((MF_TASK.name, _same_quality(mf[mf_key])))
        if per_task:
            ok = all(r[0] for _, r in per_task)
            detail = "; ".join(f"{t}: {r[1]}" for t, r in per_task)
            out.append({"target": f"plugin {lib} reaches the same quality as {lib} driven directly", "met": ok,
                        "detail": detail})
    for o in overhead:
        r = o["ratios"]["ask/tell"]["median"]
        out.append({"target": f"plugin {o['library']}: per-suggestion time within 5% of the direct ask/tell",
                    "met": r <= OVERHEAD_TARGET, "detail": f"ratio {r:.3f}"})
    return out


# -- markdown --------------------------------------------------------------------------------------------
def markdown(summary: dict[str, Any], elapsed: float) -> str:
    cfg = summary["config"]
    sf, mf = summary["single_fidelity"], summary["multi_fidelity"]
    L: list[str] = []
    L.append("# bench/quality: search quality against random search\n")
    L.append(f"Produced by `python bench/quality/run.py {cfg['argv']}` in {elapsed / 60:.1f} min "
             f"({cfg['machine']}). Seeds {cfg['seeds']}; every number is over these seeds.\n")
    if sf:
        _sf_markdown(L, cfg, sf)
    metric = {"error": "validation error", "logloss": "validation log-loss"}[cfg["mf_metric"]]
    if mf:
        _mf_markdown(L, cfg, mf, metric)
    _direct_markdown(L, summary)
    L.append("## Targets\n")
    for t in summary["targets"]:
        L.append(f"- **{'met' if t['met'] else 'NOT MET'}**: {t['target']} ({t['detail']})")
    L.append("")
    L.append("Best-so-far curves (median over seeds, shaded 25th–75th percentile): " +
             ", ".join(f"`{p}`" for p in cfg["plots"]) + ".\n")
    return "\n".join(L)


def _sf_markdown(L: list[str], cfg: dict[str, Any], sf: dict[str, Any]) -> None:
    L.append("## Single fidelity: median best value after "
             f"{cfg['evals']} evaluations (lower is better)\n")
    L.append("Each cell: median [25th, 75th percentile] over the seeds of the best value found; "
             "✓ = the median beats random's median. Every strategy gets the same number of evaluations.\n")
    tasks = list(sf)
    L.append("| strategy | " + " | ".join(tasks) + " | beats random |")
    L.append("|---|" + "---|" * len(tasks) + "---|")
    for g in cfg["sf_groups"]:
        cells = []
        wins = 0
        for t in tasks:
            e = sf[t].get(g)
            if e is None:
                cells.append("–")
                continue
            wins += bool(e["beats_random"])
            cells.append(cell(e["stats"]) + (" ✓" if e["beats_random"] else ""))
        L.append(f"| {SF_LABELS[g]} | " + " | ".join(cells) + f" | {'–' if g == 'random' else f'{wins}/{len(tasks)}'} |")
    opt_row = [fmt(SF_TASKS[t].optimum) if SF_TASKS[t].optimum is not None else "unknown" for t in tasks]
    L.append("| *global minimum* | " + " | ".join(opt_row) + " | |")
    L.append("")
    L.append("Tasks:\n")
    for t in tasks:
        L.append(f"- `{t}`: {SF_TASKS[t].label}; {describe_dims(SF_TASKS[t].dims)}")
    L.append("")
    L.append("Strategy settings (each library's defaults, seeded by the study seed): optuna = TPESampler "
             "(10 random start-up trials); skopt = `base_estimator` gp or rf, `acq_func=gp_hedge`, 10 initial points; "
             "bohb = hpbandster's BOHB config generator defaults (`min_points_in_model` = dims+1, "
             "`random_fraction` 1/3, 64 samples), run with `min_iteration_per_job = max_iteration_per_job = 1` "
             "so every job is a full evaluation.\n")


def _mf_markdown(L: list[str], cfg: dict[str, Any], mf: dict[str, Any], metric: str) -> None:
    L.append(f"## Multi-fidelity: equal total training iterations ({cfg['mf_budget']} epochs)\n")
    label = MF_TASK.label.replace("validation error", metric)
    L.append(f"Task `{MF_TASK.name}`: {label}; {describe_dims(MF_TASK.dims)}. "
             f"`min_iteration_per_job = {cfg['mf_min']}`, `max_iteration_per_job = {cfg['mf_max']}`, eta 3 "
             f"(rungs 1, 3, 9, 27). Every epoch of every job is charged, including the re-runs from scratch of "
             f"configurations promoted by hyperband/bohb; the study stops when {cfg['mf_budget']} epochs are spent "
             f"(= {cfg['mf_budget'] // cfg['mf_max']} full trainings for random search). "
             f"Value: {metric} of the best job (the job's last reported value).\n")
    grid = cfg["mf_grid"]
    marks = [max([i for i, g in enumerate(grid) if g <= cfg["mf_budget"] * k / 3] or [0]) for k in (1, 2)]
    rnd = mf.get("random", {}).get("stats", {}).get("median")
    L.append(f"| strategy | median best {metric} [IQR] | at {grid[marks[0]]} epochs | at {grid[marks[1]]} epochs | "
             "seeds below random's median | jobs | pruned | jobs at 27 epochs | beats random |")
    L.append("|---|---|---|---|---|---|---|---|---|")
    for g in cfg["mf_groups"]:
        e = mf.get(g)
        if e is None:
            continue
        at = [fmt(float(np.median([c[m] for c in e["curves"]]))) for m in marks]
        below = "–" if g == "random" or rnd is None else f"{sum(b < rnd for b in e['best'])}/{len(e['best'])}"
        L.append(f"| {MF_LABELS[g]} | {cell(e['stats'])} | {at[0]} | {at[1]} | {below} | {np.median(e['jobs']):.0f} | "
                 f"{np.median(e['pruned']):.0f} | {np.median(e['full_budget_jobs']):.0f} | "
                 f"{'–' if g == 'random' else ('yes' if e['beats_random'] else 'no')} |")
    L.append("\n(the target is judged at the full budget; the two middle columns are the same runs' best-so-far "
             "medians earlier on; jobs, pruned and full-budget jobs are medians over the seeds)\n")
    if cfg["mf_metric"] == "error":
        L.append("The validation set holds 599 digits, so the error moves in steps of 1/599 = 0.00167 "
                 "(0.01836 = 11 misclassified digits, 0.01669 = 10).\n")


def _direct_markdown(L: list[str], summary: dict[str, Any]) -> None:
    sf, mf = summary["single_fidelity"], summary["multi_fidelity"]
    tasks = list(sf)
    L.append("## Plugins against the same library driven directly\n")
    L.append("Same seeds, same evaluations. *identical* counts the suggestions (single fidelity) or the job "
             "results (multi-fidelity) that were exactly the same in the plugin run and the direct run.\n")
    L.append("| library, driven directly | task | plugin: median best [IQR] | direct: median best [IQR] | identical |")
    L.append("|---|---|---|---|---|")
    for g in ("optuna", "skopt_gp", "bohb"):
        for t in tasks:
            e = sf[t].get(g)
            if e is None or "direct" not in e:
                continue
            d = e["direct"]
            L.append(f"| {DIRECT_LABELS[g]} | {t} | {cell(e['stats'])} | {cell(d['stats'])} | {d['identical']}/{d['n']} |")
    for g in ("optuna_hb", "bohb"):
        e = mf.get(g)
        if e is None or "direct" not in e:
            continue
        d = e["direct"]
        L.append(f"| {MF_DIRECT_LABELS[d['kind']]} | {MF_TASK.name} | {cell(e['stats'])} | {cell(d['stats'])} | "
                 f"{d['identical_ends']}/{d['n_ends']} |")
    L.append("")
    if summary["overhead"]:
        L.append("### Per-suggestion overhead\n")
        L.append("Time spent in the optimizer per suggestion (plugin: `ask` + `tell`; direct: the library's own "
                 "ask + tell), same seed on both sides so the model work is identical, objective (Branin) excluded. "
                 "Sides run back to back in alternating order; ratio = median over repetitions of plugin / direct "
                 "[min–max]. BLAS is limited to one thread for both sides.\n")
        L.append("| library | direct call | suggestions × reps | plugin ms | direct ms | ratio | within 5% |")
        L.append("|---|---|---|---|---|---|---|")
        for o in summary["overhead"]:
            r = o["ratios"]["ask/tell"]
            ms = o["ms_per_suggestion"]
            L.append(f"| {o['library']} | {o['direct_call']} | {o['suggestions']} × {o['repetitions']} | "
                     f"{ms['plugin']:.3f} | {ms['ask/tell']:.3f} | {r['median']:.3f} [{r['min']:.3f}–{r['max']:.3f}] | "
                     f"{'met' if r['median'] <= OVERHEAD_TARGET else 'not met'} |")
            if "study.optimize" in o["ratios"]:
                r2 = o["ratios"]["study.optimize"]
                L.append(f"| {o['library']} | `study.optimize` loop (wall time minus the objective) | "
                         f"{o['suggestions']} × {o['repetitions']} | {ms['plugin']:.3f} | {ms['study.optimize']:.3f} | "
                         f"{r2['median']:.3f} [{r2['min']:.3f}–{r2['max']:.3f}] | "
                         f"{'met' if r2['median'] <= OVERHEAD_TARGET else 'not met'} |")
        L.append("")


# -- plots -------------------------------------------------------------------------------------------------
_COLORS = {"random": "black", "optuna": "tab:blue", "skopt_gp": "tab:orange", "skopt_rf": "tab:green",
           "bohb": "tab:red", "hyperband": "tab:purple", "optuna_hb": "tab:blue"}


def _band(ax: Any, x: Sequence[float], curves: list[list[float]], label: str, color: str, log: bool,
          offset: float = 0.0, style: str = "-") -> None:
    a = np.asarray(curves, dtype=float) - offset
    if log:
        a = np.maximum(a, 1e-6)
    med = np.median(a, axis=0)
    ax.plot(x, med, style, color=color, label=label, lw=1.8)
    if style == "-":
        ax.fill_between(x, np.percentile(a, 25, axis=0), np.percentile(a, 75, axis=0), color=color, alpha=0.12)


def plots(summary: dict[str, Any], out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = summary["config"]
    names = []
    for t, groups in summary["single_fidelity"].items():
        task = SF_TASKS[t]
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        offset = task.optimum if task.optimum is not None else 0.0
        log = task.optimum is not None
        for g, e in groups.items():
            x = np.arange(1, len(e["curves"][0]) + 1)
            _band(ax, x, e["curves"], SF_LABELS[g], _COLORS[g], log, offset)
        ax.set_yscale("log")
        if log:
            ax.set_ylabel("best value − global minimum (log)")
        else:
            ax.set_ylabel("best value (log)")
        ax.set_xlabel("evaluations")
        ax.set_title(f"{task.label}: median of {len(cfg['seeds'])} seeds", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        name = f"quality_{t}.png"
        fig.savefig(out_dir / name, dpi=110)
        plt.close(fig)
        names.append(name)
    mf = summary["multi_fidelity"]
    if mf:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        grid = cfg["mf_grid"]
        for g, e in mf.items():
            _band(ax, grid, e["curves"], MF_LABELS[g], _COLORS[g], False)
            if "direct" in e:
                _band(ax, grid, e["direct"]["curves"], MF_DIRECT_LABELS[e["direct"]["kind"]] + " (direct)",
                      _COLORS[g], False, style=":")
        ax.set_xlabel("training epochs spent (all jobs)")
        if cfg["mf_metric"] == "error":
            ax.set_ylabel("best validation error")
            ax.set_ylim(0.0, min(0.06, ax.get_ylim()[1]))
        else:
            ax.set_ylabel("best validation log-loss")
            ax.set_ylim(top=min(0.5, ax.get_ylim()[1]))
        label = MF_TASK.label if cfg["mf_metric"] == "error" else MF_TASK.label.replace("error", "log-loss")
        ax.set_title(f"{label}: median of {len(cfg['seeds'])} seeds", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        name = f"quality_{MF_TASK.name}.png"
        fig.savefig(out_dir / name, dpi=110)
        plt.close(fig)
        names.append(name)
    return names

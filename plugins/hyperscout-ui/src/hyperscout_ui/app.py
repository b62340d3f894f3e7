"""The web app: pages, JSON, server-sent events and the actions, over one store directory.

Pages are server-rendered HTML (Jinja2, autoescaped) plus one small script (``static/app.js``)
that draws the plotly figures from the JSON and applies the live deltas. plotly.js is served
from the installed ``plotly`` package, so nothing loads from the internet.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import json
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import plotly
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from hyperscout.errors import HyperscoutError
from hyperscout.store import json_safe
from hyperscout_ui import forms
from hyperscout_ui.actions import ActionError, Actions
from hyperscout_ui.data import Cursor, safe_inside
from hyperscout_ui.live import Hub, read_tail, sse
from hyperscout_ui.security import Guard

__all__ = ["create_app"]

HERE = Path(__file__).parent
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
ASSET_VERSION = f"{plotly.__version__}-{int((HERE / 'static' / 'app.js').stat().st_mtime)}"


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=select_autoescape(["html"]))
    env.filters["q"] = lambda s: quote(str(s), safe="")
    env.filters["tojson_attr"] = lambda v: json.dumps(v, default=str)
    return env


def plugin_catalog() -> dict[str, Any]:
    """Installed strategies (with the option names each declares) and backends, for the form."""
    from hyperscout.plugins import backends, strategies

    strats = []
    for e in sorted(strategies(), key=lambda e: e.name):
        strats.append({"name": e.name, "options": list(e.cls.option_names()), "any": e.cls.accepts_any_option(),
                       "distribution": e.distribution or "", "doc": (e.cls.__doc__ or "").strip().splitlines()[0:1]})
    backs = [{"name": e.name, "distribution": e.distribution or ""} for e in sorted(backends(), key=lambda e: e.name)]
    return {"strategies": strats, "backends": backs}


def create_app(store_dir: str | Path, *, token: str | None = None, loopback_only: bool = True,
               poll: float = 0.3, base_dir: str | Path | None = None) -> Starlette:
    """The app over ``store_dir``; ``token`` makes every request need it (any non-loopback bind)."""
    store_dir = Path(store_dir).resolve()
    base = Path(base_dir or os.getcwd()).resolve()
    actions = Actions(store_dir)
    hub = Hub(store_dir, actions, poll=poll)
    csrf = secrets.token_urlsafe(32)
    env = _env()
    catalog_cache: dict[str, Any] = {}

    def catalog() -> dict[str, Any]:
        if not catalog_cache:
            catalog_cache.update(plugin_catalog())
        return catalog_cache

    def page(template: str, request: Request, status: int = 200, **ctx: Any) -> HTMLResponse:
        html = env.get_template(template).render(csrf=csrf, v=ASSET_VERSION, store=str(store_dir), request=request,
                                             static=False, **ctx)
        return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})

    async def form_of(request: Request) -> dict[str, Any]:
        """The posted form, after the CSRF check (403 if it fails)."""
        data = await request.form()
        sent = request.headers.get("x-csrf-token") or str(data.get("csrf", ""))
        if not secrets.compare_digest(sent.encode(), csrf.encode()):
            raise _Forbidden()
        return {k: v for k, v in data.multi_items()}

    def message(request: Request, title: str, text: str, status: int = 400, back: str = "/") -> HTMLResponse:
        return page("message.html", request, status=status, title=title, text=text, back=back)

    # -- pages
    async def index(request: Request) -> Response:
        return page("list.html", request)

    async def study_page(request: Request) -> Response:
        name = request.path_params["name"]
        # the page will ask for its data at once: start building it now, while the browser loads the scripts
        prepare = asyncio.get_running_loop().run_in_executor(None, hub.snapshot_body, name, "default")
        prepare.add_done_callback(lambda f: f.cancelled() or f.exception())  # an error shows when the page asks, not here
        return page("study.html", request, name=name, notice=request.query_params.get("notice", ""))

    async def job_page(request: Request) -> Response:
        return page("job.html", request, job_id=request.path_params["job_id"])

    async def launch_get(request: Request) -> Response:
        clone = request.query_params.get("from")
        fields = forms.blank_fields()
        note = ""
        if clone:
            doc = await run_in_threadpool(lambda: actions.study_doc(clone, hub.reader()))
            if doc is None:
                return message(request, "No such study", f"no study {clone!r} in {store_dir}", 404)
            declared = {s["name"]: tuple(s["options"]) for s in catalog()["strategies"]}
            fields = forms.doc_to_fields(doc, declared)
            fields["study.name"] = _free_name(f"{clone}-clone", hub)
            note = f"Cloned from {clone}: change what you like, then launch."
        return _form_page(request, fields, {}, note)

    def _form_page(request: Request, fields: dict[str, str], errors: dict[str, str], note: str = "",
                   status: int = 200) -> HTMLResponse:
        f = dict(fields)
        n_obj = max(1, forms.rows(f, "objective"))
        n_par = max(1, forms.rows(f, "parameters"))
        n_met = forms.rows(f, "metrics")
        adv_open = n_met > 0 or any(k.startswith(("limits.", "metrics")) and k != "limits.max_number_of_concurrent_tasks"
                                    for k in errors)
        return page("launch.html", request, status=status, f=f, errors=errors, note=note, n_obj=n_obj, adv_open=adv_open,
                    n_par=n_par, n_met=n_met, catalog=catalog(), limits=forms.LIMITS, signs=forms.SIGNS,
                    param_types=forms.PARAM_TYPES, base_dir=str(base))

    async def launch_post(request: Request) -> Response:
        data = await form_of(request)
        do = str(data.pop("do", "validate"))
        data.pop("csrf", None)
        upload = data.pop("import_file", None)
        fields = {k: str(v) for k, v in data.items() if isinstance(v, str)}
        if do == "import":
            if upload is None or not hasattr(upload, "read"):
                return _form_page(request, fields, {"_import": "choose a .toml study file or a .json configuration"},
                                  status=400)
            raw = await upload.read()
            try:
                doc = forms.parse_import(upload.filename or "upload", raw)
            except HyperscoutError as exc:
                return _form_page(request, fields, {"_import": str(exc)}, status=400)
            declared = {s["name"]: tuple(s["options"]) for s in catalog()["strategies"]}
            return _form_page(request, forms.doc_to_fields(doc, declared), {},
                              f"Imported {upload.filename}: check the fields, then launch.")
        if do.startswith("add:") or do.startswith("remove:"):
            return _form_page(request, _rows_edit(fields, do), {})
        doc, errors = forms.fields_to_doc(fields, base, store_dir)
        if do in ("export_toml", "export_json"):
            if do == "export_toml":
                body, mime, ext = forms.toml_text(doc), "application/toml", "toml"
            else:
                body, mime, ext = json.dumps(forms.doc_to_clearml(doc), indent=2), "application/json", "json"
            fname = f"{fields.get('study.name') or 'study'}.{ext}"
            return Response(body, media_type=mime,
                            headers={"Content-Disposition": f'attachment; filename="{quote(fname)}"'})
        if not errors:
            workdir = actions.root / "tmp"
            errors, _cfg = await run_in_threadpool(forms.validate_doc, doc, fields, workdir)
        if errors:
            return _form_page(request, fields, errors, status=400)
        if do != "launch":
            return _form_page(request, fields, {}, "Valid: this study can be launched.")
        try:
            name = await run_in_threadpool(actions.launch, doc)
        except ActionError as exc:
            return _form_page(request, fields, {"study.name": str(exc)}, status=400)
        return RedirectResponse(f"/study/{quote(name, safe='')}?notice=launched", status_code=303)

    async def delete_confirm(request: Request) -> Response:
        name = request.query_params.get("study", "")
        rows = await run_in_threadpool(hub.study_list)
        row = next((r for r in rows if r["name"] == name), None)
        if row is None:
            return message(request, "No such study", f"no study {name!r}", 404)
        return page("confirm.html", request, row=row)

    # -- actions (POST, CSRF-checked, audited)
    async def action(request: Request) -> Response:
        verb = request.path_params["verb"]
        data = await form_of(request)
        name = str(data.get("study", ""))
        back = f"/study/{quote(name, safe='')}"
        try:
            if verb == "stop":
                await run_in_threadpool(actions.stop, name)
                notice = "stop requested (SIGINT sent to the study's process)"
            elif verb == "resume":
                await run_in_threadpool(actions.resume, name)
                notice = "resumed"
            elif verb == "extend":
                jobs = _int_or_none(data.get("more_jobs"))
                minutes = _float_or_none(data.get("more_minutes"))
                await run_in_threadpool(actions.extend, name, jobs, minutes)
                notice = "extended and restarted"
            elif verb == "delete":
                if data.get("confirm") != name:
                    raise ActionError("type the study's name to confirm the deletion")
                n = await run_in_threadpool(actions.delete, name)
                hub.forget(name)
                return RedirectResponse(f"/?notice={quote(f'deleted {name} ({n} jobs)')}", status_code=303)
            elif verb == "export":
                fmt = str(data.get("format", "csv"))
                text, mime = await run_in_threadpool(actions.export, name, fmt)
                fname = f"{name}.{fmt}"
                return Response(text, media_type=mime,
                                headers={"Content-Disposition": f'attachment; filename="{quote(fname)}"'})
            elif verb == "clear":
                rows = await run_in_threadpool(hub.study_list)
                names = [r["name"] for r in rows if r["state"] != "running" and not r["cleared"]]
                n = await run_in_threadpool(actions.clear_finished, names)
                return RedirectResponse(f"/?notice={quote(f'cleared {n} finished studies')}", status_code=303)
            else:
                return message(request, "Unknown action", f"no action {verb!r}", 404)
        except (ActionError, HyperscoutError) as exc:
            if request.headers.get("x-csrf-token"):
                return JSONResponse({"error": str(exc)}, status_code=409)
            return message(request, f"Cannot {verb}", str(exc), 409, back=back if name else "/")
        if request.headers.get("x-csrf-token"):
            return JSONResponse({"ok": True, "notice": notice})
        return RedirectResponse(f"{back}?notice={quote(notice)}", status_code=303)

    # -- JSON
    async def api_studies(request: Request) -> Response:
        rows = await run_in_threadpool(hub.study_list)
        return JSONResponse({"rows": rows, "store": str(store_dir), "now": time.time()})

    async def api_study(request: Request) -> Response:
        name = request.query_params.get("name", "")
        curves = "all" if request.query_params.get("curves") == "all" else "default"
        raw, gz = await run_in_threadpool(hub.snapshot_body, name, curves)
        headers = {"Cache-Control": "no-store", "X-HS-Now": f"{time.time():.3f}"}
        if gz is not None and "gzip" in request.headers.get("accept-encoding", ""):
            return Response(gz, media_type="application/json",
                            headers={**headers, "Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
        return Response(raw, media_type="application/json", headers=headers)

    async def api_curves(request: Request) -> Response:
        name = request.query_params.get("name", "")
        which = request.query_params.get("jobs", "all")
        numbers = None if which == "all" else [int(x) for x in which.split(",") if x.strip().isdigit()]
        return _json({"curves": await run_in_threadpool(hub.curves, name, numbers)})

    async def api_job(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        data = await run_in_threadpool(_job_data, hub, store_dir, job_id)
        if data is None:
            return JSONResponse({"error": f"no job {job_id!r}"}, status_code=404)
        return _json(data)

    async def job_log(request: Request) -> Response:
        job_id, which = request.path_params["job_id"], request.path_params["which"]
        path = await run_in_threadpool(_log_path, hub, store_dir, job_id, which)
        if path is None:
            return PlainTextResponse("no such log in this store\n", status_code=404)
        return FileResponse(path, media_type="text/plain; charset=utf-8")

    async def launch_log(request: Request) -> Response:
        name = request.query_params.get("name", "")
        path = safe_inside(store_dir, actions.log_path(name))
        if path is None:
            return PlainTextResponse("no launch log for this study\n", status_code=404)
        return FileResponse(path, media_type="text/plain; charset=utf-8")

    # -- live
    async def stream_list(request: Request) -> Response:
        q = hub.subscribe("")

        async def gen() -> AsyncIterator[str]:
            try:
                yield "retry: 1000\n\n"
                async for chunk in _relay(q, lambda item: sse(item, "rows")):
                    yield chunk
            finally:
                hub.unsubscribe("", q)

        return _stream(gen())

    async def stream_study(request: Request) -> Response:
        name = request.query_params.get("name", "")
        since = Cursor.parse(request.headers.get("last-event-id") or request.query_params.get("since"))
        q = hub.subscribe(name)

        async def gen() -> AsyncIterator[str]:
            try:
                yield "retry: 1000\n\n"
                first = await run_in_threadpool(hub.catch_up, name, since)
                if first:
                    yield sse(first, "delta", first["cursor"])
                async for chunk in _relay(q, lambda item: sse(item, "delta", item.get("cursor"))):
                    yield chunk
            finally:
                hub.unsubscribe(name, q)

        return _stream(gen())

    async def stream_job(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        cur = _JobCursor.parse(request.headers.get("last-event-id") or request.query_params.get("since"))

        async def gen() -> AsyncIterator[str]:
            yield "retry: 1000\n\n"
            idle = 0.0
            while not hub.closed:
                delta = await run_in_threadpool(_job_delta, hub, store_dir, job_id, cur)
                if hub.closed:
                    return
                if delta:
                    idle = 0.0
                    yield sse(delta, "delta", str(cur))
                else:
                    idle += 0.25
                    if idle >= 15:
                        idle = 0.0
                        yield ": ping\n\n"
                await asyncio.sleep(0.25)

        return _stream(gen())

    async def static_file(request: Request) -> Response:
        name = request.path_params["name"]
        cache = {"Cache-Control": "public, max-age=31536000, immutable"}
        if name.startswith("plotly-") and name.endswith(".min.js"):
            if "gzip" not in request.headers.get("accept-encoding", ""):
                return FileResponse(PLOTLY_JS, media_type="text/javascript", headers=cache)
            body = await run_in_threadpool(_plotly_gz)  # compressed once, not per request (4.8 MB -> 1.5 MB)
            return Response(body, media_type="text/javascript",
                             headers={**cache, "Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
        path = safe_inside(HERE / "static", HERE / "static" / name)
        if path is None:
            return PlainTextResponse("not found\n", status_code=404)
        return FileResponse(path, headers=cache)

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("hyperscout ui: missing or wrong CSRF token; reload the page and try again\n",
                                 status_code=403)

    routes = [
        Route("/", index),
        Route("/launch", launch_get, methods=["GET"]),
        Route("/launch", launch_post, methods=["POST"]),
        Route("/study/{name:path}", study_page),
        Route("/job/{job_id}", job_page),
        Route("/job/{job_id}/log/{which}", job_log),
        Route("/delete", delete_confirm),
        Route("/action/{verb}", action, methods=["POST"]),
        Route("/api/studies", api_studies),
        Route("/api/studies/stream", stream_list),
        Route("/api/study", api_study),
        Route("/api/study/curves", api_curves),
        Route("/api/study/stream", stream_study),
        Route("/api/study/log", launch_log),
        Route("/api/job/{job_id}", api_job),
        Route("/api/job/{job_id}/stream", stream_job),
        Route("/static/{name}", static_file),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(hub.run())
        asyncio.get_running_loop().run_in_executor(None, _plotly_gz)  # compress plotly.js before the first page
        try:
            yield
        finally:
            hub.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    app = Starlette(
        routes=routes,
        middleware=[Middleware(Guard, token=token, loopback_only=loopback_only),
                    Middleware(GZipMiddleware, minimum_size=1024, compresslevel=5)],
        exception_handlers={_Forbidden: not_allowed},
        lifespan=lifespan,
    )
    app.state.hub = hub
    app.state.actions = actions
    app.state.csrf = csrf
    return app


class _Forbidden(Exception):
    pass


@functools.lru_cache(maxsize=1)
def _plotly_gz() -> bytes:
    return gzip.compress(PLOTLY_JS.read_bytes(), compresslevel=6, mtime=0)


async def _relay(q: asyncio.Queue[Any], render: Callable[[Any], str]) -> AsyncIterator[str]:
    """What a hub queue receives, rendered as server-sent events, with a ping every 15 s of silence
    (so proxies and the browser keep the connection); ends when the hub sends None."""
    while True:
        try:
            item = await asyncio.wait_for(q.get(), 15)
        except asyncio.TimeoutError:
            yield ": ping\n\n"
            continue
        if item is None:
            return
        yield render(item)


def _stream(gen: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(gen, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _json(payload: Any) -> Response:
    body = json.dumps(payload, separators=(",", ":"), allow_nan=False, default=str)
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})


def _int_or_none(v: Any) -> int | None:
    try:
        return int(str(v)) if str(v or "").strip() else None
    except ValueError:
        raise ActionError(f"{v!r} is not a whole number") from None


def _float_or_none(v: Any) -> float | None:
    try:
        return float(str(v)) if str(v or "").strip() else None
    except ValueError:
        raise ActionError(f"{v!r} is not a number") from None


def _free_name(wanted: str, hub: Hub) -> str:
    names = {r["name"] for r in hub.study_list()}
    name, i = wanted, 2
    while name in names:
        name, i = f"{wanted}-{i}", i + 1
    return name


def _rows_edit(fields: dict[str, str], do: str) -> dict[str, str]:
    """Add or remove a row of objectives, parameters or metric patterns (no script needed for this)."""
    parts = do.split(":")
    prefix = parts[1]
    n = forms.rows(fields, prefix)
    if parts[0] == "add":
        key = {"objective": "sign", "parameters": "type", "metrics": "regex"}.get(prefix, "name")
        fields[f"{prefix}[{max(n, 1 if prefix != 'metrics' else 0)}].{key}"] = \
            {"sign": "min", "type": "UniformParameterRange"}.get(key, "")
        return fields
    idx = int(parts[2])
    out: dict[str, str] = {}
    for k, v in fields.items():
        m = k.startswith(f"{prefix}[") and k[len(prefix) + 1:].split("]", 1)
        if not m:
            out[k] = v
            continue
        i, rest = int(m[0]), m[1]
        if i == idx:
            continue
        out[f"{prefix}[{i - 1 if i > idx else i}]{rest}"] = v
    return out


# -- job page data --------------------------------------------------------------------------------
def _job_and_store(hub: Hub, job_id: str) -> tuple[Any, Any]:
    with hub.lock:
        store = hub.reader()
        return (None, None) if store is None else (store.job(job_id), store)


def _log_path(hub: Hub, store_dir: Path, job_id: str, which: str) -> Path | None:
    """A job's log, looked up by job id in the store and served only if it lies inside the store directory."""
    if which not in ("stdout", "stderr"):
        return None
    job, _ = _job_and_store(hub, job_id)
    if job is None:
        return None
    return safe_inside(store_dir, job.stdout_path if which == "stdout" else job.stderr_path)


def _job_data(hub: Hub, store_dir: Path, job_id: str) -> dict[str, Any] | None:
    with hub.lock:
        job, store = _job_and_store(hub, job_id)
        if job is None:
            return None
        info = store.get_study(job.study) or {}
        metrics = store.job_metrics(job_id)
        events = store.events_since(job.study, 0, job_id)
        m = hub.model(job.study)
        axes = m.axes if m is not None and m.exists else []
    logs = {}
    for which, p in (("stdout", job.stdout_path), ("stderr", job.stderr_path)):
        path = safe_inside(store_dir, p)
        text, off, cut = read_tail(path)
        logs[which] = {"text": text, "offset": off, "cut": cut, "available": path is not None,
                       "outside": bool(p) and path is None and Path(p).exists()}
    definition = info.get("definition") or {}
    return json_safe({
        "job": {"id": job.id, "study": job.study, "number": job.number, "status": job.status.value,
                "params": job.params, "budget": job.budget, "values": job.objective_values,
                "iterations": job.objective_iterations, "created": job.created, "queued": job.queued,
                "started": job.started, "ended": job.ended, "exit_code": job.exit_code, "reason": job.reason,
                "pid": job.pid, "retry_of": job.retry_of, "superseded_by": job.superseded_by,
                "interrupted": job.interrupted, "archived": job.archived, "handle": job.handle},
        "objectives": definition.get("objectives") or [], "axes": axes,
        "metrics": [[t, s, i, v, tm, a] for _, t, s, i, v, tm, a in metrics],
        "events": events, "logs": logs, "now": time.time(),
        "cursor": str(_JobCursor(max((r[0] for r in metrics), default=0),
                                 max((e["id"] for e in events), default=0),
                                 logs["stdout"]["offset"], logs["stderr"]["offset"], _job_key(job))),
    })


def _job_key(job: Any) -> str:
    return f"{job.status.value}|{job.ended}|{job.started}|{job.reason}|{job.superseded_by}"


class _JobCursor:
    def __init__(self, metrics: int = 0, events: int = 0, out: int = -1, err: int = -1, key: str = "") -> None:
        self.metrics, self.events, self.out, self.err, self.key = metrics, events, out, err, key

    @classmethod
    def parse(cls, text: str | None) -> _JobCursor:
        try:
            a, b, c, d, key = (text or "").split(":", 4)
            return cls(int(a), int(b), int(c), int(d), key)
        except ValueError:
            return cls()

    def __str__(self) -> str:
        return f"{self.metrics}:{self.events}:{self.out}:{self.err}:{self.key}"


def _job_delta(hub: Hub, store_dir: Path, job_id: str, cur: _JobCursor) -> dict[str, Any] | None:
    """What changed for one job since ``cur`` (advanced in place): its row, scalars, events, log lines."""
    with hub.lock:
        job, store = _job_and_store(hub, job_id)
        if job is None:
            return None
        metrics = store.job_metrics(job_id, cur.metrics)
        events = store.events_since(job.study, cur.events, job_id)
    out: dict[str, Any] = {}
    key = _job_key(job)
    if key != cur.key:
        cur.key = key
        out["job"] = {"status": job.status.value, "ended": job.ended, "started": job.started, "reason": job.reason,
                      "values": job.objective_values, "exit_code": job.exit_code, "superseded_by": job.superseded_by,
                      "iterations": job.objective_iterations}
    if metrics:
        cur.metrics = max(r[0] for r in metrics)
        out["metrics"] = [[t, s, i, v, tm, a] for _, t, s, i, v, tm, a in metrics]
    if events:
        cur.events = events[-1]["id"]
        out["events"] = events
    for which, p in (("stdout", job.stdout_path), ("stderr", job.stderr_path)):
        path = safe_inside(store_dir, p)
        off = cur.out if which == "stdout" else cur.err
        text, new, _ = read_tail(path, None if off < 0 else off)
        if which == "stdout":
            cur.out = new
        else:
            cur.err = new
        if text:
            out.setdefault("logs", {})[which] = text
    if not out:
        return None
    out["now"] = time.time()
    return json_safe(out)


"""Live updates: one poller per app watches the store and pushes deltas to server-sent-event streams.

``PRAGMA data_version`` tells, for free, whether any other connection committed since the last
look; only then (and every 2 s, for leases that go stale without a write) are the per-study
models refreshed. Each refresh yields only the rows past the model's cursor, which go to every
subscriber of that study at once, so N open pages cost one query per change, not N.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hyperscout.store import json_safe
from hyperscout_ui.actions import Actions
from hyperscout_ui.data import Cursor, ListModel, StudyModel, UIStore, open_reader, safe_inside
from hyperscout_ui.importance import compute_importance

__all__ = ["Hub", "sse"]

#: seconds between importance recomputations of a running study (it is the slowest panel)
IMPORTANCE_EVERY = 5.0
LOG_TAIL = 64 * 1024


def sse(payload: Any, event: str = "delta", event_id: str | None = None) -> str:
    """One server-sent event (JSON data on one line)."""
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id else "")
    return head + "data: " + json.dumps(payload, separators=(",", ":"), allow_nan=False, default=str) + "\n\n"


def _encode(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False, default=str).encode()


def read_tail(path: Path | None, offset: int | None = None, limit: int = LOG_TAIL) -> tuple[str, int, bool]:
    """Text of ``path`` from ``offset`` (None: its last ``limit`` bytes), the new offset, and whether it was cut."""
    if path is None:
        return "", 0, False
    try:
        size = path.stat().st_size
        if offset is not None and size < offset:  # truncated or replaced: start again
            offset = None
        start = max(0, size - limit) if offset is None else offset
        if size - start > limit:
            start = size - limit
        with open(path, "rb") as fh:
            fh.seek(start)
            data = fh.read(size - start)
    except OSError:
        return "", offset or 0, False
    if offset is not None and data and not data.endswith(b"\n"):  # keep a partial last line for next time
        cut = data.rfind(b"\n")
        if cut >= 0:
            data = data[:cut + 1]
        elif len(data) < limit:
            data = b""
    return data.decode("utf-8", "replace"), start + len(data), offset is None and start > 0


class Hub:
    """The app's one reader connection, the study models, and who listens to what."""

    def __init__(self, store_dir: Path, actions: Actions, poll: float = 0.3) -> None:
        self.store_dir = store_dir
        self.actions = actions
        self.poll = poll
        self.lock = threading.RLock()
        self._reader: UIStore | None = None
        self.models: dict[str, StudyModel] = {}
        self._used: dict[str, float] = {}
        self.subs: dict[str, set[asyncio.Queue[Any]]] = {}
        self.list_model = ListModel(store_dir)
        self.list_rows: dict[str, dict[str, Any]] = {}
        self._version: int | None = None
        self._last_full = 0.0
        self._importance_busy: set[str] = set()
        self._log_offsets: dict[str, int] = {}
        self._bodies: dict[str, tuple[Any, bytes, bytes | None]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.closed = False

    # -- store and models (called from worker threads, under the lock)
    def reader(self) -> UIStore | None:
        with self.lock:
            if self._reader is None:
                self._reader = open_reader(self.store_dir)
            return self._reader

    def model(self, name: str) -> StudyModel | None:
        with self.lock:
            store = self.reader()
            if store is None:
                return None
            m = self.models.get(name)
            if m is None:
                m = StudyModel(store, name, self.actions.study_files().get(name))
                self.models[name] = m
            self._used[name] = time.time()
            return m

    def snapshot(self, name: str, curves: str = "default") -> dict[str, Any]:
        with self.lock:
            m = self.model(name)
            if m is None:
                return {"pending": True, "name": name}
            delta = m.refresh()
            if delta:
                self._publish(name, delta)
            snap = m.snapshot(curves)
            if snap.get("pending"):
                text, off, _ = read_tail(safe_inside(self.store_dir, self.actions.log_path(name)))
                snap["log"] = text
                self._log_offsets[name] = off
            else:
                self._maybe_importance(name, m)
            return snap

    def snapshot_body(self, name: str, curves: str = "default") -> tuple[bytes, bytes | None]:
        """:meth:`snapshot` as JSON bytes, and gzipped; both kept until the study changes.

        A 10,000-job study is 2 MB of JSON (0.65 MB gzipped): building, encoding and compressing it
        costs a few tenths of a second, so a second page (or a reload) of an unchanged study gets the
        same bytes. The server's clock goes in a header instead (``X-HS-Now``).
        """
        with self.lock:
            m = self.model(name)
            if m is not None and m.exists:
                delta = m.refresh()
                if delta:
                    self._publish(name, delta)
            if m is None or not m.exists:
                return _encode(self.snapshot(name, curves)), None
            key = (str(m.cursor), curves, m._info_key, m.importance_at, m.importance is None)
            hit = self._bodies.get(name)
            if hit is None or hit[0] != key:
                raw = _encode(m.snapshot(curves))
                hit = (key, raw, gzip.compress(raw, compresslevel=1, mtime=0) if len(raw) > 1024 else None)
                self._bodies[name] = hit
            self._maybe_importance(name, m)  # after the page's data: it competes for the CPU
            return hit[1], hit[2]

    def catch_up(self, name: str, since: Cursor | None) -> dict[str, Any] | None:
        with self.lock:
            m = self.model(name)
            if m is None or not m.exists:
                return None
            m.refresh()
            return m.catch_up(since) if since is not None else None

    def curves(self, name: str, numbers: list[int] | None) -> list[list[Any]]:
        with self.lock:
            m = self.model(name)
            if m is None or not m.exists:
                return []
            jobs = list(m.jobs.values()) if numbers is None else [j for j in m.jobs.values() if j.number in set(numbers)]
            return m.curves(jobs)

    def study_list(self) -> list[dict[str, Any]]:
        with self.lock:
            rows = self.list_model.rows(self.reader(), self.actions.study_files())
            self.list_rows = {r["name"]: r for r in rows}
            return rows

    def forget(self, name: str) -> None:
        with self.lock:
            self.models.pop(name, None)
            self._bodies.pop(name, None)

    # -- subscriptions (event loop)
    def subscribe(self, key: str) -> asyncio.Queue[Any]:
        q: asyncio.Queue[Any] = asyncio.Queue(maxsize=1000)
        self.subs.setdefault(key, set()).add(q)
        return q

    def unsubscribe(self, key: str, q: asyncio.Queue[Any]) -> None:
        group = self.subs.get(key)
        if group is not None:
            group.discard(q)
            if not group:
                del self.subs[key]

    def _publish(self, key: str, payload: Any) -> None:
        """Hand a payload to every subscriber of ``key`` (safe from any thread)."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return

        def put() -> None:
            for q in list(self.subs.get(key, ())):
                if q.full():  # a stalled client: drop it, its EventSource reconnects and catches up by cursor
                    with contextlib.suppress(asyncio.QueueEmpty):
                        while True:
                            q.get_nowait()
                    q.put_nowait(None)
                else:
                    q.put_nowait(payload)

        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(put)

    # -- the poller
    def tick(self) -> None:
        """Refresh what subscribers watch, if the store changed (or every 2 s for leases and clocks)."""
        with self.lock:
            store = self.reader()
            if store is None:
                for name in [k for k in self.subs if k]:
                    self._pending_log(name)
                return
            version = store.data_version()
            now = time.time()
            if version == self._version and now - self._last_full < 2.0:
                return
            self._version, self._last_full = version, now
            for name in [k for k in self.subs if k]:
                m = self.model(name)
                if m is None:
                    continue
                delta = m.refresh()
                if delta:
                    if m.exists:
                        self._publish(name, delta)
                        self._maybe_importance(name, m)
                    else:
                        self._publish(name, delta)
                if not m.exists:
                    self._pending_log(name)
            if "" in self.subs:
                rows = self.list_model.rows(store, self.actions.study_files())
                new = {r["name"]: r for r in rows}
                changed = [r for n, r in new.items() if self.list_rows.get(n) != r]
                removed = [n for n in self.list_rows if n not in new]
                self.list_rows = new
                if changed or removed:
                    self._publish("", {"rows": changed, "removed": removed})
            for name, used in list(self._used.items()):  # models nobody looked at for a minute
                if name not in self.subs and now - used > 60:
                    self.models.pop(name, None)
                    self._used.pop(name, None)
                    self._bodies.pop(name, None)

    def _pending_log(self, name: str) -> None:
        path = safe_inside(self.store_dir, self.actions.log_path(name))
        if path is None:
            return
        text, off, _ = read_tail(path, self._log_offsets.get(name))
        self._log_offsets[name] = off
        if text:
            self._publish(name, {"log": text})

    def _maybe_importance(self, name: str, m: StudyModel) -> None:
        if not m.exists:
            return
        n = m.summary.get("ranked", 0)
        if n == m.importance_n or name in self._importance_busy:
            return
        if m.importance is not None and time.time() - m.importance_at < IMPORTANCE_EVERY:
            return
        self._importance_busy.add(name)
        jobs, axes, primary = m.ranked_for_importance(), list(m.axes), m.primary

        def work() -> None:
            try:
                result = json_safe(compute_importance(jobs, axes, primary))
            except Exception as exc:
                result = {"message": f"importance failed: {type(exc).__name__}: {exc}"}
            with self.lock:
                m.importance, m.importance_n, m.importance_at = result, n, time.time()
                self._importance_busy.discard(name)
            self._publish(name, {"importance": result})

        threading.Thread(target=work, name=f"importance-{name}", daemon=True).start()

    async def run(self, sleep: Callable[[float], Any] = asyncio.sleep) -> None:
        self.loop = asyncio.get_running_loop()
        while not self.closed:
            await sleep(self.poll)
            if not self.subs:
                continue
            try:
                await asyncio.to_thread(self.tick)
            except Exception as exc:  # a locked or damaged store: say it to the pages and go on polling
                for key in list(self.subs):
                    self._publish(key, {"error": str(exc).splitlines()[0]})

    def end_streams(self) -> None:
        """End every open stream now (from any thread): uvicorn waits for open connections before it exits."""
        self.closed = True
        loop = self.loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._end_all)

    def _end_all(self) -> None:
        for key in list(self.subs):
            for q in list(self.subs.get(key, ())):
                with contextlib.suppress(asyncio.QueueFull):
                    q.put_nowait(None)

    def close(self) -> None:
        self.closed = True
        for key in list(self.subs):
            for q in list(self.subs.get(key, ())):
                with contextlib.suppress(asyncio.QueueFull):
                    q.put_nowait(None)
        with self.lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

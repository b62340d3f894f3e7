"""What the app does to studies: launch detached, stop, resume, extend, delete, export; each one audited.

A study launched here is ``hyperscout run STUDY.toml`` in its own session (``start_new_session``),
its output appended to a log in the store, so it outlives the page and the app. Its study file
is kept in the store (``ui/studies/NAME.toml``): resume and extend re-run it. Every action adds
an ``events`` row of kind ``ui_action`` through a writable :class:`~hyperscout.store.Store`
opened for that action only (the pages read through a read-only one).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from hyperscout.errors import HyperscoutError, StoreError
from hyperscout.export import export_csv, export_json
from hyperscout.lease import process_start
from hyperscout.store import Store, json_safe
from hyperscout_ui.data import UIStore, objectives_of, ui_dir
from hyperscout_ui.forms import definition_to_doc, toml_text

__all__ = ["ActionError", "Actions"]


class ActionError(HyperscoutError):
    """An action that cannot be done now (one line, shown on the page)."""


def _slug(name: str) -> str:
    """A file name for a study name (any name the store allows, without path separators or dot names)."""
    return "s-" + quote(name, safe="-_")


class Actions:
    """Study files, launch logs and the state-changing actions of one store directory."""

    def __init__(self, store_dir: Path) -> None:
        self.store_dir = store_dir
        self.root = ui_dir(store_dir)
        self._children: list[subprocess.Popen[bytes]] = []

    # -- files the app keeps in the store
    def study_path(self, name: str) -> Path:
        return self.root / "studies" / f"{_slug(name)}.toml"

    def log_path(self, name: str) -> Path:
        return self.root / "logs" / f"{_slug(name)}.log"

    def study_files(self) -> dict[str, dict[str, Any]]:
        """Every study file the app wrote, by study name."""
        out: dict[str, dict[str, Any]] = {}
        folder = self.root / "studies"
        if not folder.is_dir():
            return out
        for p in sorted(folder.glob("s-*.toml")):
            try:
                doc = tomllib.loads(p.read_text(encoding="utf-8"))
            except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
                continue
            name = (doc.get("study") or {}).get("name")
            if isinstance(name, str):
                out[name] = doc
        return out

    def study_doc(self, name: str, store: Store | None) -> dict[str, Any] | None:
        """The study file of ``name``: the one the app wrote, else one rebuilt from the stored definition."""
        p = self.study_path(name)
        if p.is_file():
            try:
                return tomllib.loads(p.read_text(encoding="utf-8"))
            except (OSError, tomllib.TOMLDecodeError):
                pass
        row = store.get_study(name) if store is not None else None
        if row is None:
            return None
        return definition_to_doc(name, row["definition"], self.store_dir.resolve())

    # -- audit
    def audit(self, study: str, action: str, **data: Any) -> None:
        """One ``ui_action`` event; a writable store is opened for it and closed again."""
        store = Store(self.store_dir)
        try:
            store.add_event(study, "ui_action", data=json_safe({"action": action, **data}))
        finally:
            store.close()

    # -- running
    def _command(self, study_file: Path) -> list[str]:
        exe = Path(sys.executable).with_name("hyperscout")
        if exe.is_file() and os.access(exe, os.X_OK):
            return [str(exe), "run", str(study_file)]
        return [sys.executable, "-m", "hyperscout.cli", "run", str(study_file)]

    def run_detached(self, name: str, doc: Mapping[str, Any], action: str) -> int:
        """Write the study file into the store and start ``hyperscout run`` on it in its own session."""
        path = self.study_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(toml_text(doc), encoding="utf-8")
        tmp.replace(path)
        log = self.log_path(name)
        log.parent.mkdir(parents=True, exist_ok=True)
        argv = self._command(path)
        with open(log, "ab") as fh:
            fh.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} hyperscout ui: {action}: {' '.join(argv)}\n"
                     .encode())
            fh.flush()
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                                    start_new_session=True, close_fds=True, cwd=str(self.store_dir), env=env)
        # reap it when it ends (a zombie would look alive to the lease check), without waiting for it
        threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()
        self._children.append(proc)
        self.audit(name, action, pid=proc.pid, start=process_start(proc.pid), study_file=str(path),
                   log=str(log), host=socket.gethostname())
        return proc.pid

    def launch(self, doc: Mapping[str, Any]) -> str:
        name = str((doc.get("study") or {}).get("name"))
        reader = self._reader()
        try:
            if reader is not None and reader.get_study(name) is not None:
                raise ActionError(f"a study named {name!r} exists; choose another name, or resume it from its page")
        finally:
            if reader is not None:
                reader.close()
        self.run_detached(name, doc, "launch")
        return name

    def _reader(self) -> UIStore | None:
        from hyperscout.store import store_file

        return UIStore(self.store_dir, readonly=True) if store_file(self.store_dir).is_file() else None

    def _study(self, name: str) -> tuple[UIStore, dict[str, Any]]:
        reader = self._reader()
        row = reader.get_study(name) if reader is not None else None
        if reader is None or row is None:
            if reader is not None:
                reader.close()
            raise ActionError(f"no study {name!r} in {self.store_dir}")
        return reader, row

    def state(self, row: Mapping[str, Any]) -> str:
        return Store.state_of(row["status"], row["owner"], row["heartbeat"])

    def stop(self, name: str) -> int:
        """SIGINT to the study's owner (the lease says which process), as Ctrl-C in its terminal would."""
        reader, row = self._study(name)
        reader.close()
        owner = row["owner"]
        if owner is None or self.state(row) != "running":
            raise ActionError(f"study {name!r} is not running")
        if owner.host != socket.gethostname():
            raise ActionError(f"study {name!r} runs on {owner.host}; stop it there with `kill -INT {owner.pid}`")
        if owner.alive() is not True:
            raise ActionError(f"study {name!r}: its owner pid {owner.pid} is gone")
        try:
            os.kill(owner.pid, signal.SIGINT)
        except ProcessLookupError:
            raise ActionError(f"study {name!r}: its owner pid {owner.pid} is gone") from None
        except PermissionError:
            raise ActionError(f"study {name!r} is run by pid {owner.pid} of another user; stop it as that user") from None
        self.audit(name, "stop", pid=owner.pid)
        return owner.pid

    def resume(self, name: str, action: str = "resume", doc: Mapping[str, Any] | None = None) -> int:
        reader, row = self._study(name)
        try:
            if self.state(row) == "running":
                raise ActionError(f"study {name!r} is running; stop it first")
            doc = doc or self.study_doc(name, reader)
        finally:
            reader.close()
        if doc is None or not doc.get("task"):
            raise ActionError(f"study {name!r} has no study file and its definition has no task; clone it instead")
        return self.run_detached(name, doc, action)

    def extend(self, name: str, more_jobs: int | None, more_minutes: float | None) -> int:
        """Raise ``total_max_jobs`` by ``more_jobs`` and/or give the next run ``more_minutes``, then re-run it."""
        if not more_jobs and not more_minutes:
            raise ActionError("give more jobs or more minutes")
        if (more_jobs is not None and more_jobs < 0) or (more_minutes is not None and more_minutes < 0):
            raise ActionError("more jobs and more minutes must be positive")
        reader, _row = self._study(name)
        try:
            doc = self.study_doc(name, reader)
            jobs = reader.load_jobs(name, with_metrics=False)
        finally:
            reader.close()
        if doc is None:
            raise ActionError(f"study {name!r} has no study file to extend")
        doc = json.loads(json.dumps(doc))
        limits = doc.setdefault("limits", {})
        if more_jobs:
            launched = sum(1 for j in jobs if j.superseded_by is None)
            limits["total_max_jobs"] = max(int(limits.get("total_max_jobs") or 0), launched) + int(more_jobs)
        if more_minutes:
            limits["optimization_time_limit"] = float(more_minutes)
        return self.resume(name, "extend", doc)

    def delete(self, name: str) -> int:
        """Delete a study that is not running: its rows, its job logs and the app's files for it."""
        store = UIStore(self.store_dir)
        try:
            n = store.delete_study(name)
            store.add_event(name, "ui_action", data={"action": "delete", "jobs": n})
        except StoreError as exc:
            raise ActionError(str(exc)) from None
        finally:
            store.close()
        jobs_dir = (self.store_dir / "jobs" / name).resolve()
        if jobs_dir.is_relative_to((self.store_dir / "jobs").resolve()) and jobs_dir != (self.store_dir / "jobs").resolve():
            shutil.rmtree(jobs_dir, ignore_errors=True)
        for p in (self.study_path(name),):
            with contextlib.suppress(OSError):
                p.unlink()
        return n

    def clear_finished(self, names: list[str]) -> int:
        store = Store(self.store_dir)
        try:
            with store.batch():
                for n in names:
                    store.add_event(n, "ui_action", data={"action": "clear"})
        finally:
            store.close()
        return len(names)

    def export(self, name: str, fmt: str) -> tuple[str, str]:
        """The study as CSV or JSON (the columns of ``hyperscout export``) or as its TOML study file."""
        reader, row = self._study(name)
        try:
            if fmt == "toml":
                doc = self.study_doc(name, reader)
                text = toml_text(doc or {})
                mime = "application/toml"
            else:
                text, mime = _export(reader, name, row, fmt)
        finally:
            reader.close()
        self.audit(name, "export", format=fmt)
        return text, mime


def _export(store: UIStore, name: str, info: Mapping[str, Any], fmt: str) -> tuple[str, str]:
    """What ``hyperscout export`` writes (the same function: one format, one ranking)."""
    if fmt not in ("json", "csv"):
        raise ActionError(f"unknown export format {fmt!r}; use csv, json or toml")
    buf = io.StringIO()
    (export_json if fmt == "json" else export_csv)(store, info, objectives_of(info["definition"]), buf)
    return buf.getvalue(), "application/json" if fmt == "json" else "text/csv"

"""One bounded connection to the ClearML API server, for the backend's own requests.

Why not the SDK's default session: its retries come from ``clearml.conf`` (240 attempts with backoff up to
120 s by default), so an unreachable server or a typo in the host hangs the first call for hours, and the
SDK's ``Task`` layer retries any status above 500 forever. The backend needs the opposite: a wrong host, key or
id is a one-line error within seconds, and a server that fails mid-study is retried with backoff for a bounded
time, after which the study stops and a resume continues it. So the backend sends every request through its own
:class:`Session` (urllib3 retries off, short timeouts) and retries by itself in :meth:`Api.call`.

The SDK's default session (``Task.init``, ``Logger``) is left as the user configured it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from hyperscout.errors import ConfigError, HyperscoutError

__all__ = ["WORKER_SUFFIX", "Api", "ApiError", "ServerUnavailable", "metric_key", "shared_api"]

log = logging.getLogger("hyperscout.clearml")

#: appended to the host name in the backend's worker header (``X-ClearML-Worker: <host>:hyperscout``)
WORKER_SUFFIX = "hyperscout"
#: urllib3 retries off: :meth:`Api.call` retries itself, with a deadline
_NO_RETRIES = {"total": 0, "connect": 0, "read": 0, "redirect": 0, "status": 0, "backoff_factor": 0.0}


def metric_key(name: str) -> str:
    """The md5 key clearml-server files a metric or variant under in ``last_metrics``."""
    return hashlib.md5(name.encode("utf-8")).hexdigest()


class ApiError(HyperscoutError):
    """The server answered with an error (4xx): retrying would not help."""

    def __init__(self, endpoint: str, code: int, subcode: int, msg: str) -> None:
        super().__init__(f"ClearML server refused {endpoint}: {code}/{subcode} {msg}")
        self.endpoint, self.code, self.subcode, self.msg = endpoint, code, subcode, msg


class ServerUnavailable(HyperscoutError):
    """The server did not answer (connection error, timeout, 5xx) for longer than the retry budget."""


def _login_error(host: str, exc: BaseException) -> ConfigError:
    text = " ".join(str(exc).split())
    if "401" in text or "credentials" in text.lower():
        return ConfigError(
            f"ClearML server {host} refused the credentials ({text[:160]}); check CLEARML_API_ACCESS_KEY and "
            "CLEARML_API_SECRET_KEY (or api.credentials in clearml.conf)"
        )
    return ConfigError(
        f"ClearML server {host} is unreachable ({text[:160]}); check CLEARML_API_HOST (or api.api_server in "
        "clearml.conf) and that the server is up"
    )


_session: Any = None
_session_lock = threading.Lock()
#: one request at a time on the shared session (the engine thread and the poll thread both send)
_send_lock = threading.Lock()


def _connect() -> Any:
    from clearml.backend_api.session import Session
    from clearml.backend_api.session.defs import MissingConfigError
    from clearml.config import config_obj

    host = Session.get_api_server_host(config_obj)
    try:  # a worker name of its own: the optimizer's requests are told apart from a trial's in server logs
        return Session(config=config_obj, http_retries_config=dict(_NO_RETRIES), initialize_logging=False,
                       worker=f"{Session.get_worker_host_name()}:{WORKER_SUFFIX}")
    except MissingConfigError:
        raise ConfigError(
            "no ClearML credentials: set CLEARML_API_HOST, CLEARML_API_ACCESS_KEY and CLEARML_API_SECRET_KEY, "
            "or run clearml-init"
        ) from None
    except Exception as exc:  # LoginError, connection errors: the first call says what is wrong
        raise _login_error(host, exc) from None


def _shared_session() -> Any:
    """The backend's own SDK session (one per process, like the SDK's), logged in on first use."""
    global _session
    with _session_lock:
        if _session is None:
            _session = _connect()
        return _session


class Api:
    """Requests to the ClearML API server with bounded retries; thread-safe (one request at a time).

    ``retry_seconds``: how long a request is retried (connection errors, timeouts, 5xx, 429) with exponential
    backoff before :class:`ServerUnavailable`; ``timeout``: seconds to wait for one answer.
    """

    def __init__(self, *, retry_seconds: float = 120.0, timeout: float = 30.0) -> None:
        self.retry_seconds = retry_seconds
        self.timeout = timeout
        #: requests sent, by endpoint (retries included): the benchmark reads it
        self.counts: Counter[str] = Counter()
        self._local = threading.local()

    def sent_by_this_thread(self) -> int:
        """Requests this thread sent through this connection (a poll counts its own)."""
        return int(getattr(self._local, "n", 0))

    @property
    def session(self) -> Any:
        return _shared_session()

    @property
    def host(self) -> str:
        return str(self.session.host)

    @property
    def web_host(self) -> str:
        from clearml.backend_api.session import Session
        from clearml.config import config_obj

        return str(Session.get_app_server_host(config_obj)).rstrip("/")

    def services(self) -> Any:
        """The SDK's request classes for the API version the server announced."""
        self.session  # noqa: B018 - the version is known once logged in
        from clearml.backend_api import services

        return services

    def supports(self, version: str) -> bool:
        from clearml.backend_api.session import Session

        self.session  # noqa: B018
        return bool(Session.check_min_api_version(version))

    # -- requests ---------------------------------------------------------------------------
    def call(
        self, request: Any, *, retry: bool = True, on_retry: Callable[[str, bool], None] | None = None
    ) -> dict[str, Any]:
        """Send one request; return the answer's ``data``. 4xx: :class:`ApiError` at once; no answer or
        5xx: retried with backoff (0.5, 1, 2, ... 15 s) for ``retry_seconds``, then :class:`ServerUnavailable`.

        ``on_retry(problem, answered)`` is told of each failed attempt; ``answered`` is False when no answer came
        (a timeout, a broken connection), so the server may have done what was asked.
        """
        import requests

        endpoint = f"{request._service}.{request._action}"
        deadline = time.monotonic() + (self.retry_seconds if retry else 0.0)
        delay = 0.5
        while True:
            problem: str
            answered = False
            try:
                session = self.session
                self._local.n = self.sent_by_this_thread() + 1
                with _send_lock:
                    self.counts[endpoint] += 1
                    session._session_timeout = (min(5.0, self.timeout), self.timeout)
                    result = session.send(request)
                code = int(result.meta.result_code or 0)
                if code == 200:
                    data = result.response_data
                    return dict(data) if isinstance(data, dict) else {}
                if code < 500 and code != 429:
                    raise ApiError(endpoint, code, int(result.meta.result_subcode or 0), str(result.meta.result_msg))
                problem, answered = f"{code} {result.meta.result_msg}", True
            except (requests.exceptions.RequestException, OSError) as exc:
                problem = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
            except ConfigError:
                raise
            except ApiError:
                raise
            except Exception as exc:  # LoginError on a token refresh, a malformed answer
                if "401" in str(exc):  # the credentials were revoked: waiting will not bring them back
                    raise _login_error(self._host_or_unknown(), exc) from None
                problem = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
            left = deadline - time.monotonic()
            if left <= 0:
                raise ServerUnavailable(
                    f"ClearML server {self._host_or_unknown()} did not answer {endpoint} for "
                    f"{self.retry_seconds:g} s ({problem})"
                )
            if on_retry is not None:
                on_retry(problem, answered)
            log.warning("hyperscout-clearml: %s failed (%s); retrying in %.1f s", endpoint, problem, min(delay, left))
            time.sleep(min(delay, left))
            delay = min(delay * 2, 15.0)

    def _host_or_unknown(self) -> str:
        try:
            return self.host
        except Exception:
            return "?"


_shared: Api | None = None
_shared_lock = threading.Lock()


def shared_api() -> Api:
    """The process-wide connection used where no backend instance exists yet (``base_task``, ``claims``)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Api()
        return _shared

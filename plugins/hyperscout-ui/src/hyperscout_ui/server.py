"""``hyperscout ui``: bind, print the URL (with a token off loopback, as Jupyter does), serve until Ctrl-C."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from hyperscout.errors import ConfigError
from hyperscout_ui.security import is_loopback, new_token

__all__ = ["bind", "serve"]


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; a busy port or an unknown address is a one-line error."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host!r}: cannot resolve it ({exc.strerror}); give an address such as 127.0.0.1") from None
    family, _type, _proto, _name, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); pass another --port (0 picks a free one)") from None
    sock.listen(128)
    sock.set_inheritable(False)
    return sock


def serve(storage: str | os.PathLike[str], host: str, port: int) -> int:
    import uvicorn

    from hyperscout_ui.app import create_app

    store_dir = Path(storage).expanduser().resolve()
    loopback = is_loopback(host)
    token = None if loopback else (os.environ.get("HYPERSCOUT_UI_TOKEN") or new_token())
    sock = bind(host, port)
    real_port = sock.getsockname()[1]
    app = create_app(store_dir, token=token, loopback_only=loopback)
    shown = host if host not in ("0.0.0.0", "::", "") else socket.gethostname()
    shown = f"[{shown}]" if ":" in shown else shown
    suffix = f"?token={token}" if token else ""
    where = "" if (store_dir / "hyperscout.sqlite").is_file() else " (no store there yet: launch a study to create it)"
    print(f"hyperscout ui: store {store_dir}{where}", flush=True)
    print(f"hyperscout ui: open http://{shown}:{real_port}/{suffix}", flush=True)
    if token and host in ("0.0.0.0", "::"):
        print(f"hyperscout ui:   or http://127.0.0.1:{real_port}/{suffix}", flush=True)
    print("hyperscout ui: Ctrl-C to stop (studies launched from the page keep running)", flush=True)
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2, lifespan="on")

    class _Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: object) -> None:  # end the event streams, or shutdown waits on them
            app.state.hub.end_streams()
            super().handle_exit(sig, frame)  # type: ignore[arg-type]

    server = _Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    print("hyperscout ui: stopped", file=sys.stderr)
    return 0

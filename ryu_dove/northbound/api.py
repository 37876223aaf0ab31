"""The controller's read-only REST API: what it knows, as JSON over HTTP.

Stdlib only (`http.server.ThreadingHTTPServer`, a daemon thread per request), by decision: no
extra dependency, plain threads, and os-ken 4 no longer ships its WSGI app (`os_ken.app.wsgi`),
so there is nothing of os-ken's to plug into.

The controller hands in a `view()` function; ryu_dove's engine answers it on its own thread
(the owner of the state) and returns fresh plain data, so there are no locks here. Keys:
"endpoints", "hypervisors", "tunnels", "refused" (lists of JSON-able dicts) and "controller".
Resources and item shapes are declared once (ryu_dove.northbound.resources) and documented in
docs/api.md; the views, `dovectl show` and the tests use the same declaration.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ovsdb_agent import sockets
from ryu_dove.northbound import metrics
from ryu_dove.northbound.resources import COLLECTIONS, Collection

LOG = logging.getLogger(__name__)

View = Callable[[str], Mapping[str, Any]]  # section name -> {section: its data}
Health = Callable[[], str | None]  # None: healthy; otherwise what is wrong
Query = Mapping[str, list[str]]

_MAX_DRAINED_BODY = 1 << 20  # bytes of a refused request's body read before answering 405
IDLE_TIMEOUT_S = 30.0  # seconds a client may keep a connection without finishing a request
MAX_CLIENTS = 64  # connections served at once (a thread each); more are closed at once
_POLL_S = 0.05  # how often the serving thread looks for stop(): bounds how long stop() takes


class ApiError(Exception):
    """The API cannot be served (the address is taken, not local, or not an address)."""


_BY_PATH = {c.path: c for c in COLLECTIONS}
METRICS_PATH = "/metrics"  # Prometheus text, not JSON (ryu_dove.northbound.metrics)
ROUTES: tuple[str, ...] = ("/", *_BY_PATH, "/v1/controller", "/v1/health", METRICS_PATH)


def _matches(item: Mapping[str, Any], collection: Collection, query: Query) -> bool:
    return all(item.get(collection.filters[param]) in values for param, values in query.items())


def _answer(view: View, health: Health, path: str, query: Query) -> tuple[HTTPStatus, Any]:
    """The status and JSON body for a GET of `path`; exceptions of `view` propagate."""
    if path not in ROUTES:
        return HTTPStatus.NOT_FOUND, {"error": f"no such resource: {path}",
                                      "resources": list(ROUTES)}
    collection = _BY_PATH.get(path)
    allowed = collection.filters if collection else {}
    unknown = sorted(set(query) - set(allowed))
    if unknown:
        return HTTPStatus.BAD_REQUEST, {"error": f"unknown filter {unknown[0]!r} for {path}",
                                        "filters": sorted(allowed)}
    if path == "/":
        return HTTPStatus.OK, {"resources": list(ROUTES)}
    if path == "/v1/health":  # asked without the engine's thread: it may be what failed
        problem = health()
        if problem is not None:
            return HTTPStatus.SERVICE_UNAVAILABLE, {"status": "failing", "reason": problem}
        return HTTPStatus.OK, {"status": "ok"}
    if collection is None:
        return HTTPStatus.OK, view("controller")["controller"]
    items = view(collection.name)[collection.name]
    return HTTPStatus.OK, [item for item in items if _matches(item, collection, query)]


def _jsonable(value: object) -> object:
    # An immutable view may hold MappingProxyType and frozensets; JSON has dicts and lists.
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _encode(body: Any) -> bytes:
    return (json.dumps(body, indent=2, default=_jsonable) + "\n").encode()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "ryu_dove-api"
    timeout = IDLE_TIMEOUT_S  # an idle or slow client is dropped, its thread freed

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        if path == METRICS_PATH and not parts.query:
            self._metrics()
            return
        try:
            status, body = _answer(self.server.view, self.server.health, path,
                                   parse_qs(parts.query, keep_blank_values=True))
            payload = _encode(body)
        except Exception as exc:  # a bad view is one failed request, not a dead API
            LOG.exception("GET %s failed", self.path)
            status = HTTPStatus.INTERNAL_SERVER_ERROR
            payload = _encode({"error": f"internal error: {type(exc).__name__}: {exc}"})
        self._send(status, payload)

    def _metrics(self) -> None:
        try:
            payload = metrics.render(self.server.view("metrics")["metrics"])
        except Exception as exc:  # as do_GET: one failed scrape, not a dead API
            LOG.exception("GET %s failed", self.path)
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR,
                       _encode({"error": f"internal error: {type(exc).__name__}: {exc}"}))
            return
        self._send(HTTPStatus.OK, payload, metrics.CONTENT_TYPE)

    def _not_allowed(self) -> None:
        self._drain()
        self._send(HTTPStatus.METHOD_NOT_ALLOWED, _encode({
            "error": f"method {self.command} not allowed: the API is read-only, use GET",
            "allow": ["GET"],
        }))

    def __getattr__(self, name: str) -> Any:
        # The stdlib dispatches a request for method M to `do_M`: every M but GET lands here.
        if name.startswith("do_"):
            return self._not_allowed
        raise AttributeError(name)

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        # The stdlib's own errors (bad request line, unknown method...) as JSON, not HTML.
        self.close_connection = True
        status = HTTPStatus(code)
        self._send(status, _encode({"error": message or status.phrase}))

    def log_message(self, format: str, *args: Any) -> None:
        LOG.debug("%s %s", self.address_string(), format % args)

    def _drain(self) -> None:
        # Read a refused request's body: closing with unread data would reset the connection
        # and the client could lose our answer.
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if 0 < length <= _MAX_DRAINED_BODY:
            self.rfile.read(length)

    def _send(self, status: HTTPStatus, payload: bytes,
              content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        if status == HTTPStatus.METHOD_NOT_ALLOWED:
            self.send_header("Allow", "GET")
        self.end_headers()
        if getattr(self, "command", None) != "HEAD":
            self.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, sock: socket.socket, view: View, health: Health) -> None:
        """Serve on a listening socket bound like every other listener of the controller
        (ovsdb_agent.sockets); HTTPServer's own bind would also do a reverse DNS look-up."""
        self.view = view
        self.health = health
        self._clients = threading.BoundedSemaphore(MAX_CLIENTS)
        super().__init__(sock.getsockname()[:2], _Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.server_address = sock.getsockname()
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._clients.acquire(blocking=False):  # a thread per client, so a bound
            LOG.debug("API: %d clients already, closing one more from %s", MAX_CLIENTS,
                      client_address)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._clients.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Instead of a traceback on stderr: a client that went away is routine.
        exc = sys.exc_info()[1]
        level = logging.DEBUG if isinstance(exc, ConnectionError) else logging.WARNING
        LOG.log(level, "API request from %s failed", client_address, exc_info=True)


class ApiServer:
    """Serves the read-only API on host:port in a daemon thread named "api"."""

    def __init__(self, host: str, port: int, view: View,
                 health: Health = lambda: None) -> None:
        self._host = host
        self._port = port  # 0: an ephemeral port, reported by `url` once started
        self._view = view
        self._health = health
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """http://host:port (the bound port once started; IPv6 in brackets)."""
        port = self._server.server_address[1] if self._server else self._port
        return f"http://{sockets.host_port(self._host, port)}"

    def start(self) -> None:
        """Bind (raising ApiError now if that fails), then serve in the background."""
        if self._server is not None:
            raise RuntimeError(f"the API is already served on {self.url}")
        try:
            server = _Server(sockets.tcp_listener(self._host, self._port, blocking=True),
                             self._view, self._health)
        except (OSError, OverflowError) as exc:  # OverflowError: port out of range
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            where = sockets.host_port(self._host, self._port)
            raise ApiError(f"cannot serve the API on {where}: {reason}") from exc
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": _POLL_S},
                                  name="api", daemon=True)
        thread.start()
        self._server, self._thread = server, thread
        LOG.info("API on %s", self.url)

    def stop(self) -> None:
        """Stop serving and release the port; a no-op if not started."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._server = self._thread = None
        server.shutdown()  # waits for serve_forever to return
        server.server_close()
        thread.join()

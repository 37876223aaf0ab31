"""The read-only API over real HTTP: a real ApiServer on an ephemeral port, a fake view."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

import pytest

from ryu_dove.northbound import resources
from ryu_dove.northbound.api import ROUTES, ApiError, ApiServer
from tests.api_samples import HV1, HV2, REFUSED, TUN12, TUN21

EP1 = {"network": "acme/web", "mac": "02:00:00:00:00:01", "ips": ["198.51.100.10"],
       "hypervisor": "hv1", "port": "vif-vm1", "ofport": 3, "iface_id": "vm1"}
EP2 = {"network": "acme/db", "mac": "02:00:00:00:00:02", "ips": ["198.51.100.70"],
       "hypervisor": "hv2", "port": "vif-vm2", "ofport": 4, "iface_id": "vm2"}
EP3 = {"network": "acme/web", "mac": "02:00:00:00:00:03", "ips": ["198.51.100.11"],
       "hypervisor": "hv2", "port": "vif-vm3", "ofport": 5, "iface_id": "vm3"}
CONTROLLER = {"version": "0.1.0", "policy_sources": ["policies/example.yaml"], "uptime_s": 12.5}
VIEW: Mapping[str, Any] = {
    "endpoints": [EP1, EP2, EP3], "hypervisors": [HV1, HV2], "tunnels": [TUN12, TUN21],
    "refused": [REFUSED], "controller": CONTROLLER,
}


class FakeController:
    """Publishes a view, or fails to, as the controller's would."""

    def __init__(self) -> None:
        self.view: Mapping[str, Any] = VIEW
        self.error: Exception | None = None
        self.sections: list[str] = []  # what the API asked for

    def __call__(self, section: str) -> Mapping[str, Any]:
        self.sections.append(section)
        if self.error is not None:
            raise self.error
        return self.view


@pytest.fixture
def controller() -> FakeController:
    return FakeController()


@pytest.fixture
def api(controller: FakeController) -> Iterator[ApiServer]:
    server = ApiServer("127.0.0.1", 0, controller)
    server.start()
    yield server
    server.stop()


def request(url: str, method: str = "GET", data: bytes | None = None) -> tuple[int, str, Any]:
    """(status, content type, JSON body), for errors too."""
    req = urllib.request.Request(url, method=method, data=data)
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            return response.status, response.headers["Content-Type"], json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers["Content-Type"], json.loads(exc.read())


def get(api: ApiServer, path: str) -> Any:
    status, content_type, body = request(api.url + path)
    assert (status, content_type) == (200, "application/json")
    return body


def test_url_reports_the_bound_port(api: ApiServer) -> None:
    host, _, port = api.url.removeprefix("http://").rpartition(":")
    assert host == "127.0.0.1" and int(port) > 0


def test_ipv6_url_in_brackets(controller: FakeController) -> None:
    assert ApiServer("::1", 8080, controller).url == "http://[::1]:8080"
    server = ApiServer("::1", 0, controller)
    try:
        server.start()
    except ApiError:
        pytest.skip("no IPv6 loopback here")
    try:
        assert get(server, "/v1/health") == {"status": "ok"}
    finally:
        server.stop()


@pytest.mark.parametrize(("path", "key"), [
    ("/v1/endpoints", "endpoints"), ("/v1/hypervisors", "hypervisors"),
    ("/v1/tunnels", "tunnels"), ("/v1/refused", "refused"), ("/v1/controller", "controller"),
])
def test_routes_serve_the_view(api: ApiServer, path: str, key: str) -> None:
    assert get(api, path) == VIEW[key]
    assert get(api, path + "/") == VIEW[key]


def test_health_and_index(api: ApiServer, controller: FakeController) -> None:
    controller.error = RuntimeError("not ready")  # health does not need the state
    assert get(api, "/v1/health") == {"status": "ok"}
    assert get(api, "/") == {"resources": list(ROUTES)}
    assert set(ROUTES) == {"/", "/v1/endpoints", "/v1/hypervisors", "/v1/tunnels",
                           "/v1/refused", "/v1/controller", "/v1/health", "/metrics"}


def test_a_new_view_is_served(api: ApiServer, controller: FakeController) -> None:
    controller.view = {**VIEW, "endpoints": []}
    assert get(api, "/v1/endpoints") == []


@pytest.mark.parametrize(("path", "expected"), [
    ("/v1/endpoints?network=acme/web", [EP1, EP3]),
    ("/v1/endpoints?network=acme%2Fweb&hypervisor=hv2", [EP3]),
    ("/v1/endpoints?hypervisor=hv2", [EP2, EP3]),
    ("/v1/endpoints?network=acme/web&network=acme/db", [EP1, EP2, EP3]),
    ("/v1/endpoints?network=globex/web", []),
    ("/v1/tunnels?hypervisor=hv2", [TUN21]),
    ("/v1/refused?hypervisor=hv2", []),
    ("/v1/hypervisors?hypervisor=hv1", [HV1]),
])
def test_filters(api: ApiServer, path: str, expected: list[dict[str, Any]]) -> None:
    assert get(api, path) == expected


@pytest.mark.parametrize("path", ["/v1/tunnels?network=acme/web", "/v1/endpoints?netwrk=x",
                                  "/v1/health?x=1"])
def test_unknown_filter_is_400(api: ApiServer, path: str) -> None:
    status, content_type, body = request(api.url + path)
    assert (status, content_type) == (400, "application/json")
    assert body["error"].startswith("unknown filter ")


@pytest.mark.parametrize("path", ["/x", "/v1", "/v2/endpoints", "/v1/endpoints/vm1"])
def test_unknown_path_is_404(api: ApiServer, path: str) -> None:
    status, content_type, body = request(api.url + path)
    assert (status, content_type) == (404, "application/json")
    assert body == {"error": f"no such resource: {path}", "resources": list(ROUTES)}


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "FROB"])
def test_other_methods_are_405(api: ApiServer, method: str) -> None:
    data = b'{"x": 1}' if method in ("POST", "PUT", "PATCH") else None
    status, content_type, body = request(api.url + "/v1/endpoints", method, data)
    assert (status, content_type) == (405, "application/json")
    assert body["allow"] == ["GET"] and method in body["error"]


def test_head_is_405_without_body(api: ApiServer) -> None:
    req = urllib.request.Request(api.url + "/v1/endpoints", method="HEAD")
    with pytest.raises(urllib.error.HTTPError) as raised, \
            urllib.request.urlopen(req, timeout=5):
        pass
    assert raised.value.code == 405 and raised.value.headers["Allow"] == "GET"


def test_failing_view_is_500_and_the_api_goes_on(api: ApiServer,
                                                     controller: FakeController) -> None:
    controller.error = RuntimeError("directory not ready")
    status, content_type, body = request(api.url + "/v1/endpoints")
    assert (status, content_type) == (500, "application/json")
    assert body == {"error": "internal error: RuntimeError: directory not ready"}
    controller.error = None
    assert get(api, "/v1/endpoints") == VIEW["endpoints"]


def test_immutable_view_is_served(api: ApiServer, controller: FakeController) -> None:
    controller.view = MappingProxyType({
        **VIEW, "endpoints": (MappingProxyType(EP1), MappingProxyType(EP2)),
        "controller": MappingProxyType({**CONTROLLER, "policy_sources": frozenset(["b", "a"])}),
    })
    assert get(api, "/v1/endpoints?hypervisor=hv1") == [EP1]
    assert get(api, "/v1/controller")["policy_sources"] == ["a", "b"]


def test_view_without_the_key_is_500(api: ApiServer, controller: FakeController) -> None:
    controller.view = {"controller": CONTROLLER}
    status, _, body = request(api.url + "/v1/tunnels")
    assert status == 500 and "tunnels" in body["error"]


def test_garbage_request_gets_a_json_error(api: ApiServer) -> None:
    host, _, port = api.url.removeprefix("http://").rpartition(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"nonsense\r\n\r\n")
        answer = sock.makefile("rb").read()
    # A one-word request line is HTTP/0.9 to the stdlib: the answer is the bare body.
    assert json.loads(answer) == {"error": "Bad request syntax ('nonsense')"}


def test_requests_are_not_logged_to_stderr(api: ApiServer,
                                           capfd: pytest.CaptureFixture[str]) -> None:
    get(api, "/v1/endpoints")
    request(api.url + "/nope")
    assert capfd.readouterr().err == ""


def test_serves_in_a_daemon_thread_named_api(api: ApiServer) -> None:
    threads = [t for t in threading.enumerate() if t.name == "api"]
    assert threads and all(t.daemon for t in threads)


def test_bind_failure_raises_with_the_address(controller: FakeController) -> None:
    server = ApiServer("192.0.2.200", 8080, controller)  # TEST-NET-1: not on this machine
    with pytest.raises(ApiError, match=r"^cannot serve the API on 192\.0\.2\.200:8080: \S"):
        server.start()


def test_port_in_use(api: ApiServer, controller: FakeController) -> None:
    port = int(api.url.rpartition(":")[2])
    with pytest.raises(ApiError, match=f"on 127.0.0.1:{port}: Address already in use"):
        ApiServer("127.0.0.1", port, controller).start()


def test_bad_port(controller: FakeController) -> None:
    with pytest.raises(ApiError, match="on 127.0.0.1:70000: "):
        ApiServer("127.0.0.1", 70000, controller).start()


def test_stop_releases_the_port(controller: FakeController) -> None:
    first = ApiServer("127.0.0.1", 0, controller)
    first.start()
    url = first.url
    get(first, "/v1/health")
    first.stop()
    assert not any(t.name == "api" and t.is_alive() for t in threading.enumerate())
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/v1/health", timeout=5)
    again = ApiServer("127.0.0.1", int(url.rpartition(":")[2]), controller)
    again.start()  # the same port again
    try:
        assert get(again, "/v1/health") == {"status": "ok"}
    finally:
        again.stop()
    again.stop()  # twice is harmless


def test_only_the_resource_asked_for_is_built(api: ApiServer,
                                              controller: FakeController) -> None:
    get(api, "/v1/hypervisors")
    get(api, "/v1/controller")
    assert controller.sections == ["hypervisors", "controller"]


@pytest.mark.parametrize("name, sample", [("hypervisors", HV1), ("hypervisors", HV2),
                                          ("tunnels", TUN12), ("refused", REFUSED)])
def test_samples_have_exactly_the_declared_fields(name: str, sample: dict[str, Any]) -> None:
    assert tuple(sample) == resources.BY_NAME[name].fields


def test_an_item_with_the_wrong_number_of_values_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="refused items have 4 fields, got 3"):
        resources.item("refused", "hv1", "vif-x", "x")

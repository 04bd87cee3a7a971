"""Request guards: a capped body, the same origin for every POST, and the Host allow-list.

Previews are POSTs that need no token, so they get the body cap and the origin
check as writes do. On every loopback address only this machine's names are
answered (DNS rebinding); a real server bound to ``::1`` is tested where this
machine has IPv6 loopback.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from interphase.dashboard.app import create_app
from interphase.dashboard.security import TOKEN_ENV
from tests.dashboard.browser import dashboard_server
from tests.dashboard.campaign_data import create_campaign, failed_waters
from tests.dashboard.conftest import TOKEN, WRITE_HEADERS
from tests.dashboard.test_resubmit import snapshot

CAP_BYTES = 1 << 20  # the documented cap: 1 MiB
POSTS = ["/jobs/resubmit/preview", "/jobs/cancel/preview", "/jobs/resubmit", "/jobs/cancel"]


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_a_body_over_the_cap_is_413_on_every_post(client: TestClient, local_env: str) -> None:
    (job_id, _) = failed_waters(local_env, 2, seed=1)
    campaign = create_campaign(local_env, "capped", {}, ["GFN2-xTB"])
    before = snapshot(local_env)
    form = f"scope=selected&ids={job_id}&expected_count=1&set=".encode()
    huge = form + b"x" * 5_000_000  # 5 MB, Content-Length declared
    policy = client.get("/jobs").headers["Content-Security-Policy"]
    for path in [*POSTS, f"/campaigns/{campaign}/stop"]:
        for headers in ({}, WRITE_HEADERS):
            response = client.post(path, content=huge, headers=headers)
            assert response.status_code == 413, (path, headers, response.status_code)
            assert response.headers["Content-Security-Policy"] == policy
            assert "over 1,048,576 bytes" in response.text

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it is read
        yield form
        for _ in range(40):
            yield b"x" * 65536

    for path in POSTS:
        response = client.post(path, content=chunked(), headers=WRITE_HEADERS)
        assert response.status_code == 413, (path, response.status_code)
    assert snapshot(local_env) == before
    # Just under the cap the body is read: the library refuses this setting, not its size.
    fits = form + b"x" * (CAP_BYTES - len(form))
    answer = client.post("/jobs/resubmit/preview", content=fits)
    assert answer.status_code == 400 and "over 1,048,576" not in answer.text


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://testserver.evil.example"},
        {"Origin": "http://testserver:8050"},  # another port is another origin
        {"Referer": "http://evil.example/page"},
        {"Origin": "http://evil.example", "Referer": "http://testserver/jobs"},
    ],
    ids=["other-site", "null", "suffix", "other-port", "referer", "origin-wins"],
)
def test_posts_from_another_origin_are_refused_previews_included(
    client: TestClient, local_env: str, headers: dict[str, str]
) -> None:
    (job_id, _) = failed_waters(local_env, 2, seed=1)
    before = snapshot(local_env)
    form = {"scope": "selected", "ids": job_id, "expected_count": "1"}
    for path in POSTS:
        response = client.post(path, data=form, headers={**WRITE_HEADERS, **headers})
        assert response.status_code == 403, (path, response.status_code)
        assert "another site" in response.text
    assert snapshot(local_env) == before
    same = client.post(POSTS[1], data=form, headers={"Origin": "http://testserver"})
    assert same.status_code == 200 and "Cancel 1 job?" in same.text
    assert client.post(POSTS[1], data=form).status_code == 200  # no Origin: not a web page


@pytest.mark.slow
def test_a_real_server_refuses_an_oversize_body_without_reading_it(
    local_env: str, tmp_path: Path
) -> None:
    env = {"INTERPHASE_DATABASE_URL": local_env, "INTERPHASE_DATA_DIR": str(tmp_path / "data")}
    with dashboard_server(env, unset=(TOKEN_ENV,)) as server:
        address = urlsplit(server.url)
        host = f"Host: {address.netloc}\r\n".encode()
        declared = (
            b"POST /jobs/cancel/preview HTTP/1.1\r\n" + host + b"Content-Length: 5000000\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n\r\n"
        )  # not one byte of the body is sent: the answer must not wait for it
        assert status_line(address, [declared]).startswith(b"HTTP/1.1 413")
        chunk = b"10000\r\n" + b"x" * 65536 + b"\r\n"  # 64 KiB chunks, 17 of them: over 1 MiB
        chunked = (
            b"POST /jobs/cancel/preview HTTP/1.1\r\n" + host + b"Transfer-Encoding: chunked\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n\r\n"
        )
        assert status_line(address, [chunked, *[chunk] * 17]).startswith(b"HTTP/1.1 413")


def status_line(address: object, parts: list[bytes], timeout_s: float = 20) -> bytes:
    """Send ``parts`` on a new connection and return the first line of the answer."""
    hostname, port = getattr(address, "hostname", ""), getattr(address, "port", 0)
    with socket.create_connection((hostname, port), timeout=timeout_s) as connection:
        try:
            for part in parts:
                connection.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before taking it all
        answer = b""
        try:
            while b"\r\n" not in answer:
                received = connection.recv(4096)
                if not received:
                    break
                answer += received
        except TimeoutError:
            pytest.fail(f"no answer within {timeout_s} s: the server waits for the whole body")
    return answer.split(b"\r\n", 1)[0]


LOOPBACK_BINDS = [
    "127.0.0.1",
    "127.0.0.2",
    "localhost",
    pytest.param(
        "::1",
        marks=pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback here"),
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize("bind", LOOPBACK_BINDS)
def test_a_real_server_on_any_loopback_address_answers_only_its_own_names(
    local_env: str, tmp_path: Path, bind: str
) -> None:
    env = {"INTERPHASE_DATABASE_URL": local_env, "INTERPHASE_DATA_DIR": str(tmp_path / "data")}
    with dashboard_server(env, unset=(TOKEN_ENV,), host=bind) as server:
        address = urlsplit(server.url)
        port = address.port
        own = [address.netloc, f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"]
        for name in own:
            assert get_status(address, name) == 200, name
        rebound = ["evil.example", f"evil.example:{port}", f"[::1].evil.example:{port}"]
        for name in [*rebound, "[::1", f"127.0.0.1.evil.example:{port}", ""]:
            assert get_status(address, name) == 400, name
        post = (
            f"POST /jobs/cancel/preview HTTP/1.1\r\nHost: evil.example:{port}\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
        assert status_line(address, [post]).startswith(b"HTTP/1.1 400")


def get_status(address: object, host_header: str) -> int:
    """The status of ``GET /jobs`` sent with ``Host: host_header``."""
    request = f"GET /jobs HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\n\r\n"
    return int(status_line(address, [request.encode()]).split()[1])


def test_the_cli_binds_ipv6_loopback_with_the_allow_list(local_env: str, tmp_path: Path) -> None:
    """``--host '[::1]'`` (brackets as in a URL) is loopback too: no token is needed."""
    if not has_ipv6_loopback():
        pytest.skip("no IPv6 loopback here")
    env = {"INTERPHASE_DATABASE_URL": local_env, "INTERPHASE_DATA_DIR": str(tmp_path / "data")}
    with dashboard_server(env, unset=(TOKEN_ENV,), host="[::1]") as server:
        address = urlsplit(server.url)
        assert get_status(address, "evil.example") == 400
        assert get_status(address, address.netloc) == 200


def test_host_names_are_checked_in_process_too(local_env: str) -> None:
    from interphase.dashboard.security import loopback_host_names

    names = loopback_host_names("::1")
    assert names is not None
    app = create_app(local_env, token=TOKEN, allowed_hosts=sorted(names))
    with TestClient(app, base_url="http://[::1]:8050") as local:
        assert local.get("/jobs").status_code == 200
        rebound = local.get("/jobs", headers={"Host": "evil.example"})
        assert rebound.status_code == 400 and "Content-Security-Policy" in rebound.headers
    assert loopback_host_names("0.0.0.0") is None  # not loopback: the token guards it

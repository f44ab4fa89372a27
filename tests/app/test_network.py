"""Tests for the app's network guard (posetransfer.app.network).

Only loopback addresses are used: a refused connection is shown with a guard that allows
127.0.0.1 but not 127.0.0.2, so even a broken guard would send nothing off this machine.
"""

from __future__ import annotations

import contextlib
import socket
import threading

import pytest

from posetransfer.app.network import LocalNetworkOnly, is_loopback


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        (b"127.0.0.1", True),
        (None, True),
        ("0.0.0.0", False),
        ("192.0.2.1", False),
        ("10.0.0.1", False),
        ("api.gradio.app", False),
        ("huggingface.co", False),
        ("localhost.evil.example", False),
    ],
)
def test_is_loopback(host: object, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def _listener() -> tuple[socket.socket, int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    return server, server.getsockname()[1]


def test_loopback_connections_still_work() -> None:
    server, port = _listener()
    with server, LocalNetworkOnly() as guard:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        with socket.create_connection(("localhost", port), timeout=5):
            pass
        assert guard.refused == []


def test_other_hosts_are_refused_before_any_packet() -> None:
    server, port = _listener()
    only_one = LocalNetworkOnly(allow=lambda host: str(host) in ("127.0.0.1", "None"))
    accepted: list[object] = []
    server.settimeout(0.5)

    def accept() -> None:
        with contextlib.suppress(OSError):
            accepted.append(server.accept())

    thread = threading.Thread(target=accept)
    with server, only_one:
        thread.start()
        sock = socket.socket()
        with sock, pytest.raises(PermissionError, match=r"connect to 127\.0\.0\.2"):
            sock.connect(("127.0.0.2", port))
        with socket.socket() as sock2, pytest.raises(PermissionError):
            sock2.connect_ex(("127.0.0.2", port))
        with pytest.raises(PermissionError, match=r"look up example\.invalid"):
            socket.getaddrinfo("example.invalid", 80)
        thread.join()
    assert accepted == []  # nothing reached the listener
    assert only_one.refused == ["127.0.0.2", "127.0.0.2", "example.invalid"]


def test_uninstall_restores_and_nesting_is_refused() -> None:
    before = (socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex)
    with LocalNetworkOnly(), pytest.raises(RuntimeError, match="already installed"):
        LocalNetworkOnly().install()
    assert (socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex) == before


def test_extra_allowed_host() -> None:
    guard = LocalNetworkOnly(allowed=["My-Host.lan"])
    assert guard.permits("my-host.lan") and guard.permits("127.0.0.1")
    assert not guard.permits("other.lan")

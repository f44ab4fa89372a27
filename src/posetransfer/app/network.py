"""Keep the app's process off the network: only loopback connections and look-ups are allowed.

The app needs no outside network: Gradio's analytics and update check are switched off by
configuration, and :class:`LocalNetworkOnly` makes sure of it. While it is installed, Python's
``socket.getaddrinfo`` refuses names that are not this machine's (so no DNS query leaves) and
``socket.socket.connect`` / ``connect_ex`` refuse addresses outside the loopback range, raising
``PermissionError``; each refusal is logged and kept in :attr:`LocalNetworkOnly.refused`.
Serving is not affected: the server binds and accepts, it never connects out. This also stops
what a browser could otherwise ask of a Gradio server: fetching a URL given as a file
(``/gradio_api/file=https://...``, a FileData ``url``).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

__all__ = ["LocalNetworkOnly", "is_loopback"]

logger = logging.getLogger(__name__)

_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


def is_loopback(host: object) -> bool:
    """Whether ``host`` (a name or an address) is this machine's loopback interface."""
    if host is None:  # getaddrinfo(None, port): the local wildcard or loopback address
        return True
    text = host.decode() if isinstance(host, bytes) else str(host)
    text = text.strip("[]").split("%", 1)[0].lower()
    if text in _LOCAL_NAMES:
        return True
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


class LocalNetworkOnly:
    """Refuse non-loopback look-ups and connections in this process while installed.

    Use it as a context manager (or :meth:`install` / :meth:`uninstall`). Installing it again
    while installed is an error; it is not meant to nest.

    Args:
        allowed: Further host names or addresses to allow (the server's own address when it
            listens on another interface, since Gradio calls itself once at start-up).
        allow: The test for a host (default :func:`is_loopback`); ``allowed`` is added to it.
    """

    _lock = threading.Lock()
    _active: LocalNetworkOnly | None = None

    def __init__(
        self, allowed: Iterable[str] = (), allow: Callable[[object], bool] = is_loopback
    ) -> None:
        self.allowed = frozenset(a.lower() for a in allowed)
        self.allow = allow
        self.refused: list[str] = []
        self._saved: dict[str, Any] = {}

    def permits(self, host: object) -> bool:
        """Whether ``host`` may be looked up or connected to."""
        text = host.decode() if isinstance(host, bytes) else str(host)
        return self.allow(host) or text.lower() in self.allowed

    def install(self) -> LocalNetworkOnly:
        """Start refusing (patches ``socket.getaddrinfo`` and ``socket.socket.connect*``)."""
        with LocalNetworkOnly._lock:
            if LocalNetworkOnly._active is not None:
                raise RuntimeError("LocalNetworkOnly is already installed")
            getaddrinfo = socket.getaddrinfo
            connect, connect_ex = socket.socket.connect, socket.socket.connect_ex
            self._saved = {"getaddrinfo": getaddrinfo, "connect": connect, "ex": connect_ex}
            guard = self

            def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
                guard._check(host, "look up")
                return getaddrinfo(host, *args, **kwargs)

            def guarded_connect(sock: socket.socket, address: Any) -> None:
                guard._check_address(sock, address)
                return connect(sock, address)

            def guarded_connect_ex(sock: socket.socket, address: Any) -> int:
                guard._check_address(sock, address)
                return connect_ex(sock, address)

            setattr(socket, "getaddrinfo", guarded_getaddrinfo)  # noqa: B010 (typeshed)
            setattr(socket.socket, "connect", guarded_connect)  # noqa: B010
            setattr(socket.socket, "connect_ex", guarded_connect_ex)  # noqa: B010
            LocalNetworkOnly._active = self
        return self

    def uninstall(self) -> None:
        """Restore the socket functions (idempotent)."""
        with LocalNetworkOnly._lock:
            if LocalNetworkOnly._active is not self:
                return
            setattr(socket, "getaddrinfo", self._saved["getaddrinfo"])  # noqa: B010
            setattr(socket.socket, "connect", self._saved["connect"])  # noqa: B010
            setattr(socket.socket, "connect_ex", self._saved["ex"])  # noqa: B010
            LocalNetworkOnly._active = None

    def __enter__(self) -> LocalNetworkOnly:
        return self.install()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.uninstall()

    def _check_address(self, sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
            self._check(address[0], "connect to")

    def _check(self, host: object, action: str) -> None:
        if self.permits(host):
            return
        text = host.decode() if isinstance(host, bytes) else str(host)
        self.refused.append(text)
        logger.warning("refused to %s %s: the app does not use the network", action, text)
        raise PermissionError(f"posetransfer serve does not use the network: {action} {text}")

"""Start and stop the web app: :class:`AppServer` (what ``posetransfer serve`` runs).

Start-up, in order: a private temporary folder is made (uploads go to ``<tmp>/gradio`` through
``GRADIO_TEMP_DIR``, results to ``<tmp>/results``); Gradio's analytics, update check, run
history and Hugging Face telemetry are switched off by environment and arguments, and
:class:`~posetransfer.app.network.LocalNetworkOnly` refuses any connection off this machine; the
run is loaded; the page is built (:func:`~posetransfer.app.ui.build_app`); the queue is set to
:attr:`AppConfig.concurrency` model jobs at a time with :attr:`AppConfig.queue_size` waiting;
Gradio's server starts in a background thread with the upload size limit, no file paths
allowed but its own results folder (the run folder explicitly blocked) and no public link.
:meth:`AppServer.close` stops the server, closes the detectors, deletes the temporary folder and
restores the environment.

One app per process at a time: Gradio reads its upload folder from the environment.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from posetransfer.app.config import AppConfig
from posetransfer.app.engine import Engine
from posetransfer.app.network import LocalNetworkOnly

__all__ = ["OFFLINE_ENV", "AppServer", "free_port"]

logger = logging.getLogger(__name__)

#: Environment set while the app runs (restored afterwards).
OFFLINE_ENV: Final[dict[str, str]] = {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "GRADIO_RUN_HISTORY": "False",
    "GRADIO_SHARE": "False",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _check_port(host: str, port: int) -> None:
    """Fail with a clear message when ``port`` on ``host`` cannot be listened on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ValueError(
                f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port "
                "(0 picks a free one)"
            ) from None


class AppServer:
    """The app on a port; a context manager (``with AppServer(cfg, run) as server: ...``).

    Args:
        config: Server settings and limits.
        checkpoint: The ``posetransfer train`` run to serve.
    """

    def __init__(self, config: AppConfig, checkpoint: str | os.PathLike[str]) -> None:
        self.config = config
        self.checkpoint = Path(checkpoint)
        self.workdir: Path | None = None
        self.engine: Engine | None = None
        self.blocks: Any = None
        self.url: str | None = None
        self.guard: LocalNetworkOnly | None = None
        self._saved_env: dict[str, str | None] = {}
        self._saved_hub: Any = None

    def start(self) -> str:
        """Load the run, build the page and serve it; return the page's URL."""
        if self.url is not None:
            return self.url
        try:
            return self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> str:
        cfg = self.config
        if not cfg.is_local:
            logger.warning(
                "listening on %s: anyone who can reach this machine can use the app (no login)",
                cfg.host,
            )
        self.workdir = Path(tempfile.mkdtemp(prefix="posetransfer-serve-", dir=cfg.temp_dir))
        uploads = self.workdir / "gradio"
        uploads.mkdir()
        self._set_env({**OFFLINE_ENV, "GRADIO_TEMP_DIR": str(uploads)})
        self.guard = LocalNetworkOnly(allowed=[cfg.host]).install()

        import gradio as gr

        from posetransfer.app.ui import CSS, build_app

        self._hub_offline()

        self.engine = Engine.from_config(cfg, self.workdir, self.checkpoint)
        self.blocks = build_app(self.engine, cfg, run_name=self.checkpoint.resolve().name)
        self.blocks.queue(
            max_size=cfg.queue_size, default_concurrency_limit=cfg.concurrency, api_open=False
        )
        port = cfg.port or free_port(cfg.host)
        _check_port(cfg.host, port)
        self.blocks.launch(
            server_name=cfg.host,
            server_port=port,
            prevent_thread_lock=True,
            quiet=True,
            show_error=True,
            inbrowser=False,
            share=False,
            max_file_size=cfg.max_upload_bytes,
            allowed_paths=[str(self.engine.results)],  # the pictures and videos it makes
            blocked_paths=[str(self.checkpoint.resolve())],
            footer_links=["api"],
            run_history=False,
            enable_monitoring=False,
            ssr_mode=False,
            pwa=False,
            mcp_server=False,
            strict_cors=True,
            theme=gr.themes.Default(),
            css=CSS,
        )
        shown = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
        self.url = f"http://{shown}:{port}/"
        logger.info("serving %s at %s (temporary files in %s)", self.checkpoint, self.url, uploads)
        return self.url

    def wait(self) -> None:
        """Block until Ctrl-C or SIGTERM (the caller then calls :meth:`close`).

        SIGTERM (``kill``, a service manager) is handled like Ctrl-C while waiting, so the
        temporary folder is deleted either way; outside the main thread only Ctrl-C applies.
        """
        stop = threading.Event()
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set()) if main else None
        try:
            while not stop.wait(3600):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            if main:
                signal.signal(signal.SIGTERM, previous)
        logger.info("stopping the server")

    def close(self) -> None:
        """Stop serving, close the detectors, delete the temporary folder (idempotent)."""
        if self.blocks is not None:
            try:
                self.blocks.close()
            except Exception:  # a server that failed half-way may not close cleanly
                logger.debug("closing the Gradio server failed", exc_info=True)
            self.blocks = None
        if self.engine is not None:
            self.engine.close()
            self.engine = None
        if self.guard is not None:
            self.guard.uninstall()
            self.guard = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        self._restore_env()
        if self._saved_hub is not None:
            setattr(self._saved_hub, "HF_HUB_OFFLINE", False)  # noqa: B010
            self._saved_hub = None
        self.url = None

    def __enter__(self) -> AppServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _hub_offline(self) -> None:
        """huggingface_hub (imported by Gradio) reads ``HF_HUB_OFFLINE`` once, at import: if it
        was imported before the environment was set, switch its constant too."""
        constants = sys.modules.get("huggingface_hub.constants")
        if constants is not None and not getattr(constants, "HF_HUB_OFFLINE", True):
            self._saved_hub = constants
            setattr(constants, "HF_HUB_OFFLINE", True)  # noqa: B010 (a module's constant)

    def _set_env(self, values: dict[str, str]) -> None:
        for key, value in values.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def _restore_env(self) -> None:
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env = {}

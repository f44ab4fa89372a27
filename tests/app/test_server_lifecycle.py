"""Starting and stopping the web app (posetransfer.app.server): the temporary folder, the
environment and the network guard are all undone, also when start-up fails."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from posetransfer.app.network import LocalNetworkOnly
from tests.app.conftest import PHOTO, RUN, small_config

# Gradio 6.31's queue uses pandas options that pandas 3 deprecates (not ours to fix)
pytestmark = pytest.mark.filterwarnings("ignore:::gradio.queueing")

pytest.importorskip("gradio")
pytest.importorskip("mediapipe")
httpx = pytest.importorskip("httpx")


def test_a_server_cleans_up_and_restores_the_environment(tmp_path: Path) -> None:
    from posetransfer.app.server import AppServer, free_port

    port = free_port()
    before = dict(os.environ)
    with AppServer(small_config(tmp_path, port=port), RUN) as server:
        assert server.url == f"http://127.0.0.1:{port}/"
        assert os.environ["GRADIO_TEMP_DIR"].startswith(str(tmp_path))
        reply = httpx.post(
            server.url + "gradio_api/upload",
            files={"files": ("p.jpg", PHOTO.read_bytes())},
            timeout=30,
        )
        uploaded = Path(reply.json()[0])
        assert uploaded.is_file() and uploaded.is_relative_to(tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert dict(os.environ) == before
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
    assert LocalNetworkOnly._active is None


def test_a_failed_start_leaves_nothing_behind(tmp_path: Path) -> None:
    from posetransfer.app.server import AppServer

    before = dict(os.environ)
    with pytest.raises(FileNotFoundError, match="run folder not found"):
        AppServer(small_config(tmp_path), tmp_path / "no_run").start()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(ValueError, match=f"cannot listen on 127.0.0.1:{port}"):
            AppServer(small_config(tmp_path, port=port), RUN).start()
    assert list(tmp_path.iterdir()) == []
    assert dict(os.environ) == before
    assert LocalNetworkOnly._active is None

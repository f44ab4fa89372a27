"""Between Gradio and the engine: uploaded files in, errors out as messages.

The app's model events run with ``preprocess=False``: the handler gets an upload as Gradio's
file record (a dict with ``path`` and ``orig_name``), after Gradio has checked that the file is
one of its own uploads (a path that a browser or API client names is refused before any handler
runs). The engine then reads the file with the project's own readers, so a file that is not an
image or video gives a message naming it instead of a failure inside Gradio's preprocessing.
"""

import contextlib
import html
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from posetransfer.app.config import AppInputError

__all__ = ["upload_of", "user_errors"]

logger = logging.getLogger(__name__)


def upload_of(payload: Any, what: str) -> tuple[str, str]:
    """``(server path, name to show)`` of an upload record.

    Args:
        payload: Gradio's ``FileData`` as a dict (``{"path": ..., "orig_name": ...}``), or the
            ``{"video": FileData}`` record of a video.
        what: What the upload is, for the message when it is missing.

    Raises:
        AppInputError: Nothing was uploaded, or the record holds no file.
    """
    if isinstance(payload, dict) and isinstance(payload.get("video"), dict):
        payload = payload["video"]
    if payload is None or payload == {}:
        raise AppInputError(f"upload a {what} first")
    if not isinstance(payload, dict) or not isinstance(payload.get("path"), str):
        raise AppInputError(f"the {what} did not arrive as an uploaded file; upload it again")
    path = payload["path"]
    name = payload.get("orig_name") or Path(path).name
    return path, str(name)


@contextlib.contextmanager
def user_errors(action: str) -> Iterator[None]:
    """Show problems with the inputs as a message (``gr.Error``) instead of a failure.

    An :class:`AppInputError` becomes its own message. Anything else is logged with its
    traceback and shown as one line naming its type, so the page never just says "Error".
    Gradio shows messages as HTML, so they are escaped (file names come from the browser).
    """
    import gradio as gr

    try:
        yield
    except AppInputError as exc:
        raise gr.Error(
            html.escape(str(exc)), title=f"Cannot {action}", print_exception=False
        ) from None
    except gr.Error:
        raise
    except Exception as exc:
        logger.exception("%s failed", action)
        raise gr.Error(
            html.escape(f"{type(exc).__name__}: {exc} (details in the server's log)"),
            title=f"{action} failed",
        ) from None

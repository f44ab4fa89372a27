"""The page: a header, the photo tab, the video tab and a footer on what happens to uploads."""

import html
from typing import TYPE_CHECKING

from posetransfer.app.config import AppConfig
from posetransfer.app.engine import Engine
from posetransfer.app.photo_tab import add_photo_tab
from posetransfer.app.poses import LibraryPose, load_library
from posetransfer.app.video_tab import add_video_tab

if TYPE_CHECKING:
    import gradio as gr

__all__ = ["CSS", "build_app"]

#: Small pictures (the model's frame, flow, the skeleton canvas) are enlarged without blurring.
CSS = """
#flow-image img, #visibility-image img, #pose-canvas img { image-rendering: pixelated; }
#pose-canvas img { cursor: crosshair; }
"""


def build_app(
    engine: Engine,
    config: AppConfig,
    library: list[LibraryPose] | None = None,
    run_name: str = "",
) -> "gr.Blocks":
    """The Gradio page serving ``engine`` (not launched: see :class:`~.server.AppServer`).

    Args:
        engine: The loaded run.
        config: Limits and defaults shown on the page.
        library: The gallery's poses (default: :func:`~posetransfer.app.poses.load_library`).
        run_name: The run's folder name, shown in the header.
    """
    import gradio as gr  # the app extra, imported only when the page is built

    library = library if library is not None else load_library()
    height, width = engine.model_size
    keep = int(config.keep_minutes * 60)
    with gr.Blocks(
        title="posetransfer",
        analytics_enabled=False,
        delete_cache=(max(60, keep // 2), keep),
    ) as blocks:
        gr.Markdown(
            "## posetransfer: a person in a new pose\n"
            "Upload a photo of one person, choose a target pose (a built-in one, another "
            "photo's, or your own by moving the joints) and press **Re-pose**; or animate the "
            "photo with a short video in the **Video** tab. "
            f"Model: `{html.escape(run_name or 'run')}` (a person at {height}x{width} pixels, "
            "H x W), "
            "running on this machine."
        )
        with gr.Tabs():
            with gr.Tab("Photo", id="photo", elem_id="tab-photo"):
                add_photo_tab(engine, config, library)
            with gr.Tab("Video", id="video", elem_id="tab-video"):
                add_video_tab(engine, config)
        gr.Markdown(
            f"Uploads up to {config.max_upload_mb:g} MiB; photos are shrunk to "
            f"{config.max_photo_pixels / 1e6:g} megapixels; driving videos are cut to "
            f"{config.max_video_frames} frames. Uploads and results stay in a temporary folder "
            f"on this server, are deleted after {config.keep_minutes:g} minutes and when it "
            "stops; nothing is sent anywhere else.",
            elem_id="limits",
        )
    return blocks

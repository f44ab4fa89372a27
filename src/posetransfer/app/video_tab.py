"""The video tab: a person photo and a short driving video in, an MP4 of the person moving out.

The motion path is :func:`posetransfer.infer.motion.animate` (tracking detection, smoothing,
retargeting onto the photo's person, batched rendering, H.264 MP4 that browsers stream). The
progress bar follows its callback; the video is cut to the server's frame limit, and the
message under the result says so.

API endpoint (for ``gradio_client``): ``/animate`` (photo, video, flow, side by side, every ->
MP4, message).
"""

import html
from typing import Any

from posetransfer.app.config import AppConfig
from posetransfer.app.engine import Engine
from posetransfer.app.gradio_io import upload_of, user_errors

__all__ = ["add_video_tab"]

_FLOW_CHOICES = [("regressor (fast)", "regressor"), ("3D body (slow, steadier)", "3d")]
_UPLOAD_SOURCES: Any = ["upload", "clipboard"]


def add_video_tab(engine: Engine, config: AppConfig) -> None:
    """Lay out the video tab and wire its event (call inside ``gr.Blocks`` and ``gr.Tab``)."""
    import gradio as gr  # the app extra, imported only when the page is built

    with gr.Row(equal_height=False):
        with gr.Column():
            photo = gr.Image(
                label="Person photo",
                type="filepath",
                sources=_UPLOAD_SOURCES,
                height=360,
                elem_id="video-photo",
            )
        with gr.Column():
            video = gr.Video(
                label=f"Driving video (a short clip: at most {config.max_video_frames} frames "
                "are used)",
                sources=["upload"],
                format=None,
                include_audio=True,
                height=360,
                elem_id="video-driving",
            )
        with gr.Column():
            result = gr.Video(
                label="Result (MP4)",
                interactive=False,
                format=None,
                autoplay=True,
                loop=True,
                buttons=["download"],
                height=360,
                elem_id="video-result",
            )
    with gr.Row():
        flow = gr.Radio(_FLOW_CHOICES, value=config.flow, label="Flow")
        every = gr.Slider(1, 6, value=1, step=1, label="Use every N-th frame")
        side = gr.Checkbox(value=False, label="Side by side (driving | result)")
        run = gr.Button("Animate", variant="primary", elem_id="animate-button")
    status = gr.Markdown(elem_id="video-status")

    def animate(
        photo_file: Any,
        video_file: Any,
        flow_name: str,
        side_by_side: bool,
        step: float,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio's way to ask for progress)
    ) -> tuple[Any, str]:
        """Animate the person of `photo_file` with the motion of `video_file` (an MP4 back)."""
        with user_errors("animate"):
            photo_path, photo_name = upload_of(photo_file, "person photo")
            video_path, video_name = upload_of(video_file, "driving video")

            def report(done: int, total: int, stage: str) -> None:
                progress((done, total), desc=stage, unit="frames")

            out = engine.animate(
                photo_path,
                photo_name,
                video_path,
                video_name,
                flow=flow_name,
                side_by_side=bool(side_by_side),
                every=step,
                progress=report,
            )
            return str(out.path), html.escape(out.message)

    run.click(
        animate,
        [photo, video, flow, side, every],
        [result, status],
        api_name="animate",
        concurrency_id="model",
        concurrency_limit=config.concurrency,
        preprocess=False,
    )

"""The photo tab: a person photo and a target pose in, the re-posed person, flow and visibility out.

The target pose is one JSON text (``pose_text``, see :mod:`posetransfer.app.poses`) that three
inputs write: a gallery of built-in poses, a second photo (its person's pose is detected), and
editing. Gradio has no draggable-point widget, so editing is *click to place*: pick a joint,
click on the skeleton canvas and the joint moves there; the keypoint table and the JSON text can
be edited directly too. Every editing event returns the text, the canvas and the table together,
so no event triggers another.

API endpoints (for ``gradio_client``): ``/repose`` (photo, pose JSON, flow, paste -> result,
flow, visibility, message) and ``/target_pose`` (photo -> pose JSON, message).
"""

import html
from typing import Any

import numpy as np

from posetransfer.app.config import AppConfig, AppInputError
from posetransfer.app.engine import Engine
from posetransfer.app.gradio_io import upload_of, user_errors
from posetransfer.app.poses import (
    CANVAS,
    JOINT_NAMES,
    LibraryPose,
    draw_canvas,
    move_joint,
    pose_from_rows,
    pose_from_text,
    pose_to_rows,
    pose_to_text,
)

__all__ = ["DEFAULT_POSE", "add_photo_tab"]

#: The gallery pose selected when the page opens.
DEFAULT_POSE = "standing, front"

#: Thumbnail side of the gallery (square: the skeleton above a blank band for the caption).
THUMBNAIL = 128

_FLOW_CHOICES = [("regressor (fast)", "regressor"), ("3D body (slow, steadier)", "3d")]
_UPLOAD_SOURCES: Any = ["upload", "clipboard"]
_NO_BUTTONS: list[Any] = []
_OUTPUT_BUTTONS: list[Any] = ["download", "fullscreen"]


def add_photo_tab(engine: Engine, config: AppConfig, library: list[LibraryPose]) -> None:
    """Lay out the photo tab and wire its events (call inside ``gr.Blocks`` and ``gr.Tab``)."""
    import gradio as gr  # the app extra, imported only when the page is built

    start = next((p for p in library if p.name == DEFAULT_POSE), library[0])
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            source = gr.Image(
                label="Person photo",
                type="filepath",
                sources=_UPLOAD_SOURCES,
                height=440,
                elem_id="photo-source",
            )
        with gr.Column(scale=2), gr.Tabs():
            with gr.Tab("Gallery", elem_id="tab-gallery"):
                gallery = gr.Gallery(
                    value=[(_thumbnail(p), p.name) for p in library],
                    label="Built-in poses (click one)",
                    columns=4,
                    height=440,
                    allow_preview=False,
                    object_fit="contain",
                    format="png",
                    buttons=_NO_BUTTONS,
                    elem_id="pose-gallery",
                )
            with gr.Tab("From a photo", elem_id="tab-target-photo"):
                target_photo = gr.Image(
                    label="A photo with the target pose (its person's pose is detected)",
                    type="filepath",
                    sources=_UPLOAD_SOURCES,
                    height=400,
                    elem_id="photo-target",
                )
            with gr.Tab("Edit keypoints", elem_id="tab-edit"):
                with gr.Row():
                    joint = gr.Dropdown(
                        choices=list(JOINT_NAMES),
                        value="r_wrist",
                        label="Joint: click on the target skeleton to move it there",
                        elem_id="joint",
                    )
                    remove = gr.Button("Remove this joint", size="sm")
                table = gr.Dataframe(
                    value=pose_to_rows(start.pose),
                    headers=["joint", "x", "y"],
                    datatype=["str", "str", "str"],
                    row_count=18,
                    static_columns=[0],
                    interactive=True,
                    max_height=400,
                    label=f"Keypoints in the {CANVAS[1]}x{CANVAS[0]} canvas (empty = missing)",
                    elem_id="pose-table",
                )
        with gr.Column(scale=1):
            canvas = gr.Image(
                value=draw_canvas(start.pose, JOINT_NAMES.index("r_wrist")),
                label="Target pose",
                interactive=False,
                format="png",
                buttons=_NO_BUTTONS,
                height=440,
                elem_id="pose-canvas",
            )
    with gr.Row(equal_height=True):
        flow = gr.Radio(_FLOW_CHOICES, value=config.flow, label="Flow", scale=2)
        paste = gr.Checkbox(value=True, label="Paste into the whole photo", scale=1)
        run = gr.Button("Re-pose", variant="primary", elem_id="repose-button", scale=1)
    with gr.Accordion("Target pose as JSON", open=False):
        pose_text = gr.Textbox(
            value=pose_to_text(start.pose),
            label=f"18 [x, y] in the {CANVAS[1]}x{CANVAS[0]} canvas, COCO-18 order, "
            "null = missing (edit and press Enter)",
            lines=2,
            max_lines=4,
            elem_id="pose-json",
        )
    with gr.Row():
        result = gr.Image(
            label="Result",
            interactive=False,
            format="png",
            height=400,
            buttons=_OUTPUT_BUTTONS,
            elem_id="result-image",
        )
        flow_image = gr.Image(
            label="Flow, target to source (colour = direction)",
            interactive=False,
            format="png",
            height=400,
            buttons=_OUTPUT_BUTTONS,
            elem_id="flow-image",
        )
        vis_image = gr.Image(
            label="Visibility: green seen in the photo, orange hidden in it, grey background",
            interactive=False,
            format="png",
            height=400,
            buttons=_OUTPUT_BUTTONS,
            elem_id="visibility-image",
        )
    status = gr.Markdown(elem_id="photo-status")

    edited = [pose_text, canvas, table]
    # editing events only draw: straight through (not behind model jobs in the queue), no API
    light: dict[str, Any] = {"api_visibility": "private", "queue": False}

    def pick(evt: gr.SelectData, selected: str) -> tuple[Any, ...]:
        return _edited(engine, library[int(evt.index)].pose, selected)

    def click(evt: gr.SelectData, text: str, selected: str) -> tuple[Any, ...]:
        with user_errors("move the joint"):
            x, y = (float(v) for v in evt.index)
            pose = move_joint(pose_from_text(text), JOINT_NAMES.index(selected), (x, y))
            return _edited(engine, pose, selected)

    def drop(text: str, selected: str) -> tuple[Any, ...]:
        with user_errors("remove the joint"):
            pose = move_joint(pose_from_text(text), JOINT_NAMES.index(selected), None)
            return _edited(engine, pose, selected)

    def typed(text: str, selected: str) -> tuple[Any, ...]:
        with user_errors("read the pose"):
            return _edited(engine, pose_from_text(text), selected)

    def tabled(rows: Any, selected: str) -> tuple[Any, ...]:
        with user_errors("read the keypoint table"):
            values = rows.values.tolist() if hasattr(rows, "values") else rows
            return _edited(engine, pose_from_rows(values), selected)

    def reselect(text: str, selected: str) -> Any:
        try:
            pose = pose_from_text(text)
        except AppInputError:
            return gr.skip()
        return engine.picture(draw_canvas(pose, JOINT_NAMES.index(selected)), "pose")

    def from_photo(photo: Any, selected: str) -> tuple[Any, ...]:
        with user_errors("find the target pose"):
            path, name = upload_of(photo, "target photo")
            pose = engine.target_from_photo(path, name)
            return (*_edited(engine, pose, selected), html.escape(f"target pose from {name}"))

    def repose(photo: Any, text: str, flow_name: str, paste_back: bool) -> tuple[Any, ...]:
        """Re-pose the person of `photo` into the target pose (JSON text of 18 [x, y])."""
        with user_errors("re-pose"):
            path, name = upload_of(photo, "person photo")
            out = engine.repose(path, name, pose_from_text(text), flow_name, bool(paste_back))
            pictures = [("result", out.image), ("flow", out.flow), ("visibility", out.visibility)]
            files = [engine.picture(image, stem) for stem, image in pictures]
            return (*files, html.escape(out.message))

    gallery.select(pick, [joint], edited, **light)
    canvas.select(click, [pose_text, joint], edited, **light)
    remove.click(drop, [pose_text, joint], edited, **light)
    pose_text.submit(typed, [pose_text, joint], edited, **light)
    table.input(tabled, [table, joint], edited, **light)
    joint.change(reselect, [pose_text, joint], [canvas], **light)
    model: dict[str, Any] = {
        "concurrency_id": "model",
        "concurrency_limit": config.concurrency,
        "preprocess": False,
    }
    target_photo.upload(
        from_photo, [target_photo, joint], [*edited, status], api_name="target_pose", **model
    )
    run.click(
        repose,
        [source, pose_text, flow, paste],
        [result, flow_image, vis_image, status],
        api_name="repose",
        **model,
    )


def _thumbnail(entry: LibraryPose) -> np.ndarray:
    """A square white picture: the pose's skeleton, centred, above room for the caption."""
    height = THUMBNAIL * 4 // 5
    width = round(height * CANVAS[1] / CANVAS[0])
    image = np.full((THUMBNAIL, THUMBNAIL, 3), 255, np.uint8)
    left = (THUMBNAIL - width) // 2
    image[:height, left : left + width] = draw_canvas(entry.pose, size=(height, width))
    return image


def _edited(engine: Engine, pose: Any, selected: str) -> tuple[str, str, list[list[str]]]:
    """The outputs of every editing event: the JSON text, the canvas (a file) and the table."""
    image = draw_canvas(pose, JOINT_NAMES.index(selected) if selected in JOINT_NAMES else None)
    return pose_to_text(pose), engine.picture(image, "pose"), pose_to_rows(pose)

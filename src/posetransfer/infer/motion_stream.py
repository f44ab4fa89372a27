"""The fast video loop: one source person, many target poses, the CPU cores kept busy.

:func:`posetransfer.infer.motion.animate` renders a driving video's frames through
:class:`StreamRenderer` and :func:`render_stream` unless asked for the plain loop
(``MotionOptions.workers=0``) or the 3D-body flow. Compared with calling
:meth:`RePoser.render <posetransfer.infer.repose.RePoser.render>` batch after batch, it

- computes what is fixed for the whole video once: the source image and plate as tensors, the
  source keypoints, the paste mask, and (torch backend) the appearance encoder's features of the
  source image and of its plate (:class:`SourceFeatureMemo`), which the generator otherwise
  recomputes for every frame;
- runs ``workers`` batches at once in threads (flow regressor, generator and refiner, then
  compositing), while the calling thread encodes the finished frames in order
  (:func:`~posetransfer.infer.workers.ordered_map`);
- skips what a video does not use (the per-frame flow and mask arrays of ``RePoseResult``).

The frames equal the plain loop's up to float rounding (the cached features come from a batch of
one, the network batches from any batch): ``tests/infer/test_motion_stream.py`` compares them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from posetransfer.conventions import Visibility
from posetransfer.infer.background import composite, dilate_mask
from posetransfer.infer.repose import RePoser, SourcePerson
from posetransfer.infer.workers import StageClock, ordered_map
from posetransfer.io import tensor_to_uint8, uint8_to_tensor
from posetransfer.pose.keypoints import Pose

__all__ = ["SourceFeatureMemo", "StreamRenderer", "render_stream", "side_by_side"]

_BACKGROUND = int(Visibility.BACKGROUND)


class SourceFeatureMemo(nn.Module):
    """An encoder that remembers its output for batches of one repeated image.

    In a video every batch holds the same source image (and the same plate) ``B`` times. A call
    whose samples are all equal is answered from the memo when that image was seen before (else
    the encoder runs on one sample and the result is kept), expanded to the batch; any other
    batch goes to the encoder. Eval-mode networks treat samples independently, so the answer is
    the encoder's own up to float rounding. Thread-safe; holds up to ``capacity`` images.

    Args:
        encoder: The wrapped encoder: ``x (B, C, H, W) -> (bottom, skips)`` where ``skips`` is a
            list of lists of ``(B, c, h, w)`` tensors (``ResidualEncoder``).
        capacity: Most images remembered (the oldest is dropped first).
    """

    def __init__(self, encoder: nn.Module, capacity: int = 2) -> None:
        super().__init__()
        self.encoder = encoder
        self.capacity = capacity
        self.hits = 0
        self._known: list[tuple[torch.Tensor, Any]] = []
        self._lock = threading.Lock()

    def forward(self, x: torch.Tensor) -> Any:
        """``encoder(x)``, from the memo when ``x`` is one known image repeated ``B`` times."""
        first = x[:1]
        if not torch.equal(x, first.expand_as(x)):
            return self.encoder(x)
        with self._lock:
            found = next((out for key, out in self._known if _same(key, first)), None)
        if found is None:
            found = self.encoder(first)
            with self._lock:
                self._known = [*self._known, (first.clone(), found)][-self.capacity :]
        else:
            self.hits += 1
        bottom, skips = found
        batch = x.shape[0]
        return _expand(bottom, batch), [[_expand(s, batch) for s in level] for level in skips]


def _same(key: torch.Tensor, x: torch.Tensor) -> bool:
    return key.shape == x.shape and key.dtype == x.dtype and torch.equal(key, x)


def _expand(x: torch.Tensor, batch: int) -> torch.Tensor:
    return x.expand(batch, *x.shape[1:])


class StreamRenderer:
    """Renders batches of target poses of one source person into finished frames.

    Args:
        reposer: The run and photo options (the ``regressor`` flow).
        source: The source person (:meth:`RePoser.source`).
        clock: Where the stage times go (``flow``, ``generator``, ``composite``).

    Raises:
        ValueError: With ``flow="3d"`` (the plain loop fits bodies; see ``motion.animate``).
    """

    def __init__(
        self, reposer: RePoser, source: SourcePerson, clock: StageClock | None = None
    ) -> None:
        if reposer.options.flow != "regressor":
            raise ValueError(
                f"StreamRenderer renders the regressor flow, not {reposer.options.flow!r}"
            )
        self.reposer, self.source = reposer, source
        self.clock = clock or StageClock()
        self.pipeline = reposer.pipeline
        self.x_src = uint8_to_tensor(source.crop)[None]
        self.background = None
        if reposer.options.clean_background and reposer._uses_background():
            self.background = uint8_to_tensor(source.plate)[None]
        self.plate = reposer._plate(source)
        opts = reposer.options
        self.paste_mask = dilate_mask(source.mask, opts.hole_dilation) if opts.paste else None

    @contextlib.contextmanager
    def source_features(self) -> Iterator[SourceFeatureMemo | None]:
        """Within the block the torch generator's appearance encoder is memoised.

        Yields the memo (None for the ONNX Runtime backend or a generator without a separate
        appearance encoder); the encoder is put back when the block ends.
        """
        generator = self.pipeline.nets.generator
        encoder = getattr(generator, "app_encoder", None)
        if self.pipeline.engine is not None or generator is None or encoder is None:
            yield None
            return
        memo = SourceFeatureMemo(encoder)
        generator.app_encoder = memo  # type: ignore[assignment]  # same call signature
        try:
            yield memo
        finally:
            generator.app_encoder = encoder

    def __call__(self, targets: Sequence[Pose]) -> list[np.ndarray]:
        """The finished frames (``(h, w, 3)`` uint8, or the pasted photo) of ``targets``."""
        if not targets:
            return []
        count, clock, pose = len(targets), self.clock, self.source.pose
        with torch.no_grad():
            with clock.stage("flow"):
                flow, vis = self.reposer.flows(self.source, targets)
            with clock.stage("generator"):
                x_src = self.x_src.expand(count, -1, -1, -1)
                background = None
                if self.background is not None:
                    background = self.background.expand(count, -1, -1, -1)
                out = self.pipeline(x_src, [pose] * count, list(targets), (flow, vis), background)
                images = out.image.cpu()
        with clock.stage("composite"):
            return [self.compose(images[i], vis[i]) for i in range(count)]

    def compose(self, image: torch.Tensor, vis: torch.Tensor) -> np.ndarray:
        """One frame as :meth:`RePoser.render` makes it (its ``RePoseResult.image``).

        Args:
            image: ``(3, h, w)`` network output in ``[-1, 1]``.
            vis: ``(h, w)`` visibility codes.
        """
        generated = tensor_to_uint8(image)
        codes = vis.to(torch.uint8).numpy()
        mask = (~dilate_mask(codes == _BACKGROUND, 1)).astype(np.float32)
        opts = self.reposer.options
        frame = composite(generated, self.plate, mask, opts.feather)
        if self.paste_mask is None:
            return frame
        where = np.maximum(mask, self.paste_mask)
        return self.source.frame.paste(self.source.image, frame, where, opts.feather)


def side_by_side(driving: np.ndarray, output: np.ndarray) -> np.ndarray:
    """``driving | output``, the driving frame resized to the output's height.

    Args:
        driving: ``(H, W, 3)`` uint8 driving frame.
        output: ``(h, w, 3)`` uint8 rendered frame.

    Returns:
        ``(h, w' + w, 3)`` uint8.
    """
    height = output.shape[0]
    width = max(1, round(driving.shape[1] * height / driving.shape[0]))
    small = np.asarray(Image.fromarray(driving).resize((width, height), Image.Resampling.BILINEAR))
    return np.concatenate([small, output], axis=1)


def render_stream(
    renderer: Callable[[Sequence[Pose]], list[np.ndarray]],
    batches: Iterable[Sequence[Pose]],
    write: Callable[[np.ndarray], None],
    *,
    workers: int = 2,
    clock: StageClock | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Render ``batches`` on ``workers`` threads and ``write`` every frame, in order.

    Args:
        renderer: Target poses -> finished frames (a :class:`StreamRenderer`).
        batches: Target poses, one sequence per network batch.
        write: Called with each frame in order, in the calling thread (the video encoder).
        workers: Batches rendered at once.
        clock: Adds the ``encode`` stage (the time spent in ``write``).
        on_batch: Called with the number of frames written so far after each batch.

    Returns:
        The number of frames written.

    Raises:
        Exception: The first error of a batch (in order) or of ``write``; the workers stop.
    """
    clock = clock or StageClock()
    written = 0
    for frames in ordered_map(renderer, batches, workers=workers):
        with clock.stage("encode"):
            for frame in frames:
                write(frame)
        written += len(frames)
        if on_batch is not None:
            on_batch(written)
    return written

"""Flow synthesis for a dataset: fit every image's keypoints once, render every pair's flow.

The output folders and files are described in :mod:`posetransfer.synth.flow_output`.

Stages (:func:`synthesize_flows`, plan from :func:`~posetransfer.synth.flow_plan.build_plan`):

1. *Fit* (:mod:`posetransfer.synth.flow_fits`): each chunk of the shard is fitted in one batch
   (images grouped by size). Before that, every image is checked: its file must exist and all
   its valid keypoints must lie inside it (the size comes from the image header; pixels are never
   decoded).
2. *Render*: for each block of the shard, the converged bodies of all the block's images are
   posed in fixed batches, then each pair is rendered and written. Three threads overlap: a
   posing thread prepares the next block (fits, posed vertices) while the main thread renders
   this one, and a writer thread compresses and writes (with fsync) the previous few flow files
   (:mod:`~posetransfer.synth.flow_blocks`). Each image of
   the block is rasterized once, when its first pair needs it, and its fragments serve all the
   block's pairs that use it (dropped after the last one); a pair then costs one correspondence
   instead of two rasterizations and a correspondence, and its flow is bit for bit the one of
   :func:`~posetransfer.render.render_pair` (the same rasterization of the same vertices;
   ``reuse_renders=False`` calls ``render_pair`` per pair, the former path). A pair whose source
   or target image belongs to another shard's chunk that is not fitted yet fits that whole chunk
   on the fly (atomic writes make duplicate work harmless).

Resuming: every file is written atomically, so an existing file is complete; a rerun skips
existing fits and flows and reports the failures again. A killed run leaves the temporary file it
was writing (``.<name>.<pid>@<host>.*.tmp``, never read); a rerun deletes those whose process is
gone (:func:`~posetransfer.io.remove_stale_temporaries`). Delete ``fits/`` when the keypoints
change, and use a new flows folder for another ``size``.

Resolution: fits keep the image size they were fitted at. With ``size = (H, W)`` every image's
projected vertices are scaled by ``(W / w, H / h)`` before rasterizing. Resizing a photo is that
same affine map of image points, and rasterization commutes with affine maps of the vertices
(barycentrics and depths are unchanged), so the flow is exactly the one of the resized images,
also for a non-uniform resize (the body is then stretched as in the resized photo). For a
uniform factor this equals rendering with ``FitResult.rescaled``.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from posetransfer.body.anny_model import BodyModel
from posetransfer.body.fit_result import FitResult
from posetransfer.body.params import BodyParams
from posetransfer.data.flow_files import write_corr, write_flow
from posetransfer.io import atomic_write_text, remove_stale_temporaries
from posetransfer.render.backends import int32_faces, warm_up
from posetransfer.render.bodies import body_image_vertices
from posetransfer.render.correspondence import render_pair
from posetransfer.synth.flow_blocks import Block, BlockRenders
from posetransfer.synth.flow_fits import ImageFits
from posetransfer.synth.flow_output import (
    ManifestEntry,
    SynthFlowConfig,
    SynthOutput,
    SynthSummary,
    format_summary,
    manifest_line,
    percentiles,
    read_manifest,
    resolve_shard,
)
from posetransfer.synth.flow_plan import PairItem, SynthPlan

__all__ = [
    "ManifestEntry",
    "SynthFlowConfig",
    "SynthOutput",
    "SynthSummary",
    "format_summary",
    "read_manifest",
    "resolve_shard",
    "synthesize_flows",
]

logger = logging.getLogger(__name__)

#: Flow files being compressed and written by the writer thread while the next pairs render.
_MAX_PENDING_WRITES = 4


def _scale_xy(verts: Tensor, fitted: tuple[int, int], size: tuple[int, int]) -> Tensor:
    """Image-space vertices of an image of size ``fitted`` mapped to one of size ``size``."""
    if fitted == size:
        return verts
    scale = verts.new_tensor([size[1] / fitted[1], size[0] / fitted[0], 1.0])
    return verts * scale


class _Run:
    """The state of one shard's run: its fits, the pair counters, the manifest and the writer."""

    def __init__(
        self,
        model: BodyModel,
        plan: SynthPlan,
        out: SynthOutput,
        cfg: SynthFlowConfig,
        size: tuple[int, int] | None,
        refit: bool,
        reuse_renders: bool = True,
    ) -> None:
        self.model, self.plan, self.out, self.cfg = model, plan, out, cfg
        self.faces = int32_faces(model.faces)  # converted once, not on every render call
        self.size = size
        self.reuse_renders = reuse_renders
        self.manifest: list[ManifestEntry] = []
        self.fits = ImageFits(model, plan, out, cfg, refit, self.manifest)
        self.pairs = Counter(total=0, rendered=0, skipped=0, failed=0)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="synth-flow-write")
        self._poser = ThreadPoolExecutor(max_workers=1, thread_name_prefix="synth-flow-pose")
        self._pending: deque[tuple[PairItem, Future[None]]] = deque()

    # ----------------------------------------------------------------------------- pairs
    def _block_vertices(self, keys: list[str], fits: dict[str, FitResult]) -> dict[str, Tensor]:
        """Image-space vertices ``(V, 3)`` (fit size) of each key, posed in fixed batches."""
        out: dict[str, Tensor] = {}
        step = self.cfg.vertex_batch
        for start in range(0, len(keys), step):
            sub = keys[start : start + step]
            params = BodyParams.cat([fits[k].params for k in sub])
            camera = torch.cat([fits[k].camera for k in sub])
            out.update(zip(sub, body_image_vertices(self.model, params, camera), strict=True))
        return out

    def prepare_block(self, index: int) -> Block:
        """Block ``index``'s pending pairs, its images' fits and posed vertices.

        Runs on the posing thread while the previous block renders: it reads flow-file
        existence, fits (:meth:`ImageFits.fit_of`, which writes no manifest entry) and the body
        model, and changes nothing the rendering thread uses.
        """
        pairs = self.plan.block(index)
        pending = [
            k
            for k, pair in enumerate(pairs)
            if pair.problem is None and not self.out.flow_path(pair).exists()
        ]
        if not pending:
            return Block(pairs, set(), {}, {})
        # every image of the block, done or not, so the posing batches never change
        names = sorted({n for p in pairs if p.problem is None for n in (p.source, p.target)})
        status = {n: self.fits.fit_of(self.plan.image(n)) for n in names}
        good = {self.plan.image(n).key: f for n, f in status.items() if isinstance(f, FitResult)}
        return Block(pairs, set(pending), status, self._block_vertices(sorted(good), good))

    def render_block(self, block: Block) -> Iterator[int]:
        """Render a prepared block's pending pairs; yields 1 per pair handled."""
        for k, pair in enumerate(block.pairs):
            self.pairs["total"] += 1
            if pair.problem is not None:
                self._fail_pair(pair, pair.problem, "plan")
            elif k not in block.pending:
                self.pairs["skipped"] += 1
            else:
                continue
            yield 1
        pending = [pair for k, pair in enumerate(block.pairs) if k in block.pending]
        uses = Counter(key for pair in pending for key in self._keys(pair))
        renders = BlockRenders(self.faces, uses) if self.reuse_renders else None
        for pair in pending:
            self._render_pair(pair, block.status, block.verts, renders)
            if renders is not None:
                renders.done(self._keys(pair))
            yield 1

    def _keys(self, pair: PairItem) -> tuple[str, str]:
        """Fit keys of the pair's source and target images."""
        return self.plan.image(pair.source).key, self.plan.image(pair.target).key

    def _render_pair(
        self,
        pair: PairItem,
        status: dict[str, FitResult | str],
        verts: dict[str, Tensor],
        renders: BlockRenders | None,
    ) -> None:
        fit_src, fit_tgt = status[pair.source], status[pair.target]
        reasons = [
            f"{role} fit failed: {fit}"
            for role, fit in (("source", fit_src), ("target", fit_tgt))
            if isinstance(fit, str)
        ]
        if reasons or not isinstance(fit_src, FitResult) or not isinstance(fit_tgt, FitResult):
            self._fail_pair(pair, "; ".join(reasons), "render")
            return
        size = self.size or fit_tgt.image_size
        if self.size is None and fit_src.image_size != fit_tgt.image_size:
            self._fail_pair(
                pair,
                f"size mismatch: source {fit_src.image_size} and target {fit_tgt.image_size} "
                "(H, W) differ; render both at one size with --size",
                "render",
            )
            return
        keys = self._keys(pair)
        v_src = _scale_xy(verts[keys[0]], fit_src.image_size, size)[None]
        v_tgt = _scale_xy(verts[keys[1]], fit_tgt.image_size, size)[None]
        tol = self.cfg.depth_tolerance_m
        try:
            if renders is None:
                field = render_pair(v_src, v_tgt, self.faces, size, tol)
            else:
                field = renders.render(keys, v_src, v_tgt, size, tol)
        except (ValueError, RuntimeError) as exc:
            self._fail_pair(pair, f"render failed: {exc}", "render")
            return
        flow = field.flow[0].permute(1, 2, 0).numpy()
        visibility = field.visibility[0].numpy().astype(np.uint8)
        write = write_flow if self.out.fmt == "npz" else write_corr
        job = self._writer.submit(write, self.out.flow_path(pair), flow, visibility)
        self._pending.append((pair, job))
        while len(self._pending) > _MAX_PENDING_WRITES:
            self._finish_write()

    def _finish_write(self) -> None:
        """Wait for the oldest pending flow file and count it."""
        pair, job = self._pending.popleft()
        try:
            job.result()
        except (ValueError, OSError) as exc:
            self._fail_pair(pair, f"write failed: {exc}", "render")
            return
        self.pairs["rendered"] += 1

    def prepared_blocks(self, blocks: Sequence[int]) -> Iterator[Block]:
        """The blocks in order, each prepared on the posing thread while the one before renders."""
        if not blocks:
            return
        ahead = self._poser.submit(self.prepare_block, blocks[0])
        for following in [*blocks[1:], None]:
            block = ahead.result()
            if following is not None:
                ahead = self._poser.submit(self.prepare_block, following)
            yield block

    def close(self) -> None:
        """Finish the pending writes (also after an interruption); stop both threads.

        A block being prepared is finished first (it may be fitting another shard's chunk on
        the fly, a few seconds); blocks not started yet are dropped.
        """
        try:
            while self._pending:
                self._finish_write()
        finally:
            self._poser.shutdown(wait=True, cancel_futures=True)
            self._writer.shutdown(wait=True)

    def _fail_pair(self, pair: PairItem, reason: str, stage: str) -> None:
        logger.debug("pair %s failed (%s): %s", pair.label, stage, reason)
        self.pairs["failed"] += 1
        self.manifest.append(ManifestEntry("pair", pair.label, stage, reason, pair.split))


def _bar(total: int, desc: str, enabled: bool) -> tqdm:
    return tqdm(total=total, desc=desc, unit=desc.split()[-1], disable=not enabled)


def synthesize_flows(
    model: BodyModel,
    plan: SynthPlan,
    out: SynthOutput,
    cfg: SynthFlowConfig | None = None,
    *,
    size: tuple[int, int] | None = None,
    refit: bool = True,
    progress: bool = False,
    reuse_renders: bool = True,
) -> SynthSummary:
    """Run both stages for one shard and write its manifest and summary.

    Args:
        model: The body model.
        plan: Images and pairs (:func:`~posetransfer.synth.flow_plan.build_plan`); its
            ``fit_batch``/``render_block`` should equal ``cfg``'s.
        out: Output folders and the shard (:meth:`SynthOutput.create`).
        cfg: Settings (default :class:`SynthFlowConfig`).
        size: ``(H, W)`` to render at; None renders each pair at its images' size.
        refit: False uses stored fits only (``--from-fits``): no image is fitted or read.
        progress: Show tqdm progress bars.
        reuse_renders: Rasterize each image once per render block (False: ``render_pair`` per
            pair, two rasterizations each, the former path). The files are the same bytes.

    Returns:
        The summary (also written to ``out.summary_path``; failures to ``out.manifest_path``).
    """
    cfg = cfg or SynthFlowConfig()
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise ValueError(f"size must be (H, W) with positive sides, got {size!r}")
    if (plan.fit_batch, plan.render_block) != (cfg.fit_batch, cfg.render_block):
        raise ValueError(
            f"the plan's fit_batch/render_block ({plan.fit_batch}, {plan.render_block}) differ "
            f"from the config's ({cfg.fit_batch}, {cfg.render_block}); build the plan with the "
            "config's values so every shard batches alike"
        )
    for folder in {out.root, out.fits_dir, out.flows_dir}:
        remove_stale_temporaries(folder)  # what a killed run was writing
    run = _Run(
        model, plan, out, cfg, None if size is None else (size[0], size[1]), refit, reuse_renders
    )
    chunks = plan.shard_chunks(out.shard, out.num_shards)
    blocks = plan.shard_blocks(out.shard, out.num_shards)
    start = fit_done = time.perf_counter()
    cpu_start = cpu_fit_done = time.process_time()
    try:
        with _bar(sum(len(plan.chunk(c)) for c in chunks), "fit images", progress) as bar:
            for count in run.fits.fit_stage(chunks):
                bar.update(count)
        fit_done, cpu_fit_done = time.perf_counter(), time.process_time()
        warm_up()  # load the renderer's kernels before the posing thread starts
        with _bar(sum(len(plan.block(b)) for b in blocks), "render pairs", progress) as bar:
            for block in run.prepared_blocks(blocks):
                for count in run.render_block(block):
                    bar.update(count)
    finally:
        run.close()
    end, cpu_end = time.perf_counter(), time.process_time()
    if out.shard == 0:
        run.manifest[:0] = [ManifestEntry("file", item, "plan", why) for item, why in plan.notes]
    summary = SynthSummary(
        shard=out.shard,
        num_shards=out.num_shards,
        images=dict(run.fits.images),
        pairs=dict(run.pairs),
        fit_error_px=percentiles(run.fits.errors),
        failures=dict(Counter(entry.category for entry in run.manifest)),
        seconds={"fit": fit_done - start, "render": end - fit_done, "total": end - start},
        cpu_seconds={
            "fit": cpu_fit_done - cpu_start,
            "render": cpu_end - cpu_fit_done,
            "total": cpu_end - cpu_start,
        },
        manifest=str(out.manifest_path),
        settings={
            "dataset": str(plan.files.root),
            "splits": list(plan.splits),
            "format": out.fmt,
            "size": None if size is None else list(size),
            "fits_dir": str(out.fits_dir),
            "flows_dir": str(out.flows_dir),
            "refit": refit,
            "config": asdict(cfg),
        },
    )
    lines = "".join(manifest_line(entry) for entry in run.manifest)
    atomic_write_text(out.manifest_path, lines)
    atomic_write_text(out.summary_path, json.dumps(summary.to_dict(), indent=2) + "\n")
    images = run.fits.images
    logger.info(
        "synth-flow shard %d/%d: %d/%d images fitted (%d skipped, %d failed), %d/%d pairs rendered "
        "(%d skipped, %d failed) in %.1f s; manifest %s",
        out.shard + 1, out.num_shards, images["fitted"], images["total"], images["skipped"],
        images["failed"], run.pairs["rendered"], run.pairs["total"], run.pairs["skipped"],
        run.pairs["failed"], end - start, out.manifest_path,
    )  # fmt: skip
    return summary

"""What ``synth-flow`` is told and what it leaves: settings, shards, folders, manifest, summary.

Output folder ``OUT`` (``posetransfer synth-flow ROOT --out OUT``)::

    OUT/fits/<image key>.npz        FitResult.save of one image (fitted at the image's own size,
                                    stored in the file); written for every image a fit was run
                                    for, converged or not
    OUT/flows/<target>_<source>.npz flow store (data.flow_files), or .corr with --format corr;
                                    another folder with flows_dir (e.g. the DIAF 3d/hmr/corr)
    OUT/manifest.jsonl              failures, one JSON object per line: kind (image | pair |
                                    file), item, stage (plan | fit | render), reason, split,
                                    and crc32, the checksum of the line's other fields (lines
                                    of older runs have none and are read unchecked)
    OUT/summary.json                counts, fit-error percentiles, failures by reason, timings

A shard ``i`` of ``n`` writes ``manifest-<i>-of-<n>.jsonl`` and ``summary-<i>-of-<n>.json``
instead. ``--out ROOT`` puts the flows where :class:`~posetransfer.data.datasets.PairDataset`
looks by default (``ROOT/flows``; for a DIAF dataset the original ``ROOT/3d/hmr/corr``, see
:func:`default_flows_dir`); elsewhere pass ``PairDataset(flows_dir=OUT/flows)``.
"""

from __future__ import annotations

import json
import math
import os
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Literal

import numpy as np

from posetransfer.body.fitting import FitConfig
from posetransfer.data.formats import FormatError, parse_json, read_text
from posetransfer.data.layout import DatasetFiles
from posetransfer.render.correspondence import DEFAULT_DEPTH_TOLERANCE_M
from posetransfer.runtime import dist_info_from_env
from posetransfer.synth.flow_plan import ImageItem, PairItem

__all__ = [
    "ManifestEntry",
    "SynthFlowConfig",
    "SynthOutput",
    "SynthSummary",
    "default_flows_dir",
    "format_summary",
    "manifest_line",
    "percentiles",
    "read_manifest",
    "resolve_shard",
]


@dataclass(frozen=True)
class SynthFlowConfig:
    """Settings of ``synth-flow``.

    ``fit_batch``, ``render_block`` and ``vertex_batch`` fix which items are batched together;
    shards of one dataset must use the same values to write exactly the same results.

    Attributes:
        fit: Keypoint-fit settings.
        fit_batch: Images per fit chunk (the unit of fitting, sharding and resuming).
        render_block: Pairs per render block.
        vertex_batch: Bodies posed per Anny forward pass inside a block.
        depth_tolerance_m: Occlusion tolerance of the visibility test, in metres.
        threads: torch intra-op threads (1 is fastest and reproducible on small machines).
    """

    fit: FitConfig = field(default_factory=FitConfig)
    fit_batch: int = 64
    render_block: int = 64
    vertex_batch: int = 32
    depth_tolerance_m: float = DEFAULT_DEPTH_TOLERANCE_M
    threads: int = 1

    def __post_init__(self) -> None:
        for name in ("fit_batch", "render_block", "vertex_batch", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"SynthFlowConfig.{name} must be an integer >= 1, got {value!r}")
        if not (math.isfinite(self.depth_tolerance_m) and self.depth_tolerance_m >= 0):
            raise ValueError(
                f"SynthFlowConfig.depth_tolerance_m must be >= 0, got {self.depth_tolerance_m!r}"
            )


def resolve_shard(
    shard: int | None, num_shards: int | None, env: Mapping[str, str] = os.environ
) -> tuple[int, int]:
    """``(shard, num_shards)`` from the arguments, else torchrun's ``RANK``/``WORLD_SIZE``.

    Raises:
        ValueError: Only one of the two given, or ``shard`` outside ``[0, num_shards)``.
    """
    if (shard is None) != (num_shards is None):
        raise ValueError("give both --shard and --num-shards, or neither")
    if shard is None or num_shards is None:
        info = dist_info_from_env(env)
        shard, num_shards = info.rank, info.world_size
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise ValueError(f"shard must be in [0, num_shards), got shard={shard} of {num_shards}")
    return shard, num_shards


@dataclass(frozen=True)
class SynthOutput:
    """Where one shard writes.

    Attributes:
        root: The output folder ``OUT``.
        fits_dir: Fit files (``OUT/fits``, or the stored fits read with ``from_fits``).
        flows_dir: Flow files.
        fmt: ``"npz"`` or ``"corr"``.
        shard: This shard.
        num_shards: Number of shards.
    """

    root: Path
    fits_dir: Path
    flows_dir: Path
    fmt: Literal["npz", "corr"] = "npz"
    shard: int = 0
    num_shards: int = 1

    @classmethod
    def create(
        cls,
        root: str | os.PathLike[str],
        *,
        fmt: Literal["npz", "corr"] = "npz",
        flows_dir: str | os.PathLike[str] | None = None,
        from_fits: str | os.PathLike[str] | None = None,
        shard: int = 0,
        num_shards: int = 1,
    ) -> SynthOutput:
        """Resolve the folders; ``from_fits`` is an earlier ``OUT`` or its ``fits`` folder."""
        if fmt not in ("npz", "corr"):
            raise ValueError(f"format must be 'npz' or 'corr', got {fmt!r}")
        root = Path(root)
        fits = root / "fits"
        if from_fits is not None:
            given = Path(from_fits)
            fits = given / "fits" if (given / "fits").is_dir() else given
            if not fits.is_dir():
                raise FileNotFoundError(f"--from-fits: no fits folder at {given}")
        flows = Path(flows_dir) if flows_dir is not None else root / "flows"
        return cls(root, fits, flows, fmt, shard, num_shards)

    def _suffix(self, stem: str, ext: str) -> Path:
        if self.num_shards == 1:
            return self.root / f"{stem}.{ext}"
        return self.root / f"{stem}-{self.shard:05d}-of-{self.num_shards:05d}.{ext}"

    @property
    def manifest_path(self) -> Path:
        """This shard's manifest."""
        return self._suffix("manifest", "jsonl")

    @property
    def summary_path(self) -> Path:
        """This shard's summary."""
        return self._suffix("summary", "json")

    def fit_path(self, item: ImageItem) -> Path:
        """Fit file of an image."""
        return self.fits_dir / f"{item.key}.npz"

    def flow_path(self, pair: PairItem) -> Path:
        """Flow file of a pair."""
        return self.flows_dir / pair.filename


@dataclass(frozen=True)
class ManifestEntry:
    """One failure.

    Attributes:
        kind: ``"image"``, ``"pair"`` or ``"file"``.
        item: The image name, ``"source -> target"``, or a file description.
        stage: ``"plan"`` (label files), ``"fit"`` or ``"render"``.
        reason: What went wrong; the text before the first colon is its category.
        split: The pair's split, when known.
    """

    kind: str
    item: str
    stage: str
    reason: str
    split: str | None = None

    @property
    def category(self) -> str:
        """The reason up to its first colon (``"did not converge"``, ``"source fit failed"``)."""
        return self.reason.split(":", 1)[0]


def _entry_json(entry: ManifestEntry) -> str:
    return json.dumps(asdict(entry))


def manifest_line(entry: ManifestEntry) -> str:
    """One manifest line: the entry's fields and ``crc32``, the checksum of those fields."""
    text = _entry_json(entry)
    return f'{text[:-1]}, "crc32": "{zlib.crc32(text.encode()):08x}"}}\n'


def _entry(data: object, path: Path, number: int) -> ManifestEntry:
    if not isinstance(data, dict):
        raise FormatError(path, "not a manifest entry (a JSON object)", line=number)
    crc = data.pop("crc32", None)
    keys = {f.name for f in fields(ManifestEntry)}
    if not {"kind", "item", "stage", "reason"} <= set(data) <= keys:
        raise FormatError(path, f"fields {sorted(data)} are not {sorted(keys)}", line=number)
    for key, value in data.items():
        if not (isinstance(value, str) or (key == "split" and value is None)):
            raise FormatError(path, f"expected text, got {value!r:.60}", line=number, field=key)
    entry = ManifestEntry(**data)
    if crc is not None and crc != f"{zlib.crc32(_entry_json(entry).encode()):08x}":
        raise FormatError(path, "checksum mismatch: the line is corrupt", line=number)
    return entry


def read_manifest(path: str | os.PathLike[str]) -> list[ManifestEntry]:
    """Read a manifest written by :func:`synthesize_flows`.

    Raises:
        FormatError: A missing or unreadable file, or a line that is not an entry or whose
            checksum does not match (naming the line).
    """
    path = Path(path)
    entries = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if line.strip():
            entries.append(_entry(parse_json(line, path, line=number), path, number))
    return entries


@dataclass
class SynthSummary:
    """What one shard did (JSON-serialisable with :meth:`to_dict`).

    Attributes:
        shard: This shard.
        num_shards: Number of shards.
        images: Counts over this shard's images: total = fitted (a usable fit made now) +
            skipped (a usable fit was stored) + failed (no usable fit; see the manifest).
        pairs: Counts over this shard's pairs: total = rendered + skipped (the flow file
            existed) + failed.
        fit_error_px: Reprojection error percentiles (p50, p90, p99, max, mean) over this shard's
            attempted fits; empty when there were none.
        failures: Count of each failure category.
        seconds: Wall time of the fit and render stages and in total.
        manifest: Path of the manifest.
        settings: Size, format, folders and config of the run.
        cpu_seconds: Process CPU time (every thread, e.g. the writer's) of the same stages:
            ``pairs / cpu_seconds["render"]`` is the render rate per core.
    """

    shard: int
    num_shards: int
    images: dict[str, int]
    pairs: dict[str, int]
    fit_error_px: dict[str, float]
    failures: dict[str, int]
    seconds: dict[str, float]
    manifest: str
    settings: dict[str, object]
    cpu_seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """Plain dict for JSON."""
        return asdict(self)


def format_summary(summary: SynthSummary) -> str:
    """A few human-readable lines."""
    img, prs, sec = summary.images, summary.pairs, summary.seconds
    lines = [
        f"synth-flow shard {summary.shard + 1}/{summary.num_shards}",
        f"  images  {img['total']:>7} total  {img['fitted']:>7} fitted  "
        f"{img['skipped']:>7} skipped  {img['failed']:>7} failed",
        f"  pairs   {prs['total']:>7} total  {prs['rendered']:>7} rendered  "
        f"{prs['skipped']:>7} skipped  {prs['failed']:>7} failed",
    ]
    if summary.fit_error_px:
        err = summary.fit_error_px
        lines.append(
            "  fit error (px)  "
            + "  ".join(f"{k} {err[k]:.2f}" for k in ("p50", "p90", "p99", "max", "mean"))
        )
    for category, count in sorted(summary.failures.items(), key=lambda kv: -kv[1]):
        lines.append(f"  failed: {count:>6}  {category}")
    lines.append(
        f"  time  fit {sec['fit']:.1f} s  render {sec['render']:.1f} s  total {sec['total']:.1f} s"
    )
    if summary.cpu_seconds:
        cpu = summary.cpu_seconds
        lines.append(
            f"  cpu   fit {cpu['fit']:.1f} s  render {cpu['render']:.1f} s  "
            f"total {cpu['total']:.1f} s"
        )
    lines.append(f"  manifest {summary.manifest}")
    return "\n".join(lines)


def percentiles(errors: list[float]) -> dict[str, float]:
    """p50, p90, p99, max and mean of ``errors``; empty for no values."""
    if not errors:
        return {}
    values = np.asarray(errors, dtype=np.float64)
    stats = {f"p{q}": float(np.percentile(values, q)) for q in (50, 90, 99)}
    return {**stats, "max": float(values.max()), "mean": float(values.mean())}


def default_flows_dir(files: DatasetFiles, out: str | os.PathLike[str]) -> Path:
    """``OUT/flows``, or, when ``OUT`` is the dataset folder, where the dataset reads flows.

    That is ``ROOT/flows`` in the PATN layout and the original ``ROOT/3d/hmr/corr`` in the DIAF
    layout (:class:`~posetransfer.data.datasets.PairDataset`'s defaults).
    """
    out = Path(out)
    if files.layout == "diaf" and out.resolve() == files.root.resolve():
        return out / "3d" / "hmr" / "corr"
    return out / "flows"

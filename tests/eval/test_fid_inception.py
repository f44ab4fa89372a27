"""pytorch-fid's FID Inception: key names, pooling, strict loading, preprocessing, selection."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from posetransfer.eval.fid_inception import (
    FIDInceptionE,
    FIDInceptionV3,
    PytorchFIDInception,
    load_pytorch_fid_state_dict,
)
from posetransfer.eval.inception import InceptionFeatures, fid_extractor

OFFICIAL = "pt_inception-2015-12-05-6726825d.pth"

#: A few keys of pytorch-fid's ``fid_inception_v3().state_dict()`` and their shapes.
EXPECTED_KEYS = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Conv2d_1a_3x3.bn.running_var": (32,),
    "Conv2d_4a_3x3.conv.weight": (192, 80, 3, 3),
    "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
    "Mixed_5d.branch5x5_2.conv.weight": (64, 48, 5, 5),
    "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
    "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7),
    "Mixed_6e.branch7x7dbl_5.bn.bias": (192,),
    "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
    "Mixed_7b.branch3x3_2b.conv.weight": (384, 384, 3, 1),
    "Mixed_7c.branch3x3dbl_3a.bn.running_mean": (384,),
    "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1),
}
NUM_UNITS = 94  # conv + BN units: conv.weight, bn.{weight,bias,running_mean,running_var}


@pytest.fixture(scope="module")
def model() -> FIDInceptionV3:
    torch.manual_seed(0)
    net = FIDInceptionV3().eval()
    with torch.no_grad():  # variance-preserving convs (default init fades the input out over
        for name, param in net.named_parameters():  # 47 layers) and non-trivial BN statistics
            if name.endswith("conv.weight"):
                nn.init.kaiming_normal_(param, nonlinearity="relu")
        for name, buf in net.named_buffers():
            if name.endswith("running_mean"):
                buf.uniform_(-0.1, 0.1)
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 2.0)
    return net


@pytest.fixture(scope="module")
def official_file(model: FIDInceptionV3, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``model``'s weights saved like pytorch-fid's file: with ``fc.*``, no num_batches_tracked."""
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    state["fc.weight"], state["fc.bias"] = torch.zeros(1008, 2048), torch.zeros(1008)
    path = tmp_path_factory.mktemp("fid_weights") / OFFICIAL
    torch.save(state, path)
    return path


def test_state_dict_names_match_pytorch_fid(model: FIDInceptionV3) -> None:
    state = model.state_dict()
    for key, shape in EXPECTED_KEYS.items():
        assert tuple(state[key].shape) == shape, key
    params = [k for k in state if not k.endswith("num_batches_tracked")]
    assert len(params) == 5 * NUM_UNITS
    assert sum(k.endswith("conv.weight") for k in params) == NUM_UNITS
    assert not [k for k in state if k.startswith(("fc.", "AuxLogits."))]
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(21.8e6, rel=0.01)


def test_features_shape_and_determinism(model: FIDInceptionV3) -> None:
    noise = torch.rand(1, 3, 299, 299, generator=torch.Generator().manual_seed(1)) * 2 - 1
    x = torch.cat([noise, torch.linspace(-1, 1, 299).expand(1, 3, 299, 299)])
    with torch.no_grad():
        a, b = model(x), model(x)
        single = model(x[1:])
    assert a.shape == (2, 2048) and torch.isfinite(a).all() and (a >= 0).all()
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(single[0], a[1], rtol=1e-5, atol=1e-5)
    assert (a[0] - a[1]).abs().max() > 1e-3


def test_pooling_rules() -> None:
    """Avg pools exclude padding (FIDInceptionE_1); Mixed_7c (FIDInceptionE_2) max-pools."""
    torch.manual_seed(0)
    avg, mx = FIDInceptionE(4, max_pool=False), FIDInceptionE(4, max_pool=True)
    mx.load_state_dict(avg.state_dict())
    pool_conv = avg.branch_pool.conv.weight
    with torch.no_grad():
        for block in (avg, mx):
            block.branch_pool.conv.weight.copy_(pool_conv.abs())  # ReLU keeps the pooled signal
        ones = torch.ones(1, 4, 5, 5)
        out = avg.eval()(ones)[:, -192:]  # branch_pool output: constant iff padding is excluded
        torch.testing.assert_close(out, out[..., 2:3, 2:3].expand_as(out))
        x = torch.rand(1, 4, 5, 5)
        assert not torch.allclose(avg(x)[:, -192:], mx.eval()(x)[:, -192:])
        torch.testing.assert_close(avg(x)[:, :-192], mx(x)[:, :-192])


def test_loads_official_layout_strictly(
    model: FIDInceptionV3, official_file: Path, tmp_path: Path
) -> None:
    extractor = PytorchFIDInception(official_file)
    assert extractor.path == official_file
    for key, value in model.state_dict().items():
        torch.testing.assert_close(extractor.model.state_dict()[key], value, rtol=0, atol=0)
    state = torch.load(official_file, weights_only=True)
    del state["Mixed_6c.branch1x1.bn.running_var"]
    torch.save(state, tmp_path / "missing.pth")
    with pytest.raises(ValueError, match=r"missing\.pth.*1 missing keys.*Mixed_6c\.branch1x1"):
        PytorchFIDInception(tmp_path / "missing.pth")
    state["Mixed_6c.branch1x1.bn.running_var"] = torch.ones(7)
    torch.save(state, tmp_path / "shape.pth")
    with pytest.raises(ValueError, match=r"1 with wrong shapes"):
        PytorchFIDInception(tmp_path / "shape.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a state dict")
    with pytest.raises(ValueError, match=r"junk\.pth: not a loadable"):
        load_pytorch_fid_state_dict(FIDInceptionV3(), tmp_path / "junk.pth")


class _Recorder(nn.Module):
    """Stands in for the network: remembers its input, returns per-image (min, max, mean)."""

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = nn.Module()
        self.Conv2d_1a_3x3.conv = nn.Conv2d(1, 1, 1)
        self.seen: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen = x
        return torch.stack([x.amin((1, 2, 3)), x.amax((1, 2, 3)), x.mean((1, 2, 3))], 1)


def test_preprocessing_is_pytorch_fid_convention() -> None:
    extractor = PytorchFIDInception()
    extractor.model = _Recorder()
    images = torch.stack([torch.full((3, 40, 30), v, dtype=torch.uint8) for v in (0, 51, 255)])
    out = extractor(images)
    assert extractor.model.seen is not None and extractor.model.seen.shape == (3, 3, 299, 299)
    expected = torch.tensor([-1.0, 2 * 51 / 255 - 1, 1.0], dtype=torch.float64)
    for column in range(3):  # a constant image stays constant through the bilinear resize
        torch.testing.assert_close(out[:, column], expected, rtol=0, atol=1e-6)
    ramp = torch.linspace(0, 255, 299).expand(1, 3, 299, 299)
    extractor(ramp)
    torch.testing.assert_close(extractor.model.seen, ramp / 127.5 - 1, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="RGB"):
        extractor(torch.zeros(1, 1, 8, 8))


def _torchscript(path: Path) -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 5, stride=8), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    torch.jit.script(net).save(str(path))


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_backend_selection(official_file: Path, no_weights: Path) -> None:
    _torchscript(no_weights / "default_1.pt")
    assert isinstance(fid_extractor(), InceptionFeatures)  # fallback: fid-helper's TorchScript
    assert isinstance(fid_extractor(no_weights / "default_1.pt"), InceptionFeatures)
    explicit = fid_extractor(official_file)
    assert isinstance(explicit, PytorchFIDInception) and explicit.path == official_file
    (no_weights / OFFICIAL).symlink_to(official_file)
    found = fid_extractor()
    assert isinstance(found, PytorchFIDInception) and found.path == no_weights / OFFICIAL
    with pytest.raises(FileNotFoundError, match=r"absent\.pth"):
        fid_extractor(no_weights / "absent.pth")

"""LPIPS in plain torch: heads from torchmetrics, torchvision-format backbone, the v0.1 formula."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from posetransfer.assets import ENV_WEIGHTS_DIR
from posetransfer.eval.lpips import (
    ALEX_CHANNELS,
    LPIPS,
    AlexNetFeatures,
    lpips_distance,
    torchmetrics_heads_path,
)


@pytest.fixture
def model() -> LPIPS:
    torch.manual_seed(0)
    return LPIPS(random_backbone=True)


def images(seed: int, n: int = 2, size: tuple[int, int] = (64, 48)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, *size, generator=g) * 2 - 1


def test_heads_are_read_from_torchmetrics(model: LPIPS) -> None:
    path = torchmetrics_heads_path("alex")
    assert path.parts[-4:] == ("functional", "image", "lpips_models", "alex.pth")
    assert model.heads_path == path
    state = torch.load(path, map_location="cpu", weights_only=True)
    for i, (head, channels) in enumerate(zip(model.heads, ALEX_CHANNELS, strict=True)):
        assert torch.equal(head, state[f"lin{i}.model.1.weight"].reshape(channels).float())
        assert (head >= 0).all() and head.abs().sum() > 0


def test_shapes_identity_symmetry(model: LPIPS) -> None:
    a, b = images(1), images(2)
    d_ab, d_ba = model(a, b), model(b, a)
    assert d_ab.shape == (2,)
    assert (d_ab > 0).all()
    torch.testing.assert_close(d_ab, d_ba)
    assert model(a, a).abs().max() < 1e-6
    # per-image: a batch equals its images scored one by one
    torch.testing.assert_close(torch.cat([model(a[:1], b[:1]), model(a[1:], b[1:])]), d_ab)


def test_feature_pyramid_shapes() -> None:
    feats = AlexNetFeatures()(torch.zeros(1, 3, 128, 64))
    assert [f.shape[1] for f in feats] == list(ALEX_CHANNELS)
    assert [tuple(f.shape[2:]) for f in feats] == [(31, 15), (15, 7), (7, 3), (7, 3), (7, 3)]


def test_distance_formula_hand_case() -> None:
    # Unit-normalised features of opposite sign differ by 2 -> squared 4, times the head.
    a = [torch.ones(1, 1, 2, 2), torch.full((1, 2, 1, 1), 3.0)]
    b = [-torch.ones(1, 1, 2, 2), torch.full((1, 2, 1, 1), 3.0)]
    heads = [torch.tensor([0.5]), torch.tensor([1.0, 1.0])]
    assert lpips_distance(a, b, heads).item() == pytest.approx(2.0)
    b[1] = torch.tensor([3.0, -3.0]).view(1, 2, 1, 1)  # second layer: (1,1)/r2 vs (1,-1)/r2
    assert lpips_distance(a, b, heads).item() == pytest.approx(2.0 + 2.0)


def test_input_range_is_enforced(model: LPIPS) -> None:
    a = images(1)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        model((a + 1) * 127.5, a)
    with pytest.raises(ValueError, match="same shape"):
        model(a, a[:, :, :-1])


def test_loads_a_torchvision_format_backbone(tmp_path: Path) -> None:
    torch.manual_seed(3)
    reference = AlexNetFeatures()
    state = dict(reference.state_dict())
    state["classifier.1.weight"] = torch.zeros(4096, 9216 // 64)  # ignored, like torchvision's
    torch.save(state, tmp_path / "alexnet.pth")
    model = LPIPS(tmp_path / "alexnet.pth")
    assert model.backbone_path == tmp_path / "alexnet.pth"
    for key, value in reference.state_dict().items():
        assert torch.equal(model.net.state_dict()[key], value)
    assert not any(p.requires_grad for p in model.parameters())

    del state["features.10.bias"]
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(ValueError, match=r"features\.10\.bias"):
        LPIPS(tmp_path / "broken.pth")


def test_missing_backbone_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_WEIGHTS_DIR, str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(FileNotFoundError, match=r"alexnet-owt-7be5be79\.pth"):
        LPIPS()
    with pytest.raises(ValueError, match="not both"):
        LPIPS(tmp_path / "x.pth", random_backbone=True)

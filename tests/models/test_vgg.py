"""Tests for posetransfer.models.vgg: torchvision key layout, taps, loading, missing file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from posetransfer.models.vgg import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PERCEPTUAL_LAYERS,
    VGG19_LAYERS,
    VGG19Features,
    load_vgg19,
)

#: torchvision ``vgg19().features``: convolution indices and (out, in) channels, configuration E.
CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
CONV_CHANNELS = (
    (64, 3), (64, 64), (128, 64), (128, 128), (256, 128), (256, 256), (256, 256), (256, 256),
    (512, 256), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512),
)  # fmt: skip


def _torchvision_state() -> dict[str, torch.Tensor]:
    """A fake torchvision-format VGG19 file: random tensors of the right shapes."""
    gen = torch.Generator().manual_seed(0)
    state = {}
    for index, (c_out, c_in) in zip(CONV_INDICES, CONV_CHANNELS, strict=True):
        state[f"features.{index}.weight"] = torch.randn(c_out, c_in, 3, 3, generator=gen) * 0.05
        state[f"features.{index}.bias"] = torch.randn(c_out, generator=gen) * 0.05
    for index, (c_out, c_in) in zip((0, 3, 6), ((8, 16), (8, 8), (10, 8)), strict=True):
        state[f"classifier.{index}.weight"] = torch.randn(c_out, c_in, generator=gen)  # any shape
        state[f"classifier.{index}.bias"] = torch.randn(c_out, generator=gen)
    return state


@pytest.fixture(scope="module")
def tv_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """The fake file saved once under its upstream name, and its contents."""
    state = _torchvision_state()
    path = tmp_path_factory.mktemp("tv") / "vgg19-dcbb9e9d.pth"
    torch.save(state, path)
    return path, state


@pytest.fixture
def no_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Empty weights folder and torch cache, so that no real file can be found."""
    monkeypatch.setenv("POSETRANSFER_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    (tmp_path / "weights").mkdir()
    return tmp_path / "weights"


def test_state_dict_keys_and_shapes_match_torchvision() -> None:
    state = VGG19Features().state_dict()
    expected = [f"features.{i}.{kind}" for i in CONV_INDICES for kind in ("weight", "bias")]
    assert list(state) == expected
    for index, (c_out, c_in) in zip(CONV_INDICES, CONV_CHANNELS, strict=True):
        assert state[f"features.{index}.weight"].shape == (c_out, c_in, 3, 3)


def test_tap_indices_and_shapes() -> None:
    assert [VGG19_LAYERS[k] for k in PERCEPTUAL_LAYERS] == [1, 6, 11, 20, 29]
    assert VGG19_LAYERS["relu5_4"] == 35 and len(VGG19_LAYERS) == 16
    net = VGG19Features()
    calls = []
    net.features[30].register_forward_hook(lambda *args: calls.append(1))
    feats = net(torch.zeros(1, 3, 32, 32))
    assert list(feats) == list(PERCEPTUAL_LAYERS)
    assert [tuple(f.shape[1:]) for f in feats.values()] == [
        (64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4), (512, 2, 2)
    ]  # fmt: skip
    assert not calls  # the forward stops at relu5_1
    with pytest.raises(ValueError, match="unknown VGG19 layer"):
        net(torch.zeros(1, 3, 32, 32), layers=("relu6_1",))
    with pytest.raises(ValueError, match=r"expects \(B, 3, H, W\)"):
        net(torch.zeros(1, 1, 32, 32))


def test_input_is_mapped_from_minus_one_one_to_imagenet_statistics() -> None:
    net = VGG19Features()
    seen = {}

    def keep_input(module: torch.nn.Module, args: tuple) -> None:
        seen["x"] = args[0].clone()

    net.features[0].register_forward_pre_hook(keep_input)
    x = torch.rand(1, 3, 4, 4) * 2 - 1
    net(x, layers=("relu1_1",))
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(seen["x"], ((x + 1) / 2 - mean) / std)


def test_torchvision_format_file_loads_strictly(tv_file: tuple) -> None:
    path, state = tv_file
    net = load_vgg19(path)
    for key, value in net.state_dict().items():
        assert torch.equal(value, state[key])
    assert not net.training and not any(p.requires_grad for p in net.parameters())


def test_file_found_through_the_environment(
    tv_file: tuple, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path, state = tv_file
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("POSETRANSFER_WEIGHTS_DIR", str(path.parent))
    assert torch.equal(load_vgg19().features[0].bias, state["features.0.bias"])
    monkeypatch.delenv("POSETRANSFER_WEIGHTS_DIR")
    monkeypatch.setenv("TORCH_HOME", str(path.parent.parent))
    (path.parent.parent / "hub" / "checkpoints").mkdir(parents=True, exist_ok=True)
    cached = path.parent.parent / "hub" / "checkpoints" / path.name
    cached.unlink(missing_ok=True)
    cached.symlink_to(path)
    assert torch.equal(load_vgg19().features[34].weight, state["features.34.weight"])


def test_missing_file_names_the_file_and_where_to_put_it(no_weights: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"vgg19-dcbb9e9d\.pth") as err:
        load_vgg19()
    assert "POSETRANSFER_WEIGHTS_DIR" in str(err.value) and "torch_home" in str(err.value)
    with pytest.raises(FileNotFoundError, match=r"nowhere\.pth does not exist"):
        load_vgg19(no_weights / "nowhere.pth")


def test_wrong_file_contents_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "broken.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, path)
    with pytest.raises(
        ValueError, match=r"broken\.pth: not a torchvision VGG19 .*features\.0\.bias"
    ):
        load_vgg19(path)
    torch.save({"conv.weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match=r"broken\.pth: not a torchvision VGG19 state dict"):
        load_vgg19(path)


def test_random_weights_only_on_request(no_weights: Path) -> None:
    torch.manual_seed(0)
    net = load_vgg19(random_weights=True)
    assert isinstance(net, VGG19Features) and not net.training
    assert not any(p.requires_grad for p in net.parameters())

"""posetransfer.infer.sources: inputs grouped into per-person sources (no file is read)."""

from __future__ import annotations

from pathlib import Path

import pytest

from posetransfer.infer.sources import check_identity, collect_sources


def _touch(*paths: Path) -> None:
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def test_default_identities_from_file_and_folder_names(tmp_path: Path) -> None:
    walk, photos = tmp_path / "walk clip.mp4", tmp_path / "Ann_Smith"
    _touch(walk, photos / "b.jpg", photos / "a.PNG", photos / "notes.txt", photos / "run.mov")
    sources = collect_sources([str(walk), str(photos)])
    assert [(s.key, s.identity, s.kind) for s in sources] == [
        ("walk-clip", "walk-clip", "video"),
        ("Ann-Smith_run", "Ann-Smith", "video"),  # a folder's videos take its identity
        ("Ann-Smith_Ann_Smith", "Ann-Smith", "photos"),
    ]
    assert sources[0].frame_name(120) == "walk-clip_f000120.png"
    assert [p.name for p in sources[2].photos] == ["a.PNG", "b.jpg"]
    assert sources[2].frame_name(0) == "Ann-Smith_Ann_Smith_a.png"


def test_given_identities_one_for_all_or_one_each(tmp_path: Path) -> None:
    cams = [tmp_path / f"cam0{i}.mp4" for i in (1, 2)]
    _touch(*cams)
    same = collect_sources([str(c) for c in cams], ["single"])
    assert [s.key for s in same] == ["single_cam01", "single_cam02"]
    assert {s.identity for s in same} == {"single"}
    each = collect_sources([str(c) for c in cams], ["x", "y"])
    assert [s.identity for s in each] == ["x", "y"]
    with pytest.raises(ValueError, match="2 inputs"):
        collect_sources([str(c) for c in cams], ["x", "y", "z"])


def test_photos_given_one_by_one_group_by_folder(tmp_path: Path) -> None:
    photos = [tmp_path / "bob" / n for n in ("2.jpg", "1.jpg")]
    _touch(*photos)
    (source,) = collect_sources([str(p) for p in photos])
    assert source.identity == "bob" and source.kind == "photos"
    assert [p.name for p in source.photos] == ["1.jpg", "2.jpg"]
    (folder,) = collect_sources([str(tmp_path / "bob"), str(photos[0])])  # no duplicate
    assert folder.photos == source.photos


def test_clashes_and_bad_inputs_are_refused(tmp_path: Path) -> None:
    a, b = tmp_path / "one" / "cam01.mp4", tmp_path / "two" / "cam01.mp4"
    _touch(a, b, tmp_path / "p" / "x.jpg", tmp_path / "p" / "x.png", tmp_path / "clip.txt")
    with pytest.raises(ValueError, match="--identity"):
        collect_sources([str(a), str(b)])
    assert len(collect_sources([str(a), str(b)], ["u", "v"])) == 2
    with pytest.raises(ValueError, match="given twice"):
        collect_sources([str(a), str(a)])
    with pytest.raises(ValueError, match="rename one"):
        collect_sources([str(tmp_path / "p")])
    with pytest.raises(FileNotFoundError, match=r"nope\.mp4"):
        collect_sources([str(tmp_path / "nope.mp4")])
    with pytest.raises(ValueError, match=r"clip\.txt: not a photo"):
        collect_sources([str(tmp_path / "clip.txt")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no photo or video"):
        collect_sources([str(tmp_path / "empty")])
    with pytest.raises(ValueError, match="no input"):
        collect_sources([])


@pytest.mark.parametrize("name", ["ann_b", "", "-x", "a b", "a:b", "é"])
def test_invalid_identities(name: str) -> None:
    with pytest.raises(ValueError, match="identity"):
        check_identity(name)


def test_valid_identity() -> None:
    assert check_identity("Ann-2.b") == "Ann-2.b"

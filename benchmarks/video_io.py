"""Video I/O speed: ``VideoWriter`` encode and ``iter_frames`` decode, in ms per frame.

Frames are synthetic (a smooth moving gradient, a moving textured square, mild noise: about as
hard to compress as a rendered person on a plain background). Each size encodes ``--frames``
frames to H.264 (crf 18, preset medium, the writer's defaults) and decodes them back to RGB. The
baseline, measured in the same run, is writing and reading the same frames as a folder of PNG
files with Pillow (what a frame-folder pipeline would do). When ``imageio-ffmpeg`` is importable
its pipe to the bundled ``ffmpeg`` binary is timed too, with the same codec settings.

Usage:
    python benchmarks/video_io.py                      # 256x176 and 512x352, 100 frames
    python benchmarks/video_io.py --video demo.mp4     # also decode a real video
    python benchmarks/video_io.py --no-record
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from common import markdown_table, record, time_it  # type: ignore[import-not-found]
from posetransfer.infer.video import VideoWriter, iter_frames, video_info

SIZES = ((176, 256), (352, 512))


def make_frames(count: int, height: int, width: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` synthetic ``(H, W, 3)`` uint8 frames with motion and some texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    texture = rng.integers(0, 256, (height // 4, width // 8, 3), dtype=np.uint8)
    side = height // 4
    frames = []
    for i in range(count):
        frame = np.stack(
            [(xx + 2 * i) % 256, (yy * 0.5 + i) % 256, np.full_like(xx, 90 + (i % 40))], -1
        )
        frame += rng.normal(0, 2.0, frame.shape).astype(np.float32)
        frame = np.clip(frame, 0, 255).astype(np.uint8)
        x0 = (3 * i) % (width - 2 * side)
        block = np.repeat(np.repeat(texture, 2, 0), 2, 1)[:side, :side]
        frame[side : 2 * side, x0 : x0 + side] = block
        frames.append(frame)
    return frames


def encode_pyav(path: Path, frames: list[np.ndarray]) -> None:
    with VideoWriter(path, fps=25) as writer:
        for frame in frames:
            writer.write(frame)


def decode_pyav(path: Path) -> int:
    return sum(1 for _ in iter_frames(path))


def encode_png(folder: Path, frames: list[np.ndarray]) -> None:
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:05d}.png")


def decode_png(folder: Path) -> int:
    count = 0
    for file in sorted(folder.glob("*.png")):
        np.asarray(Image.open(file).convert("RGB"))
        count += 1
    return count


def imageio_ffmpeg_pair():
    """(encode, decode) with imageio-ffmpeg, or None when it is not installed."""
    try:
        import imageio_ffmpeg
    except ImportError:
        return None

    def encode(path: Path, frames: list[np.ndarray]) -> None:
        height, width = frames[0].shape[:2]
        writer = imageio_ffmpeg.write_frames(
            str(path), (width, height), fps=25, codec="libx264", pix_fmt_out="yuv420p",
            quality=None, macro_block_size=1, output_params=["-crf", "18", "-preset", "medium"],
        )  # fmt: skip
        writer.send(None)
        for frame in frames:
            writer.send(frame)
        writer.close()

    def decode(path: Path) -> int:
        reader = imageio_ffmpeg.read_frames(str(path))
        next(reader)  # metadata
        return sum(1 for _ in reader)

    return imageio_ffmpeg.__version__, encode, decode


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads) and its finished children."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(fn, repeat: int) -> tuple[float, float]:
    """``(median wall s, mean CPU s)`` of ``fn()``; CPU time does not depend on the load."""
    start = cpu_seconds()
    wall = time_it(fn, repeat=repeat, warmup=1)
    return wall, (cpu_seconds() - start) / (repeat + 1)


def measure(encode, decode, target: Path, frames: list[np.ndarray], repeat: int) -> list[float]:
    """Encode and decode wall and CPU ms/frame, and the bytes written, of one backend."""
    enc, enc_cpu = timed(partial(encode, target, frames), repeat)
    count = decode(target)
    if count != len(frames):
        raise RuntimeError(f"{target}: decoded {count} frames, wrote {len(frames)}")
    dec, dec_cpu = timed(partial(decode, target), repeat)
    files = target.iterdir() if target.is_dir() else [target]
    size = sum(f.stat().st_size for f in files)
    return [1e3 * t / len(frames) for t in (enc, enc_cpu, dec, dec_cpu)] + [size]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--video", type=Path, help="also decode this real video")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    import av

    backends = [(f"PyAV {av.__version__}", encode_pyav, decode_pyav, ".mp4")]
    backends.append(("PNG folder (baseline)", encode_png, decode_png, ""))
    other = imageio_ffmpeg_pair()
    if other is not None:
        backends.append((f"imageio-ffmpeg {other[0]}", other[1], other[2], ".mp4"))
    load_before = os.getloadavg()[0]
    rows = []
    work = Path(tempfile.mkdtemp(prefix="video_io_"))
    try:
        for height, width in SIZES:
            frames = make_frames(args.frames, height, width)
            results = {}
            for name, encode, decode, suffix in backends:
                target = work / f"{len(results)}_{width}{suffix}"
                if not suffix:
                    target.mkdir()
                results[name] = measure(encode, decode, target, frames, args.repeat)
            png = results["PNG folder (baseline)"]
            for name, (enc, enc_cpu, dec, dec_cpu, size) in results.items():
                rows.append(
                    [
                        name,
                        f"{width}x{height}",
                        enc,
                        enc_cpu,
                        dec,
                        dec_cpu,
                        size / len(frames) / 1024,
                        png[1] / enc_cpu,
                        png[3] / dec_cpu,
                    ]
                )
        if args.video is not None:
            info = video_info(args.video)
            dec, dec_cpu = timed(partial(decode_pyav, args.video), max(1, args.repeat // 2))
            name = f"PyAV, {args.video.name} ({info.codec})"
            size = f"{info.width}x{info.height}"
            per_frame = [1e3 * t / info.frame_count for t in (dec, dec_cpu)]
            rows.append([name, size, "", "", *per_frame, "", "", ""])
    finally:
        shutil.rmtree(work, ignore_errors=True)

    header = [
        "backend",
        "size",
        "encode ms/frame",
        "encode CPU ms/frame",
        "decode ms/frame",
        "decode CPU ms/frame",
        "KiB/frame",
        "PNG/this encode CPU",
        "PNG/this decode CPU",
    ]
    body = markdown_table(header, rows)
    body += (
        f"\n\n{args.frames} synthetic frames per size, median of {args.repeat} runs; H.264 crf 18 "
        "preset medium yuv420p; decode = frames to (H, W, 3) uint8 RGB. ms/frame is the median "
        "wall time; CPU ms/frame counts every thread and child process (ffmpeg for "
        "imageio-ffmpeg), so it holds on a loaded machine; the ratios to the PNG folder (same "
        "frames, same run) are the comparable figures. Load average (1 min) "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on a shared machine."
    )
    if other is None:
        body += " imageio-ffmpeg was not installed for this run."
    if args.no_record:
        print(body)
    else:
        record("Video I/O (PyAV H.264 vs PNG frames)", body)


if __name__ == "__main__":
    main()

"""Tests of the frame sources: image folders, videos, donkeycar tubs and open_source."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from vae_ood_monitor.core.errors import ConfigError, DataError
from vae_ood_monitor.data.folder import FolderWriter
from vae_ood_monitor.data.sources import (FolderSource, FrameSource, iter_frames, open_source,
                                          TubSource, VideoSource)

SHARED = Path(__file__).resolve().parents[3] / 'shared' / 'data' / 'donkeycar_mat_track'


def solid(rgb: tuple[int, int, int], size: tuple[int, int] = (12, 16)) -> np.ndarray:
    """Return an RGB uint8 image of one colour."""
    image = np.zeros((*size, 3), np.uint8)
    image[:] = rgb
    return image


def save_rgb(path: Path, rgb: tuple[int, int, int]) -> None:
    """Write a solid RGB image with cv2 (which expects BGR)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(solid(rgb), cv2.COLOR_RGB2BGR))


def make_tub(root: Path, n: int = 6, deleted: tuple[int, ...] = (1, 4), max_len: int = 3,
             manifest: bool = True) -> Path:
    """Build a donkeycar tub v2 with n records split over catalogs of max_len lines."""
    (root / 'images').mkdir(parents=True)
    paths = []
    for start in range(0, n, max_len):
        name = f'catalog_{start // max_len}.catalog'
        paths.append(name)
        lines = []
        for i in range(start, min(n, start + max_len)):
            image = f'{i}_cam_image_array_.jpg'
            save_rgb(root / 'images' / image, (i * 40, 0, 0))
            lines.append(json.dumps({'_index': i, '_session_id': 's',
                                     '_timestamp_ms': 1000 + 50 * i, 'cam/image_array': image,
                                     'user/angle': i / 10, 'user/throttle': 0.5,
                                     'user/mode': 'user'}))
        (root / name).write_text('\n'.join(lines) + '\n')
        (root / f'{name}_manifest').write_text(json.dumps({'path': f'{name}_manifest',
                                                           'start_index': start}))
    if manifest:
        header = [['cam/image_array', 'user/angle', 'user/throttle', 'user/mode'],
                  ['image_array', 'float', 'float', 'str'], {}, {'created_at': 1.0},
                  {'paths': paths, 'current_index': n, 'max_len': max_len,
                   'deleted_indexes': list(deleted)}]
        (root / 'manifest.json').write_text('\n'.join(json.dumps(x) for x in header) + '\n')
    return root


def write_video(path: Path, colours: list[tuple[int, int, int]], fps: float = 10.0) -> Path:
    """Write an MJPG video whose frames are the given solid RGB colours."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), fps, (32, 24))
    assert writer.isOpened()
    for rgb in colours:
        writer.write(cv2.cvtColor(solid(rgb, (24, 32)), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


# Folders ----------------------------------------------------------------------------------


def test_folder_natural_sort_rgb_and_rate_stamps(tmp_path: Path) -> None:
    for i in (10, 2, 1):
        save_rgb(tmp_path / f'frame_{i}.png', (255, 0, 0))
    (tmp_path / 'notes.txt').write_text('x')
    save_rgb(tmp_path / '.hidden.png', (0, 0, 0))
    save_rgb(tmp_path / 'sub' / 'frame_0.png', (0, 0, 0))
    source = FolderSource(tmp_path, rate_hz=10)
    frames = list(source)
    assert isinstance(source, FrameSource) and len(source) == 3
    assert [f.meta['file'] for f in frames] == ['frame_1.png', 'frame_2.png', 'frame_10.png']
    assert [f.index for f in frames] == [0, 1, 2]
    assert [f.stamp_ns for f in frames] == [0, 100_000_000, 200_000_000]
    image = frames[0].image
    assert image.dtype == np.uint8 and image.shape == (12, 16, 3) and image.flags.c_contiguous
    assert tuple(image[0, 0]) == (255, 0, 0) and frames[0].label is None


def test_folder_extensions_case_insensitive_and_recursive(tmp_path: Path) -> None:
    save_rgb(tmp_path / 'a.JPG', (0, 255, 0))
    save_rgb(tmp_path / 'b.Png', (0, 255, 0))
    save_rgb(tmp_path / 'c.bmp', (0, 255, 0))
    assert [f.meta['file'] for f in FolderSource(tmp_path)] == ['a.JPG', 'b.Png', 'c.bmp']
    nested = tmp_path / 'nested'
    save_rgb(nested / 'run_10' / 'x.png', (0, 0, 9))
    save_rgb(nested / 'run_9' / 'x.png', (0, 0, 9))
    with pytest.raises(DataError, match='contains no images.*recursive=True'):
        FolderSource(nested)
    assert [f.meta['file'] for f in FolderSource(nested, recursive=True)] == [
        'run_9/x.png', 'run_10/x.png']


def test_folder_labels_round_trip(tmp_path: Path) -> None:
    out = tmp_path / 'out'
    with FolderWriter(out) as writer:
        writer.write(solid((1, 2, 3)), label=0, stamp_ns=5, shift='none', sequence=0)
        writer.write(solid((200, 100, 50)), label=1, stamp_ns=9, shift='rain', severity=0.7)
        writer.write(solid((9, 9, 9)))
    frames = list(FolderSource(out, rate_hz=2))
    assert [f.label for f in frames] == [0, 1, None]
    assert [f.stamp_ns for f in frames] == [5, 9, 1_000_000_000]
    assert frames[1].meta == {'file': '000001.png', 'shift': 'rain', 'severity': '0.7'}
    assert frames[0].meta == {'file': '000000.png', 'shift': 'none', 'sequence': '0'}
    assert tuple(frames[1].image[0, 0]) == (200, 100, 50)


def test_folder_labels_row_order_wins(tmp_path: Path) -> None:
    for name in ('a.png', 'b.png', 'c.png'):
        save_rgb(tmp_path / name, (0, 0, 0))
    (tmp_path / 'labels.csv').write_text('file,label\nc.png,1\na.png,\n')
    assert [f.meta['file'] for f in FolderSource(tmp_path)] == ['c.png', 'a.png']


@pytest.mark.parametrize(('text', 'match'), [
    ('name,label\na.png,1\n', r'labels.csv line 1: missing column .file'),
    ('file,label\na.png,1\nmissing.png,0\n', r"labels.csv line 3: listed file 'missing.png'"),
    ('file,label\na.png,2\n', r"labels.csv line 2: label '2' is not 0, 1 or empty"),
    ('file,label,stamp_ns\na.png,1,-4\n', r'line 2: stamp_ns'),
    ('file,label\na.png,1,extra\n', r'line 2: 3 fields'),
])
def test_folder_bad_labels(tmp_path: Path, text: str, match: str) -> None:
    save_rgb(tmp_path / 'a.png', (0, 0, 0))
    (tmp_path / 'labels.csv').write_text(text)
    with pytest.raises(DataError, match=match):
        FolderSource(tmp_path)


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="'.*nope' does not exist"):
        FolderSource(tmp_path / 'nope')
    (tmp_path / 'file.txt').write_text('x')
    with pytest.raises(DataError, match='is not a directory'):
        FolderSource(tmp_path / 'file.txt')
    with pytest.raises(DataError, match=r'contains no images \(looked for .bmp, .jpeg'):
        FolderSource(tmp_path)
    (tmp_path / 'labels.csv').write_text('file,label\n')
    with pytest.raises(DataError, match=r'labels.csv lists no images'):
        FolderSource(tmp_path)
    with pytest.raises(ConfigError, match='rate_hz'):
        FolderSource(tmp_path, rate_hz=0)


def test_folder_unreadable_images(tmp_path: Path) -> None:
    save_rgb(tmp_path / '1.png', (0, 0, 0))
    (tmp_path / '2.png').write_bytes(b'not a png')
    (tmp_path / '3.jpg').write_bytes(b'')
    save_rgb(tmp_path / '4.png', (0, 0, 0))
    source = FolderSource(tmp_path)
    with pytest.raises(DataError, match=r"cannot read image '.*2\.png'.*skip_unreadable=True"):
        list(source)
    source = FolderSource(tmp_path, skip_unreadable=True)
    frames = list(source)
    assert [f.meta['file'] for f in frames] == ['1.png', '4.png']
    assert [f.index for f in frames] == [0, 1]
    assert [p.name for p in source.skipped] == ['2.png', '3.jpg']


# Videos -----------------------------------------------------------------------------------

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)] * 2 + [(0, 0, 0)] * 2


def test_video_frames_colours_and_stamps(tmp_path: Path) -> None:
    source = VideoSource(write_video(tmp_path / 'clip.avi', COLOURS))
    frames = list(source)
    assert len(source) == len(frames) == len(COLOURS)
    assert [f.index for f in frames] == list(range(len(COLOURS)))
    for frame, rgb in zip(frames, COLOURS):
        assert frame.image.shape == (24, 32, 3) and frame.image.flags.c_contiguous
        assert np.abs(frame.image.astype(int) - rgb).max() < 40
    stamps = [f.stamp_ns for f in frames]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    assert stamps[3] == pytest.approx(300_000_000, abs=2_000_000)


def test_video_step(tmp_path: Path) -> None:
    source = VideoSource(write_video(tmp_path / 'clip.avi', COLOURS), step=3)
    frames = list(source)
    assert len(source) == len(frames) == 4
    assert [f.meta['frame'] for f in frames] == ['0', '3', '6', '9']
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert np.abs(frames[1].image.astype(int) - COLOURS[3]).max() < 40


def test_video_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match='does not exist'):
        VideoSource(tmp_path / 'missing.mp4')
    (tmp_path / 'fake.mp4').write_text('this is not a video')
    with pytest.raises(DataError, match=r"cannot open video '.*fake\.mp4'"):
        VideoSource(tmp_path / 'fake.mp4')
    with pytest.raises(ConfigError, match='step'):
        VideoSource(tmp_path / 'fake.mp4', step=0)


# Tubs -------------------------------------------------------------------------------------


def test_tub_skips_deleted_and_keeps_order(tmp_path: Path) -> None:
    source = TubSource(make_tub(tmp_path / 'tub'))
    frames = list(source)
    assert len(source) == len(frames) == 4
    assert [f.meta['tub_index'] for f in frames] == ['0', '2', '3', '5']
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert [f.stamp_ns for f in frames] == [(1000 + 50 * i) * 1_000_000 for i in (0, 2, 3, 5)]
    assert frames[1].meta['user/angle'] == '0.2' and frames[1].meta['user/throttle'] == '0.5'
    assert frames[1].meta['file'] == 'images/2_cam_image_array_.jpg'
    assert np.abs(frames[1].image.astype(int) - (80, 0, 0)).max() < 10
    assert [f.meta['tub_index'] for f in TubSource(tmp_path / 'tub', skip_first=3)] == ['5']


def test_tub_without_manifest_reads_catalogs(tmp_path: Path) -> None:
    source = TubSource(make_tub(tmp_path / 'tub', n=5, max_len=2, manifest=False))
    assert [f.meta['tub_index'] for f in source] == ['0', '1', '2', '3', '4']


def test_tub_errors(tmp_path: Path) -> None:
    tub = make_tub(tmp_path / 'tub')
    lines = (tub / 'catalog_1.catalog').read_text().splitlines()
    (tub / 'catalog_1.catalog').write_text('\n'.join([lines[0], '{"_index": 4,', lines[2]]))
    with pytest.raises(DataError, match=r'catalog_1\.catalog line 2: invalid JSON'):
        TubSource(tub)
    tub = make_tub(tmp_path / 'tub2')
    (tub / 'images' / '3_cam_image_array_.jpg').unlink()
    with pytest.raises(DataError, match=r"image '.*3_cam_image_array_\.jpg' named in .*line 1"):
        TubSource(tub)
    tub = make_tub(tmp_path / 'tub3')
    (tub / 'catalog_1.catalog').unlink()
    with pytest.raises(DataError, match=r"catalog '.*catalog_1\.catalog' listed in"):
        TubSource(tub)
    (tmp_path / 'empty').mkdir()
    with pytest.raises(DataError, match='neither manifest.json nor catalog'):
        TubSource(tmp_path / 'empty')
    tub = make_tub(tmp_path / 'tub4', n=2, deleted=(0, 1))
    with pytest.raises(DataError, match='no frames left'):
        TubSource(tub)
    tub = make_tub(tmp_path / 'tub5', n=2, deleted=())
    (tub / 'images' / '0_cam_image_array_.jpg').write_bytes(b'garbage')
    with pytest.raises(DataError, match=r"image '.*0_cam.*catalog_0\.catalog line 1.*skip_unr"):
        list(TubSource(tub))
    source = TubSource(tub, skip_unreadable=True)
    assert [f.meta['tub_index'] for f in source] == ['1']
    assert [p.name for p in source.skipped] == ['0_cam_image_array_.jpg']


@pytest.mark.skipif(not SHARED.is_dir(), reason='shared donkeycar data absent')
def test_real_tub() -> None:
    tub = SHARED / 'tub_5_24-04-23'
    manifest = (tub / 'manifest.json').read_text().splitlines()
    deleted = set(json.loads(manifest[4])['deleted_indexes'])
    listed = sum(len(p.read_text().splitlines()) for p in tub.glob('catalog_*.catalog'))
    source = open_source(tub)
    assert isinstance(source, TubSource) and len(source) == listed - len(deleted)
    stamps = []
    for frame in source:
        assert frame.image.shape == (120, 160, 3) and frame.image.dtype == np.uint8
        stamps.append(frame.stamp_ns)
    assert len(stamps) == len(source) and stamps == sorted(stamps)


# open_source / iter_frames ----------------------------------------------------------------


def test_open_source_detects_kinds(tmp_path: Path) -> None:
    save_rgb(tmp_path / 'imgs' / 'a.png', (0, 0, 0))
    assert isinstance(open_source(tmp_path / 'imgs', rate_hz=5, step=None), FolderSource)
    assert isinstance(open_source(str(make_tub(tmp_path / 'tub'))), TubSource)
    video = write_video(tmp_path / 'clip.avi', COLOURS[:3])
    source = open_source(video, step=2)
    assert isinstance(source, VideoSource) and source.name == str(video)
    renamed = video.rename(tmp_path / 'clip.bin')
    assert isinstance(open_source(renamed), VideoSource)


def test_open_source_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="'.*missing' does not exist; expected an image folder"):
        open_source(tmp_path / 'missing')
    (tmp_path / 'notes.txt').write_text('hello')
    with pytest.raises(DataError, match=r"'.*notes\.txt' is not a source: expected .*tub"):
        open_source(tmp_path / 'notes.txt')
    save_rgb(tmp_path / 'imgs' / 'a.png', (0, 0, 0))
    with pytest.raises(DataError, match='single image; point at the folder'):
        open_source(tmp_path / 'imgs' / 'a.png')
    with pytest.raises(ConfigError, match=r'skip_first do not apply to FolderSource'):
        open_source(tmp_path / 'imgs', skip_first=2)


def test_iter_frames_chains_without_reindexing(tmp_path: Path) -> None:
    for folder in ('a', 'b'):
        for i in range(3):
            save_rgb(tmp_path / folder / f'{i}.png', (0, 0, 0))
    sources = [FolderSource(tmp_path / 'a'), FolderSource(tmp_path / 'b')]
    assert [f.index for f in iter_frames(sources)] == [0, 1, 2, 0, 1, 2]
    assert [f.index for f in iter_frames(sources, limit=4)] == [0, 1, 2, 0]
    with pytest.raises(ConfigError, match='limit'):
        iter_frames(sources, limit=-1)

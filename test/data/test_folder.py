"""Tests of the image-folder format: FolderWriter, write_frames, read_labels, natural_key."""

from __future__ import annotations

import csv
from pathlib import Path

from hypothesis import given, strategies as st
import numpy as np
import pytest

from vae_ood_monitor.core.errors import ConfigError, DataError
from vae_ood_monitor.data.folder import (FolderWriter, list_images, natural_key, read_labels,
                                         write_frames)
from vae_ood_monitor.data.sources import FolderSource, Frame


def solid(value: int, size: tuple[int, int] = (8, 10)) -> np.ndarray:
    """Return an RGB uint8 image whose channels are value, value + 1, value + 2."""
    image = np.zeros((*size, 3), np.uint8)
    image[:] = (value, value + 1, value + 2)
    return image


def leftovers(parent: Path) -> list[str]:
    """Names of partial or backup directories left next to the output."""
    return sorted(p.name for p in parent.iterdir() if '.partial-' in p.name or '.old-' in p.name)


def read_csv(path: Path) -> list[dict[str, str]]:
    """Read a CSV file into dictionaries."""
    with open(path, newline='') as stream:
        return list(csv.DictReader(stream))


def test_writer_files_and_labels_csv(tmp_path: Path) -> None:
    out = tmp_path / 'deep' / 'out'
    with FolderWriter(out) as writer:
        assert writer.write(solid(10), label=1, stamp_ns=7, shift='rain', severity=0.5) == (
            '000000.png')
        assert writer.write(solid(20), sequence=3) == '000001.png'
    assert sorted(p.name for p in out.iterdir()) == ['000000.png', '000001.png', 'labels.csv']
    with open(out / 'labels.csv', newline='') as stream:
        assert next(csv.reader(stream)) == ['file', 'label', 'stamp_ns', 'sequence', 'severity',
                                            'shift']
    assert read_csv(out / 'labels.csv') == [
        {'file': '000000.png', 'label': '1', 'stamp_ns': '7', 'sequence': '', 'severity': '0.5',
         'shift': 'rain'},
        {'file': '000001.png', 'label': '', 'stamp_ns': '', 'sequence': '3', 'severity': '',
         'shift': ''}]
    assert leftovers(out.parent) == []


def test_writer_is_atomic_on_error(tmp_path: Path) -> None:
    out = tmp_path / 'out'
    with pytest.raises(RuntimeError, match='boom'):
        with FolderWriter(out) as writer:
            writer.write(solid(1))
            assert leftovers(tmp_path) != [] and not out.exists()
            raise RuntimeError('boom')
    assert not out.exists() and leftovers(tmp_path) == []


def test_writer_refuses_existing_output_and_force_replaces(tmp_path: Path) -> None:
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'old.txt').write_text('keep me')
    with pytest.raises(DataError, match=r"output '.*out' exists; pass force=True / --force"):
        FolderWriter(out)
    with pytest.raises(ValueError):
        with FolderWriter(out, force=True) as writer:
            writer.write(solid(1))
            raise ValueError('interrupted')
    assert (out / 'old.txt').read_text() == 'keep me' and leftovers(tmp_path) == []
    with FolderWriter(out, force=True) as writer:
        writer.write(solid(1))
        assert (out / 'old.txt').exists()
    assert sorted(p.name for p in out.iterdir()) == ['000000.png', 'labels.csv']
    assert leftovers(tmp_path) == []


def test_writer_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="image_format 'gif'"):
        FolderWriter(tmp_path / 'x', image_format='gif')
    with FolderWriter(tmp_path / 'out') as writer:
        with pytest.raises(DataError, match=r'expected an RGB uint8 \(h, w, 3\) array'):
            writer.write(np.zeros((4, 4), np.uint8))
        with pytest.raises(DataError, match=r'expected an RGB uint8'):
            writer.write(np.zeros((4, 4, 3), np.float32))
        with pytest.raises(DataError, match='label 2 is not 0, 1 or None'):
            writer.write(solid(1), label=2)
        with pytest.raises(DataError, match='stamp_ns -1'):
            writer.write(solid(1), stamp_ns=-1)
        with pytest.raises(DataError, match="meta key 'file' is reserved"):
            writer.write(solid(1), file='x.png')
        assert writer.write(solid(1)) == '000000.png'


def test_writer_without_frames_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match='no frames were written'):
        write_frames(tmp_path / 'out', [])
    assert list(tmp_path.iterdir()) == []


def test_write_frames_round_trip_jpg(tmp_path: Path) -> None:
    frames = [Frame(solid(60 * i), 1000 * i, i, i % 2, {'file': f'src_{i}.png', 'shift': 'fog'})
              for i in range(3)]
    assert write_frames(tmp_path / 'out', frames, image_format='jpg') == 3
    back = list(FolderSource(tmp_path / 'out'))
    assert [f.meta['file'] for f in back] == ['000000.jpg', '000001.jpg', '000002.jpg']
    assert [f.meta['source_file'] for f in back] == ['src_0.png', 'src_1.png', 'src_2.png']
    assert [(f.label, f.stamp_ns, f.meta['shift']) for f in back] == [
        (0, 0, 'fog'), (1, 1000, 'fog'), (0, 2000, 'fog')]
    assert np.abs(back[2].image.astype(int) - (120, 121, 122)).max() <= 3


def test_read_labels_tolerates_bom_blank_lines_and_spaces(tmp_path: Path) -> None:
    (tmp_path / 'a.png').write_bytes(b'x')
    (tmp_path / 'labels.csv').write_text('\ufefffile, label ,shift\n\na.png, 1 ,\n',
                                         encoding='utf-8')
    rows = read_labels(tmp_path)
    assert [(r.line, r.label, r.stamp_ns, dict(r.meta)) for r in rows] == [
        (3, 1, None, {'file': 'a.png'})]


def test_list_images_natural_order(tmp_path: Path) -> None:
    for name in ('img10.png', 'img9.png', 'IMG1.jpeg', 'img1.webp', 'x.gif'):
        (tmp_path / name).write_bytes(b'x')
    assert list_images(tmp_path) == ['IMG1.jpeg', 'img1.webp', 'img9.png', 'img10.png']


@given(st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=30))
def test_natural_key_orders_numbers_by_value(numbers: list[int]) -> None:
    names = [f'frame_{n}.png' for n in numbers]
    assert [int(n[6:-4]) for n in sorted(names, key=natural_key)] == sorted(numbers)

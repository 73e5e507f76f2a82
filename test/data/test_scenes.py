"""Tests of the procedural road-scene generator."""

from __future__ import annotations

import numpy as np
import pytest

from vae_ood_monitor.core.errors import ConfigError
from vae_ood_monitor.data.scenes import render_sequence, RoadScene, SceneConfig, STYLES


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def _yellow(frame: np.ndarray) -> np.ndarray:
    r, g, b = (frame[..., c].astype(int) for c in range(3))
    return (r > 140) & (g > 110) & (b < 0.6 * g) & (r - b > 80)


@pytest.fixture(scope='module')
def drives() -> dict[int, np.ndarray]:
    """Frames 0, 20, ..., 380 of six worlds at the default size."""
    scenes = {seed: RoadScene(seed) for seed in range(6)}
    return {seed: np.stack(list(map(scene.render, range(0, 400, 20))))
            for seed, scene in scenes.items()}


def test_default_config_is_valid_and_hashable() -> None:
    cfg = SceneConfig()
    assert (cfg.width, cfg.height, cfg.fps, cfg.speed_mps) == (160, 120, 20.0, 0.6)
    assert hash(cfg) == hash(SceneConfig())
    assert SceneConfig(styles=['grass']).styles == ('grass',)     # list -> tuple


@pytest.mark.parametrize(('kwargs', 'match'), [
    ({'width': 4}, r'width must be an int in \[8, 4096\], got 4'),
    ({'height': True}, 'height must be an int'),
    ({'width': 160.0}, 'width must be an int'),
    ({'fps': 0.0}, r'fps must be a number in \(0.001'),
    ({'speed_mps': -1.0}, 'speed_mps must be a number'),
    ({'camera_height_m': float('nan')}, 'camera_height_m'),
    ({'camera_pitch_deg': 80.0}, 'camera_pitch_deg'),
    ({'hfov_deg': 10.0}, 'hfov_deg'),
    ({'road_width_m': (0.6, 0.4)}, r'road_width_m must be a \(low, high\) tuple'),
    ({'road_width_m': 0.5}, 'road_width_m'),
    ({'curve_radius_m': (0.1, 2.0)}, 'curve_radius_m'),
    ({'lighting_gain': (0.8, 9.0)}, 'lighting_gain'),
    ({'sensor_noise': -0.5}, 'sensor_noise'),
    ({'styles': ('lava',)}, r"styles must be a non-empty tuple of .*got \('lava',\)"),
    ({'styles': ()}, 'styles must be a non-empty tuple'),
])
def test_config_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SceneConfig(**kwargs)


@pytest.mark.parametrize('seed', [-1, 1.5, True, '3'])
def test_bad_seed(seed: object) -> None:
    with pytest.raises(ConfigError, match='seed must be a non-negative int'):
        RoadScene(seed)  # type: ignore[arg-type]


def test_bad_config_type() -> None:
    with pytest.raises(ConfigError, match='config must be a SceneConfig, got dict'):
        RoadScene(0, {'width': 64})  # type: ignore[arg-type]


def test_bad_indices() -> None:
    scene = RoadScene(0, SceneConfig(width=32, height=24))
    with pytest.raises(ConfigError, match='frame index must be a non-negative int, got -1'):
        scene.render(-1)
    with pytest.raises(ConfigError, match='frame index must be a non-negative int, got 2.0'):
        scene.render(2.0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match='n must be a non-negative int'):
        next(scene.frames(-2))
    with pytest.raises(ConfigError, match='start must be a non-negative int'):
        next(scene.frames(2, start=-1))
    with pytest.raises(ConfigError, match='n must be a non-negative int'):
        render_sequence(0, -1)


@pytest.mark.parametrize(('width', 'height'),
                         [(160, 120), (640, 480), (224, 224), (40, 30), (97, 61), (8, 8)])
def test_shape_and_dtype(width: int, height: int) -> None:
    cfg = SceneConfig(width=width, height=height)
    frame = RoadScene(5, cfg).render(3)
    assert frame.shape == (height, width, 3)
    assert frame.dtype == np.uint8
    assert 20 < frame.mean() < 235          # neither black nor blown out


def test_deterministic_and_order_independent() -> None:
    cfg = SceneConfig(width=80, height=60)
    a, b = RoadScene(3, cfg), RoadScene(3, cfg)
    late = a.render(700)            # beyond the first 20 m chunk of the track
    early = [a.render(i) for i in range(3)]
    assert all(np.array_equal(x, b.render(i)) for i, x in enumerate(early))
    assert np.array_equal(late, b.render(700))
    seq = render_sequence(3, 3, cfg)
    assert seq.shape == (3, 60, 80, 3)
    assert np.array_equal(seq, np.stack(early))
    assert all(np.array_equal(f, a.render(10 + i)) for i, f in enumerate(a.frames(3, 10)))
    assert render_sequence(3, 0, cfg).shape == (0, 60, 80, 3)


def test_different_seeds_differ(drives: dict[int, np.ndarray]) -> None:
    for seed in range(5):
        assert _mad(drives[seed][0], drives[seed + 1][0]) > 10


def test_worlds_vary() -> None:
    styles = {RoadScene(seed, SceneConfig(width=16, height=12)).style for seed in range(12)}
    assert len(styles) >= 4 and styles <= set(STYLES)
    widths = {round(RoadScene(seed).road_width, 3) for seed in range(5)}
    assert len(widths) == 5


def test_temporal_coherence() -> None:
    cfg = SceneConfig(width=80, height=60)
    for seed in (0, 1, 2):
        scene = RoadScene(seed, cfg)
        frames = [scene.render(i) for i in range(0, 201)]
        near = np.mean([_mad(frames[i], frames[i + 1]) for i in range(0, 200, 20)])
        far = np.mean([_mad(frames[i], frames[i + 100]) for i in range(0, 100, 20)])
        other = _mad(frames[0], RoadScene(seed + 10, cfg).render(0))
        assert near < 0.5 * far, (seed, near, far)
        assert near < 0.5 * other, (seed, near, other)


def test_consecutive_frames_move() -> None:
    scene = RoadScene(2)
    assert _mad(scene.render(0), scene.render(1)) > 0.3      # the car drives: dashes move


def test_road_is_there(drives: dict[int, np.ndarray]) -> None:
    h, w = 120, 160
    yellow_frames, n = 0, 0
    for frames in drives.values():
        for frame in frames:
            lum = frame.astype(float).mean(axis=2)
            assert lum[h // 2:, w // 4:3 * w // 4].mean() < lum.mean()     # dark road ahead
            yellow_frames += bool(_yellow(frame)[h // 3:, w // 4:3 * w // 4].any())
            n += 1
    assert yellow_frames >= 0.8 * n


def test_white_edge_line(drives: dict[int, np.ndarray]) -> None:
    whites = 0
    for frames in drives.values():
        f = frames.astype(int)
        white = (f.min(axis=3) > 170) & (np.ptp(f, axis=3) < 40)
        whites += int(white[:, 60:].any(axis=(1, 2)).sum())      # white pixels below the horizon
    assert whites >= 0.8 * sum(len(f) for f in drives.values())


def test_in_distribution_lighting_is_moderate(drives: dict[int, np.ndarray]) -> None:
    means = [float(f.mean()) for frames in drives.values() for f in frames]
    assert 50 < min(means) and max(means) < 190

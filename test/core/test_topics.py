"""Camera names and output topics shared by the node and replay."""

from __future__ import annotations

import pytest

from vae_ood_monitor.core.errors import ConfigError
from vae_ood_monitor.core.topics import camera_name, is_compressed_topic, output_topics


@pytest.mark.parametrize('topic, name', [
    ('/front/image_raw', 'front_image_raw'),
    ('front/image_raw/compressed', 'front_image_raw'),
    ('/robot1/cam-left/image', 'robot1_cam_left_image'),
    ('~/image', 'image'),
    ('/2d/image', 'cam_2d_image'),
])
def test_camera_name(topic: str, name: str) -> None:
    assert camera_name(topic) == name


def test_camera_name_rejects_empty() -> None:
    with pytest.raises(ConfigError, match='no usable camera name'):
        camera_name('/')


def test_compressed_and_output_topics() -> None:
    assert is_compressed_topic('/cam/image_raw/compressed')
    assert not is_compressed_topic('/cam/compressed_image')
    assert output_topics('front').alert == 'ood/front/alert'
    assert output_topics('front').debug_image == 'ood/front/debug_image'
    assert output_topics().alert == 'ood/alert' and output_topics().kl == 'ood/kl'

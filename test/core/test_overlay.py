"""The rviz debug image: size, score bar and alert banner."""

from __future__ import annotations

import numpy as np

from vae_ood_monitor.core.monitor import Monitor
from vae_ood_monitor.core.overlay import render_debug_image
from vood_testing import bundle_for_frames

FRAME = np.full((48, 64, 3), 90, np.uint8)


def _decision(alert: bool):  # type: ignore[no-untyped-def]
    monitor = Monitor(bundle_for_frames([FRAME], alert=alert))
    return monitor.process(FRAME, 0)


def test_alert_banner_is_red_and_quiet_frame_has_none() -> None:
    alert = render_debug_image(FRAME, _decision(True), width=320)
    quiet = render_debug_image(FRAME, _decision(False), width=320, lines=['2.1 ms'])
    assert alert.shape == (240, 320, 3) and alert.dtype == np.uint8
    top_alert, top_quiet = alert[:10].reshape(-1, 3), quiet[:10].reshape(-1, 3)
    assert (top_alert[:, 0] > 200).mean() > 0.5 and (top_alert[:, 1] < 60).mean() > 0.5
    assert (top_quiet[:, 0] > 200).mean() < 0.1


def test_bar_fill_grows_with_evidence_and_input_is_untouched() -> None:
    before = FRAME.copy()
    alert = render_debug_image(FRAME, _decision(True), width=None)
    quiet = render_debug_image(FRAME, _decision(False), width=None)
    np.testing.assert_array_equal(FRAME, before)
    bar_alert = alert[-4, 3:-3]
    bar_quiet = quiet[-4, 3:-3]
    red = (bar_alert[:, 0] > 180) & (bar_alert[:, 1] < 80)
    assert red.mean() > 0.9  # evidence far above the trigger: the bar is full and red
    assert (bar_quiet[:, 0] > 180).mean() < 0.2  # far below: almost empty

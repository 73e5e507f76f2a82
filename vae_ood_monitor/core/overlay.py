"""The debug image for rviz: the camera frame with a score bar, threshold mark and alert banner."""

from __future__ import annotations

from typing import cast, TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

    from vae_ood_monitor.core.monitor import Decision

__all__ = ['render_debug_image']

_GREEN = (40, 180, 60)
_ORANGE = (255, 150, 0)
_RED = (220, 30, 30)


def render_debug_image(rgb: NDArray[np.uint8], decision: Decision, width: int | None = 320,
                       lines: Sequence[str] = ()) -> NDArray[np.uint8]:
    """Draw the decision onto a copy of an RGB frame (resized to ``width`` when given).

    The bar shows the strongest partition's evidence (score against its threshold(s) in
    threshold mode, CUSUM / tau in cusum mode); the white tick marks 1.0 (the trigger), the bar
    spans 0 to 2. The banner turns red with the firing partitions on alert.
    ``lines`` (e.g. latency figures) are written in the top-left corner, below the banner.
    """
    image = np.ascontiguousarray(rgb[:, :, :3])
    if width is not None and image.shape[1] != width:
        height = max(1, round(image.shape[0] * width / image.shape[1]))
        image = cast('NDArray[np.uint8]',
                     cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA))
    else:
        image = image.copy()
    h, w = image.shape[:2]
    ratio = _evidence(decision)
    bar_h = max(6, h // 20)
    top = h - bar_h - 2
    cv2.rectangle(image, (2, top), (w - 3, h - 3), (30, 30, 30), -1)
    fill = int(round((w - 6) * min(ratio, 2.0) / 2.0))
    colour = _RED if ratio > 1.0 else (_ORANGE if ratio > 0.7 else _GREEN)
    if fill > 0:
        cv2.rectangle(image, (3, top + 1), (3 + fill, h - 4), colour, -1)
    tick = 3 + (w - 6) // 2
    cv2.line(image, (tick, top - 2), (tick, h - 2), (255, 255, 255), 1)
    scale = max(0.35, w / 800)
    label = f'{decision.mode.value} {ratio:.2f}  KL {decision.score:.1f}'
    cv2.putText(image, label, (4, top - 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                1, cv2.LINE_AA)
    banner = max(14, h // 10)
    line_h = max(12, int(22 * scale))
    for number, line in enumerate(lines):
        y = banner + line_h * (number + 1)
        cv2.putText(image, line, (4, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3,
                    cv2.LINE_AA)
        cv2.putText(image, line, (4, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
    if decision.alert:
        cv2.rectangle(image, (0, 0), (w - 1, banner), _RED, -1)
        text = 'OOD ALERT: ' + (', '.join(decision.fired) or 'holding')
        cv2.putText(image, text, (4, banner - 4), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return image


def _evidence(decision: Decision) -> float:
    """Largest partition evidence (1.0 = triggers)."""
    best = max((s.evidence for s in decision.partitions), default=0.0)
    return min(max(best, 0.0), 1e9)

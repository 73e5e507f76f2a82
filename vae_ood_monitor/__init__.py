"""vae_ood_monitor: a VAE-based out-of-distribution safety monitor for camera-driven robots.

Layers (imports point one way): ``core`` (numpy + onnxruntime: the robot runtime) <- ``data``,
``train`` (torch), ``evaluate``, ``replay`` (rosbags), ``ros`` (rclpy) <- ``cli``.
"""

__all__ = ['__version__']

__version__ = '0.1.0'

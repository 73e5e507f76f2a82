"""The robot runtime: numpy + onnxruntime + OpenCV only (never torch, rclpy or rosbags).

Image decoding with cv_bridge semantics, manifest-driven preprocessing, the model bundle, the
ONNX Runtime encoder session, KL scoring, conformal p-values, the power martingale, CUSUM and the
:class:`Monitor` that ties them together per camera.
"""

from vae_ood_monitor.core.baseline import Baseline, BaselineParams, relative_scores
from vae_ood_monitor.core.bundle import Bundle, load_bundle, save_bundle
from vae_ood_monitor.core.cusum import Cusum, CusumState
from vae_ood_monitor.core.detector import (AlertLatch, Decider, PartitionDetector,
                                           PartitionState)
from vae_ood_monitor.core.errors import (BundleError, CalibrationError, ConfigError, DataError,
                                         ImageEncodingError, ReplayError, VaeOodError)
from vae_ood_monitor.core.image import decode_image, SUPPORTED_ENCODINGS, to_rgb8
from vae_ood_monitor.core.manifest import CusumParams, Manifest, ModelInfo, Partition
from vae_ood_monitor.core.martingale import log_power_martingale, PowerMartingale
from vae_ood_monitor.core.monitor import Decision, Monitor, MonitorConfig
from vae_ood_monitor.core.preprocess import InputSpec, Preprocessor, resize_image
from vae_ood_monitor.core.scoring import (conformal_p_value, conformal_p_values, kl_per_dim,
                                          partition_scores)
from vae_ood_monitor.core.session import EncoderSession, SessionConfig
from vae_ood_monitor.core.stats import Counts, Latency, LatencyStats
from vae_ood_monitor.core.typedefs import (ChannelOrder, DecisionMode, DimSelection, Encoder,
                                           Interpolation, Precision, ProviderFallback)

__all__ = [
    'AlertLatch',
    'Baseline',
    'BaselineParams',
    'Bundle',
    'BundleError',
    'CalibrationError',
    'ChannelOrder',
    'ConfigError',
    'Counts',
    'Cusum',
    'CusumParams',
    'CusumState',
    'DataError',
    'Decider',
    'Decision',
    'DecisionMode',
    'DimSelection',
    'Encoder',
    'EncoderSession',
    'ImageEncodingError',
    'InputSpec',
    'Interpolation',
    'Latency',
    'LatencyStats',
    'Manifest',
    'ModelInfo',
    'Monitor',
    'MonitorConfig',
    'Partition',
    'PartitionDetector',
    'PartitionState',
    'PowerMartingale',
    'Precision',
    'Preprocessor',
    'ProviderFallback',
    'ReplayError',
    'SUPPORTED_ENCODINGS',
    'SessionConfig',
    'VaeOodError',
    'conformal_p_value',
    'conformal_p_values',
    'decode_image',
    'kl_per_dim',
    'load_bundle',
    'log_power_martingale',
    'partition_scores',
    'relative_scores',
    'resize_image',
    'save_bundle',
    'to_rgb8',
]

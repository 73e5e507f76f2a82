"""Bag replay: a ROS 2 bag in, the Monitor over its camera frames, a report and a bag out.

Reads and writes bags with rosbags (no ROS installation needed) and produces exactly what the
live monitor node publishes, so a replayed bag looks like a recording of the robot. Also turns
frame sources into bags and compares a replay with a baseline for regression checks.
"""

from vae_ood_monitor.replay.bagio import (Bag, BagMessage, open_bag, StopInfo, Storage,
                                          TopicInfo)
from vae_ood_monitor.replay.bagmaker import BagSpec, MadeBag, make_bag, parse_synth
from vae_ood_monitor.replay.compare import (compare_summaries, Comparison, load_summary,
                                            SpanDifference)
from vae_ood_monitor.replay.replay import CameraTrack, replay_bag, ReplayConfig, ReplayResult
from vae_ood_monitor.replay.report import Labels, read_labels, summarize, write_report
from vae_ood_monitor.replay.writer import OutputBag

__all__ = [
    'Bag',
    'BagMessage',
    'BagSpec',
    'CameraTrack',
    'Comparison',
    'Labels',
    'MadeBag',
    'OutputBag',
    'ReplayConfig',
    'ReplayResult',
    'SpanDifference',
    'StopInfo',
    'Storage',
    'TopicInfo',
    'compare_summaries',
    'load_summary',
    'make_bag',
    'open_bag',
    'parse_synth',
    'read_labels',
    'replay_bag',
    'summarize',
    'write_report',
]

"""The OOD monitor node: camera frames in; alerts, scores, KL, diagnostics, debug images out.

A thin rclpy lifecycle adapter over :class:`vae_ood_monitor.core.Monitor`:

* ``__init__`` declares the parameters; ``on_configure`` reads and validates them, loads and
  warms up the model (the slow part: a TensorRT engine can take minutes) and creates
  publishers, subscriptions, timers and the ``~/reset`` service; ``on_activate`` and
  ``on_deactivate`` only start and pause the worker, so resuming is instant; ``on_cleanup``
  releases the model and everything else. A transition request that is invalid from the
  current state (by id or by label) is refused, never raised.
* Frames whose header stamp lies more than ``max_frame_age_s`` from the node clock are not
  judged: their camera counts as stale (a frozen driver must not pass as healthy). A QoS
  incompatibility between a camera's publisher and the subscription is reported in
  diagnostics by policy name.
* Camera callbacks only put the newest frame into a per-camera slot (depth-1 sensor QoS); a
  worker thread processes slots, so a slow model drops stale frames (counted) instead of
  building up latency.
* Nothing raised while handling a frame escapes: failures are counted by kind and reported in
  /diagnostics.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
import threading
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
try:  # Jazzy and later
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # pragma: no cover - Humble
    from rclpy.qos_event import SubscriptionEventCallbacks
from rclpy.lifecycle import Node, State, TransitionCallbackReturn
from rclpy.qos import (HistoryPolicy, qos_policy_name_from_kind, QoSPolicyKind, QoSProfile,
                       ReliabilityPolicy)
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Bool, Float32, Float32MultiArray
from std_srvs.srv import Trigger

from vae_ood_monitor.core.diagnostics import camera_diagnostics, model_diagnostics
from vae_ood_monitor.core.errors import VaeOodError
from vae_ood_monitor.core.image import to_rgb8
from vae_ood_monitor.core.monitor import Monitor
from vae_ood_monitor.core.overlay import render_debug_image
from vae_ood_monitor.core.stats import RateMeter
from vae_ood_monitor.core.topics import (camera_name, is_compressed_topic, MONITOR_NODE,
                                         output_topics)
from vae_ood_monitor.ros.health import camera_stale, LogThrottle
from vae_ood_monitor.ros.messages import (bool_msg, diagnostic_array_msg, float32_msg,
                                          image_msg, kl_msg, rclpy_kit)
from vae_ood_monitor.ros.node_common import (declare_params, guard_transitions, read_params,
                                             run_node, stamp_to_ns, validate_on_set)
from vae_ood_monitor.ros.params import (camera_qos, check_refused, monitor_node_config,
                                        MONITOR_PARAMS, MonitorNodeConfig,
                                        qos_overrides_to_apply, QOS_POLICIES, with_live_values)

__all__ = ['MonitorNode', 'main']

NODE_NAME = MONITOR_NODE


@dataclass
class _Camera:
    """Per-camera node state: the latest-frame slot and what was last published."""

    name: str
    topic: str
    pending: Any = None
    pending_drops: int = 0
    #: arrival number of the frame that filled the empty slot (the worker serves the oldest)
    pending_since: int = 0
    input_rate: RateMeter = field(default_factory=RateMeter)
    alert: bool = False
    score: float = 0.0
    #: node clock; None until a frame has been processed since activation (stale)
    last_processed_ns: int | None = None
    dropped_total: int = 0
    publishers: dict[str, Any] = field(default_factory=dict)
    #: frames refused for their age (max_frame_age_s), and the last one's age in seconds
    too_old: int = 0
    last_age_s: float = 0.0
    #: the QoS policy a publisher of this camera offered incompatibly, as rclpy names it
    qos_incompatible: str = ''


class MonitorNode(Node):
    """Lifecycle node wrapping the core Monitor."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        guard_transitions(self)
        #: start-up values rclpy refused; configure fails until they are set right
        self._refused = declare_params(self, MONITOR_PARAMS, lifecycle=True)
        self.add_on_set_parameters_callback(validate_on_set(MONITOR_PARAMS, self._apply))
        self._kit = rclpy_kit()
        self._config: MonitorNodeConfig | None = None
        self._monitor: Monitor | None = None
        self._cameras: dict[str, _Camera] = {}
        self._slot_lock = threading.Lock()
        self._arrivals = 0
        self._monitor_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._active = False
        self._entities: list[Any] = []
        self._aggregate: dict[str, Any] = {}
        self._diagnostics_pub: Any = None
        self._monitor_provider = ''
        self._frame_log = LogThrottle(5.0)  # per camera: rclpy throttles per call site
        #: resolved camera topic -> QoS of its first subscription (see qos_overrides_to_apply)
        self._first_qos: dict[str, dict[str, Any]] = {}
        if self.get_parameter('autostart').value:
            self._autostart()

    def _apply(self, values: dict[str, Any]) -> None:
        """Put run-time parameters into effect now; the others wait for the next configure."""
        for name in values:  # a valid value replaces one refused at start-up
            self._refused.pop(name, None)
        if self._config is not None:
            self._config = with_live_values(self._config, MONITOR_PARAMS, values)

    # -- lifecycle -------------------------------------------------------------------------
    def _autostart(self) -> None:
        try:
            if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                self.trigger_activate()
        except Exception as err:  # invalid transitions raise on Humble/Jazzy
            self.get_logger().error(f'autostart failed: {err}')

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        """Read parameters, load and warm up the model, create the node's interfaces."""
        try:
            check_refused(self._refused)
            config = monitor_node_config(read_params(self, MONITOR_PARAMS))
            started = time.monotonic()
            # the frozen-stream check runs once, on the primary (Monitor insists)
            companion = (Monitor(config.flow_model_path, replace(config.monitor, frozen_frames=0))
                         if config.flow_model_path else None)
            monitor = Monitor(config.model_path, config.monitor, companion=companion)
        except Exception as err:  # bad parameters, a bad bundle or provider: not a crash
            self.get_logger().error(f'configure failed: {err}')
            return TransitionCallbackReturn.FAILURE
        for note in getattr(monitor.encoder, 'notes', []):
            self.get_logger().warning(note)
        with self._monitor_lock:
            self._monitor = monitor
        beside = ''
        if monitor.companion is not None:
            other = monitor.companion.bundle
            beside = (f'; beside it the {other.manifest.kind} bundle {other.name!r} '
                      f'({other.short_hash}), alerts ORed')
        self.get_logger().info(
            f'loaded model {monitor.bundle.name!r} ({monitor.bundle.short_hash}) in '
            f'{time.monotonic() - started:.2f} s: provider {monitor.provider}, decision '
            f'{monitor.mode.value}{beside}')
        self._config = config
        topics = output_topics()
        self._aggregate = {'alert': self.create_lifecycle_publisher(Bool, topics.alert, 10),
                           'score': self.create_lifecycle_publisher(Float32, topics.score, 10)}
        self._diagnostics_pub = self.create_lifecycle_publisher(DiagnosticArray, '/diagnostics',
                                                                10)
        for topic in config.image_topics:
            self._add_camera(topic, config)
        self._entities += [
            self.create_service(Trigger, '~/reset', self._on_reset),
            self.create_timer(config.heartbeat_period_s, self._on_heartbeat),
            self.create_timer(config.diagnostics_period_s, self._on_diagnostics),
        ]
        self.get_logger().info(f'configured for {len(config.image_topics)} camera(s): '
                               f'{", ".join(config.image_topics)}')
        return TransitionCallbackReturn.SUCCESS

    def _add_camera(self, topic: str, config: MonitorNodeConfig) -> None:
        name = camera_name(topic)
        camera = _Camera(name, topic)
        out = output_topics(name)
        camera.publishers = {
            'alert': self.create_lifecycle_publisher(Bool, out.alert, 10),
            'score': self.create_lifecycle_publisher(Float32, out.score, 10),
            'kl': self.create_lifecycle_publisher(Float32MultiArray, out.kl, 10),
            'debug_image': self.create_lifecycle_publisher(Image, out.debug_image, 1),
        }
        reliability = (ReliabilityPolicy.RELIABLE if config.qos_reliability == 'reliable'
                       else ReliabilityPolicy.BEST_EFFORT)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=config.qos_depth,
                         reliability=reliability)  # a fresh profile: overrides mutate it
        msg_type = CompressedImage if is_compressed_topic(topic) else Image
        events = SubscriptionEventCallbacks(
            incompatible_qos=lambda info, c=camera: self._on_incompatible_qos(c, info))
        self._entities.append(self.create_subscription(
            msg_type, topic, lambda msg, c=camera: self._on_frame(c, msg), qos,
            qos_overriding_options=self._qos_overriding_options(topic, config),
            event_callbacks=events))
        self._cameras[name] = camera

    def _qos_overriding_options(self, topic: str, config: MonitorNodeConfig
                                ) -> QoSOverridingOptions:
        """Start-up qos_overrides win; otherwise qos_reliability/qos_depth, at every configure."""
        resolved = self.resolve_topic_name(topic)
        first = self._first_qos.get(resolved)
        declared = {} if first is None else {
            p: self.get_parameter(f'qos_overrides.{resolved}.subscription.{p}').value
            for p in QOS_POLICIES}
        policies = qos_overrides_to_apply(first, declared)
        self._first_qos.setdefault(resolved, camera_qos(config))
        return QoSOverridingOptions([QoSPolicyKind[p.upper()] for p in policies])

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        """Start the worker and enable the publishers (the model is already loaded)."""
        with self._monitor_lock:
            monitor = self._monitor
            if monitor is None:
                self.get_logger().error('activate failed: no model loaded; configure first')
                return TransitionCallbackReturn.FAILURE
            monitor.reset()  # a fresh start: no sequential state carried over a pause
        for camera in self._cameras.values():  # each camera starts unproven
            camera.alert, camera.score, camera.last_processed_ns = False, 0.0, None
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name='ood_monitor_worker',
                                        daemon=True)
        self._worker.start()
        self._active = True
        self.get_logger().info(f'active: model {monitor.bundle.name!r}')
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        """Pause: stop the worker; the model stays loaded, so activating again is instant."""
        self._stop_worker()
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        """Release the model; destroy publishers, subscriptions, timers and the service."""
        self._release()
        self._destroy_entities()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        """Release everything."""
        self._release()
        self._destroy_entities()
        return TransitionCallbackReturn.SUCCESS

    def _stop_worker(self) -> None:
        self._active = False
        self._stop.set()
        self._wake.set()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout=5.0)
        self._worker = None

    def _release(self) -> None:
        self._stop_worker()
        with self._monitor_lock:
            self._monitor = None

    def _destroy_entities(self) -> None:
        for entity in self._entities:
            destroy = {'Subscription': self.destroy_subscription, 'Timer': self.destroy_timer,
                       'Service': self.destroy_service}.get(type(entity).__name__)
            if destroy is not None:
                destroy(entity)
        publishers = [p for c in self._cameras.values() for p in c.publishers.values()]
        publishers += list(self._aggregate.values())
        if self._diagnostics_pub is not None:
            publishers.append(self._diagnostics_pub)
        for publisher in publishers:
            self.destroy_lifecycle_publisher(publisher)
        self._entities, self._cameras, self._aggregate = [], {}, {}
        self._diagnostics_pub = None

    def close(self) -> None:
        """Stop the worker thread (called before destroy_node)."""
        self._release()

    # -- frames ----------------------------------------------------------------------------
    def _on_frame(self, camera: _Camera, msg: Any) -> None:
        if not self._active:
            return
        with self._slot_lock:
            if camera.pending is not None:
                camera.pending_drops += 1
            else:  # keeps its place in line while newer frames replace the waiting one
                self._arrivals += 1
                camera.pending_since = self._arrivals
            camera.pending = msg
            camera.input_rate.tick(self.get_clock().now().nanoseconds)
        self._wake.set()

    def _take(self) -> tuple[_Camera, Any, int] | None:
        """Take the newest frame of the camera that has waited longest.

        Serving cameras in a fixed order would starve the others whenever inference takes
        longer than the first camera's frame period.
        """
        with self._slot_lock:
            waiting = [c for c in self._cameras.values() if c.pending is not None]
            if not waiting:
                return None
            camera = min(waiting, key=lambda c: c.pending_since)
            msg, drops = camera.pending, camera.pending_drops
            camera.pending, camera.pending_drops = None, 0
            return camera, msg, drops

    def _work(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=0.2)
            self._wake.clear()
            while not self._stop.is_set():
                item = self._take()
                if item is None:
                    break
                try:
                    self._process(*item)
                except Exception as err:  # never let the worker die
                    camera = item[0]
                    held = self._frame_log.admit((camera.name, 'unexpected'), time.monotonic_ns())
                    if held is not None:
                        self.get_logger().error(f'{camera.topic}: unexpected error while '
                                                f'processing a frame: {err}{_held_note(held)}')

    def _too_old(self, camera: _Camera, stamp_ns: int, now_ns: int) -> bool:
        """Count and report a frame whose stamp is too far from the node clock."""
        assert self._config is not None
        limit = self._config.max_frame_age_s
        if not stamp_ns or not limit or abs(now_ns - stamp_ns) <= limit * 1e9:
            return False
        camera.too_old += 1
        camera.last_age_s = (now_ns - stamp_ns) / 1e9
        held = self._frame_log.admit((camera.name, 'age'), time.monotonic_ns())
        if held is not None:
            self.get_logger().warning(
                f'{camera.topic}: frame stamped {camera.last_age_s:.2f} s from the node clock '
                f'(max_frame_age_s {limit:g}): not judged, the camera counts as stale; check '
                f'the driver, the clocks, or use_sim_time with a replayed bag{_held_note(held)}')
        return True

    def _process(self, camera: _Camera, msg: Any, drops: int) -> None:
        now = self.get_clock().now().nanoseconds
        stamp = stamp_to_ns(msg.header.stamp)
        if self._too_old(camera, stamp, now):
            return
        stamp = stamp or now
        with self._monitor_lock:
            monitor = self._monitor
            if monitor is None:
                return
            if drops:
                monitor.record_drop(camera.name, drops)
            try:
                decision = monitor.process(msg, stamp, camera.name)
            except VaeOodError as err:  # counted by the Monitor
                held = self._frame_log.admit(camera.name, time.monotonic_ns())
                if held is not None:
                    self.get_logger().warning(f'{camera.topic}: {err}{_held_note(held)}')
                return
            except Exception as err:
                monitor.record_failure(camera.name, err)
                raise
            self._monitor_provider = monitor.provider
            camera.dropped_total = monitor.counts(camera.name).dropped
        camera.alert, camera.score = decision.alert, decision.score
        camera.last_processed_ns = self.get_clock().now().nanoseconds
        pubs = camera.publishers
        pubs['alert'].publish(bool_msg(self._kit, decision.alert))
        pubs['score'].publish(float32_msg(self._kit, decision.score))
        pubs['kl'].publish(kl_msg(self._kit, decision.kl))
        self._publish_aggregate()
        assert self._config is not None
        if self._config.publish_debug_image and pubs['debug_image'].get_subscription_count():
            total = decision.latency.total / 1e6
            rate = camera.input_rate.rate(self.get_clock().now().nanoseconds)
            lines = (f'{camera.name}: {total:.1f} ms/frame, in {rate:.1f} Hz',
                     f'provider {self._monitor_provider}, dropped {camera.dropped_total}')
            overlay = render_debug_image(to_rgb8(msg), decision, self._config.debug_image_width,
                                         lines)
            pubs['debug_image'].publish(image_msg(self._kit, overlay, msg.header))

    # -- timers and services ---------------------------------------------------------------
    def _stale(self, camera: _Camera, now_ns: int) -> bool:
        """No frame processed for stale_after_s, or none yet since activation."""
        assert self._config is not None
        return camera_stale(camera.last_processed_ns, now_ns, self._config.stale_after_s)

    def _publish_aggregate(self) -> None:
        if not self._active or self._config is None:
            return
        now = self.get_clock().now().nanoseconds
        stale = any(self._stale(c, now) for c in self._cameras.values())
        alert = any(c.alert for c in self._cameras.values()) or (
            stale and self._config.alert_on_stale)
        self._aggregate['alert'].publish(bool_msg(self._kit, alert))
        self._aggregate['score'].publish(float32_msg(
            self._kit, max((c.score for c in self._cameras.values()), default=0.0)))

    def _on_heartbeat(self) -> None:
        try:
            if not self._active or self._config is None:
                return
            now = self.get_clock().now().nanoseconds
            for camera in self._cameras.values():
                stale = self._stale(camera, now) and self._config.alert_on_stale
                camera.publishers['alert'].publish(bool_msg(self._kit, camera.alert or stale))
            self._publish_aggregate()
        except Exception as err:
            self.get_logger().error(f'heartbeat failed: {err}', throttle_duration_sec=5.0)

    def _on_diagnostics(self) -> None:
        try:
            if not self._active or self._config is None:
                return
            now = self.get_clock().now()
            entries = []
            with self._monitor_lock:
                monitor = self._monitor
                if monitor is None:
                    return
                for camera in self._cameras.values():
                    stale = self._stale(camera, now.nanoseconds)
                    entries.append(camera_diagnostics(
                        monitor, camera.name, input_rate=camera.input_rate.rate(now.nanoseconds),
                        stale=stale, latency_budget_ms=self._config.latency_budget_ms or None,
                        alert=camera.alert or (stale and self._config.alert_on_stale),
                        problem=self._camera_problem(camera, stale),
                        extra=(('frames_too_old', str(camera.too_old)),
                               ('qos_incompatible', camera.qos_incompatible or 'none'))))
                entries.append(model_diagnostics(monitor, self._config.model_path))
            self._diagnostics_pub.publish(diagnostic_array_msg(self._kit, entries, now.to_msg()))
        except Exception as err:
            self.get_logger().error(f'diagnostics failed: {err}', throttle_duration_sec=5.0)

    def _camera_problem(self, camera: _Camera, stale: bool) -> str | None:
        """Why a stale camera is not watched, when the node knows better than 'no frames'."""
        assert self._config is not None
        if camera.qos_incompatible:
            return (f'no frames: the publisher of {camera.topic} offers a QoS incompatible with '
                    f'the subscription ({camera.qos_incompatible}); set qos_reliability to '
                    'match the camera driver (most publish best_effort)')
        if stale and camera.too_old:
            return (f'frames too old: {camera.too_old} stamped up to {camera.last_age_s:.2f} s '
                    f'from the node clock (max_frame_age_s {self._config.max_frame_age_s:g})')
        return None

    def _on_incompatible_qos(self, camera: _Camera, info: Any) -> None:
        try:
            policy = qos_policy_name_from_kind(info.last_policy_kind)
            camera.qos_incompatible = policy
            self.get_logger().error(
                f'{camera.topic}: a publisher offers a QoS incompatible with this subscription '
                f'({policy}, {info.total_count} so far): no frames will arrive; set '
                'qos_reliability (or qos_overrides) to match the camera driver')
        except Exception as err:
            self.get_logger().error(f'QoS event handling failed: {err}')

    def _on_reset(self, request: Any, response: Any) -> Any:
        with self._monitor_lock:
            if self._monitor is None:
                response.success = False
                response.message = 'not active: nothing to reset'
                return response
            self._monitor.reset()
        for camera in self._cameras.values():
            camera.alert = False
        response.success = True
        response.message = 'sequential state cleared for all cameras'
        return response


def _held_note(held: int) -> str:
    return f' ({held} more held back since the last report)' if held else ''


def main(args: list[str] | None = None) -> int:
    """Entry point of ``ros2 run vae_ood_monitor monitor_node``."""
    return run_node(MonitorNode, args)


if __name__ == '__main__':
    raise SystemExit(main())

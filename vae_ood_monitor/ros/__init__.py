"""The ROS 2 layer: thin rclpy nodes over the core (monitor_node, gate_node).

Importing this package does not import rclpy: :mod:`.params`, :mod:`.messages` and
:mod:`.health` are pure and unit-tested without ROS; :mod:`.monitor_node`, :mod:`.gate_node`
and :mod:`.node_common` need a sourced ROS 2 installation.
"""

from vae_ood_monitor.ros.params import (gate_node_config, GATE_PARAMS, monitor_node_config,
                                        MONITOR_PARAMS, ParamSpec)

__all__ = ['GATE_PARAMS', 'MONITOR_PARAMS', 'ParamSpec', 'gate_node_config',
           'monitor_node_config']

"""Replay a recorded bag through monitor + gate inside ROS, on the bag's clock.

Runs ``ros2 bag play BAG --clock 100`` (the bag path comes first: ``--clock`` takes an optional
rate and would otherwise swallow it) and the bringup with ``use_sim_time:=true``. For replay
without ROS (CI, laptops) use ``vae-ood replay`` instead.

Example::

    ros2 launch vae_ood_monitor replay_launch.py bag:=/data/rain_run \
        model_path:=/path/model.vood image_topics:='[camera/image_raw]'
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration


def generate_launch_description():
    """Describe bag playback plus the monitor/gate bringup on simulated time."""
    share = get_package_share_directory('vae_ood_monitor')
    arguments = [
        DeclareLaunchArgument('bag', description='Bag folder or file to play.'),
        DeclareLaunchArgument('model_path', description='Path of the .vood model bundle.'),
        DeclareLaunchArgument('image_topics', default_value='',
                              description='YAML list of camera topics recorded in the bag '
                              "(default: the monitor params file's)."),
        DeclareLaunchArgument('rate', default_value='1.0',
                              description='Playback rate multiplier of ros2 bag play.'),
        DeclareLaunchArgument('rviz', default_value='true', choices=['true', 'false'],
                              description='Also start rviz2 with the monitor view.'),
    ]
    play = ExecuteProcess(
        cmd=['ros2', 'bag', 'play', LaunchConfiguration('bag'), '--clock', '100',
             '--rate', LaunchConfiguration('rate')],
        output='screen')
    bringup = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(share, 'launch', 'bringup_launch.py')),
        launch_arguments={
            'model_path': LaunchConfiguration('model_path'),
            'image_topics': LaunchConfiguration('image_topics'),
            'use_sim_time': 'true',
            'rviz': LaunchConfiguration('rviz'),
        }.items())
    return LaunchDescription(arguments + [bringup, play])

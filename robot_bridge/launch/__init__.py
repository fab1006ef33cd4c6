"""ROS 2 launch files (shipped as package data)."""

"""ROS 2 parameter files (shipped as package data)."""

"""World-model visualizer: static HTML report and the interactive page on localhost."""

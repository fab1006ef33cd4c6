"""LeRobot datasets (format v2.0, v2.1, v3.0) read by our loader and written from our episodes.

- `meta.LeRobotMeta` / `reader.LeRobotReader`: the layout and raw episodes of a local dataset directory.
- `spec.lerobot_spec`: cameras -> primary/wrist, observation.state -> proprio, the 7-D delta action check.
- `source`: the loader's hook (`vla.data.sources` resolves entries whose path holds meta/info.json here).
- `writer.LeRobotWriter`: our episodes -> a v3.0 dataset `LeRobotDataset` loads.
- `convert`: `vla-convert` input_format=lerobot (-> RLDS) and output_format=lerobot (RLDS -> v3.0).
Importing this package is cheap (hydra's schema imports `options`); pyarrow and av load when used.
"""

from vla.data.lerobot.meta import LeRobotFormatError, is_lerobot_dir  # noqa: F401
from vla.data.lerobot.options import LeRobotOptions  # noqa: F401

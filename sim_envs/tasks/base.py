"""Task base class: objects, initial-state distribution, instruction templates and success check.

A task never steps physics or renders; it reads and writes state only through `sim_envs.robot.Physics`.
`reset_episode` draws everything random about the episode from the task's random generator, so a seed
fixes the layout, the colours and the instruction. It draws the layout first (`initialize_episode`, which
also lists the scene's `candidates`: the referents an instruction may name) and only then which candidate
the instruction names and with which template (`name_target`). The layout never depends on that choice, so
one seed with another `target` is the same scene under another instruction (LIBERO-PRO's swap).
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import numpy as np

from sim_envs.robot import Physics
from sim_envs.scene import SceneBuilder

#: Colour names used in instructions -> RGBA. Visual domain randomization only jitters these slightly.
COLORS: dict[str, tuple[float, float, float, float]] = {
    "red": (0.85, 0.12, 0.10, 1.0),
    "green": (0.12, 0.65, 0.20, 1.0),
    "blue": (0.12, 0.28, 0.85, 1.0),
    "yellow": (0.92, 0.80, 0.10, 1.0),
    "purple": (0.55, 0.20, 0.70, 1.0),
    "orange": (0.95, 0.50, 0.10, 1.0),
}
CUBE_HALF = 0.02
#: An object the instruction did not name counts as acted on once it moved this far (m) from where it started,
#: horizontally or upwards: far beyond settling and DR jitter (< 5 mm), well below a push or a lift.
MOVED_XY = 0.03
MOVED_Z = 0.02
TEMPLATE_SETS = ("train", "heldout")
#: Where objects may start (base frame, m): in front of the robot, inside both cameras' views.
SPAWN_LOW = np.array([0.38, -0.16])
SPAWN_HIGH = np.array([0.60, 0.16])


class Task(abc.ABC):
    """One manipulation task. Subclasses set the class attributes and implement the hooks."""

    #: Name used in the gymnasium id `vla_sim/<name>-v0`.
    name: ClassVar[str]
    #: Instruction templates; `{color}` etc. are filled from the named candidate's bindings.
    templates: ClassVar[tuple[str, ...]]
    #: Paraphrases never used when collecting training data (`reset(options={"templates": "heldout"})`).
    heldout_templates: ClassVar[tuple[str, ...]] = ()
    #: Episode length (control steps) registered with gymnasium's TimeLimit.
    max_episode_steps: ClassVar[int] = 60
    #: One-line description for docs and `sim_envs.describe_tasks()`.
    description: ClassVar[str] = ""

    def __init__(self) -> None:
        self.instruction = ""
        #: Geoms whose colour the instruction names (visual DR keeps them recognizable).
        self.named_geoms: list[str] = []
        #: The referent bindings an instruction may name in this scene (set by `initialize_episode`, in a
        #: seed-stable order), e.g. [{"color": "red"}, {"color": "blue"}]; one entry for single-referent tasks.
        self.candidates: list[dict[str, str]] = [{}]
        #: Index into `candidates` of the one the instruction names.
        self.target = 0

    @abc.abstractmethod
    def build(self, scene: SceneBuilder) -> None:
        """Add the task's bodies to the scene spec (before compiling)."""

    @abc.abstractmethod
    def initialize_episode(self, physics: Physics, rng: np.random.Generator) -> dict[str, Any]:
        """Place objects, pick colours, set `candidates`; return the JSON-able layout. Never reads `target`."""

    @abc.abstractmethod
    def success(self, physics: Physics) -> bool:
        """True when the simulator state satisfies the instruction (judged against the named target)."""

    def wrong_target(self, physics: Physics) -> bool:
        """True when an object the instruction did not name was acted on. Single-referent tasks: never."""
        return False

    def reset_episode(self, physics: Physics, rng: np.random.Generator, *, target: int | None = None,
                      templates: str = "train", template: int | None = None) -> dict[str, Any]:
        """Lay out the scene, then name a target; returns the layout plus `target`, `templates`, `template`."""
        self.template_pool(templates)  # a bad template set fails before anything moves
        layout = self.initialize_episode(physics, rng)
        layout.update(self.name_target(rng, target=target, templates=templates, template=template))
        return layout

    def template_pool(self, templates: str) -> tuple[str, ...]:
        """The templates of one set, "train" or "heldout"."""
        if templates not in TEMPLATE_SETS:
            raise ValueError(f"templates must be one of {list(TEMPLATE_SETS)}, got {templates!r}")
        pool = self.templates if templates == "train" else self.heldout_templates
        if not pool:
            raise ValueError(f"task {self.name} has no {templates!r} instruction templates")
        return pool

    def name_target(self, rng: np.random.Generator, *, target: int | None = None, templates: str = "train",
                    template: int | None = None) -> dict[str, Any]:
        """Choose the named candidate and the template, and write the instruction.

        Both are always drawn from `rng` (in this order), also when given, so a given target leaves the
        template draw as it was; a single candidate draws nothing, which keeps single-referent tasks' seeds.
        """
        n = len(self.candidates)
        drawn_target = int(rng.integers(n)) if n > 1 else 0
        pool = self.template_pool(templates)
        drawn_template = int(rng.integers(len(pool)))
        if target is not None and not (isinstance(target, (int, np.integer)) and 0 <= int(target) < n):
            raise ValueError(f"target must be an int in [0, {n}): task {self.name} has {n} candidate(s) "
                             f"{self.candidates} in this scene, got {target!r}")
        if template is not None and not (isinstance(template, (int, np.integer)) and 0 <= int(template) < len(pool)):
            raise ValueError(f"template must be an int in [0, {len(pool)}) for the {templates!r} templates of "
                             f"{self.name}, got {template!r}")
        self.target = drawn_target if target is None else int(target)
        index = drawn_template if template is None else int(template)
        self.instruction = pool[index].format(**self.candidates[self.target])
        return {"target": self.target, "templates": templates, "template": index}

    @abc.abstractmethod
    def privileged_state(self, physics: Physics) -> dict[str, Any]:
        """Ground-truth quantities the scripted expert plans with (positions in the base frame, m)."""

    # -- helpers for subclasses ------------------------------------------------------------------------------
    @staticmethod
    def pick_colors(rng: np.random.Generator, n: int) -> list[str]:
        names = list(COLORS)
        return [names[i] for i in rng.choice(len(names), size=n, replace=False)]

    @staticmethod
    def set_rgba(physics: Physics, geom: str, color: str) -> None:
        physics.model.geom(geom).rgba[:] = COLORS[color]

    @staticmethod
    def sample_positions(rng: np.random.Generator, n: int, min_dist: float, low=SPAWN_LOW, high=SPAWN_HIGH,
                         max_tries: int = 1000) -> list[np.ndarray]:
        """`n` xy positions in the box [low, high], pairwise at least `min_dist` apart (rejection sampling)."""
        out: list[np.ndarray] = []
        for _ in range(max_tries):
            p = rng.uniform(low, high)
            if all(np.linalg.norm(p - q) >= min_dist for q in out):
                out.append(p)
                if len(out) == n:
                    return out
        raise RuntimeError(f"could not place {n} objects {min_dist} m apart in {low}..{high}")

    @staticmethod
    def moved(physics: Physics, body: str, start) -> bool:
        """Whether `body` left its start position (xyz, m) by MOVED_XY horizontally or MOVED_Z upwards."""
        pos, start = physics.body_pos(body), np.asarray(start, float)
        return bool(np.linalg.norm(pos[:2] - start[:2]) > MOVED_XY or pos[2] > start[2] + MOVED_Z)

    @staticmethod
    def fingers_touch(physics: Physics, geom: str) -> bool:
        """Whether either finger touches `geom` (any of the finger collision geoms)."""
        model, data = physics.model, physics.data
        target = model.geom(geom).id
        fingers = physics.finger_body_ids
        for g1, g2 in zip(data.contact.geom1, data.contact.geom2):
            if g1 == target and model.geom_bodyid[g2] in fingers:
                return True
            if g2 == target and model.geom_bodyid[g1] in fingers:
                return True
        return False

"""Build the tabletop scene: a robot (`sim_envs.robots`) on a table, cameras, lights, task objects.

`xmls/tabletop.xml` is the table, lights and the `primary` camera; the robot's description loads it with the
robot under `robot_base` (`RobotDescription.load_spec`, which also simplifies the visual meshes); tasks then
add their objects through `SceneBuilder` (MjSpec) and the scene compiles to one `mujoco.MjModel`.

Changes to the shipped robot models, all made here with MjSpec so the original files stay untouched:
- gravity compensation on the arm and gripper links (real arm controllers compensate gravity, and position
  servos would otherwise sag by centimetres);
- finger pad contacts with condim 4 and a small torsional friction (see `SceneBuilder.tabletop`);
- a `grip_site` between the finger pads (the point the controller moves) and a `wrist` camera on the hand;
- the shipped models' marker sites moved out of the camera images.

Distractor pool: MuJoCo cannot add bodies after compiling, so every scene carries `N_DISTRACTORS` free
bodies (`add_distractor_pool`, shapes in `DISTRACTOR_SHAPES`) parked inside the opaque table leg, floating
(gravity compensated), touching nothing and hidden from every camera. Domain randomization moves some onto
the table per episode (`sim_envs.domain_randomization`); parked, they change neither images nor physics.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from sim_envs.robots import RobotDescription, get_robot
from sim_envs.robots.description import check_spec

logger = logging.getLogger(__name__)

GRIP_SITE = "grip_site"


@dataclass(frozen=True)
class DistractorShape:
    """One pool object: `size` is MuJoCo's geom size (box: half extents; cylinder: radius, half height)."""

    kind: str  # "box" | "cylinder"
    size: tuple[float, float, float]

    @property
    def half_height(self) -> float:
        return self.size[2] if self.kind == "box" else self.size[1]

    @property
    def footprint_radius(self) -> float:
        """Radius (m) of a circle that holds the footprint at any yaw."""
        return float(np.hypot(self.size[0], self.size[1])) if self.kind == "box" else self.size[0]


#: The distractor pool, one body each (`dr_distractor<i>`). Cubes, flat discs like plates and targets, and
#: anything taller than 6 cm are left out: cubes and plates are what instructions name, and the hand passes
#: about 9 cm above the table when the fingers grasp.
DISTRACTOR_SHAPES: tuple[DistractorShape, ...] = (
    DistractorShape("cylinder", (0.022, 0.03, 0.0)),  # can
    DistractorShape("box", (0.045, 0.012, 0.012)),  # bar
    DistractorShape("cylinder", (0.032, 0.01, 0.0)),  # puck
    DistractorShape("box", (0.035, 0.028, 0.008)),  # tile
)
N_DISTRACTORS = len(DISTRACTOR_SHAPES)
DISTRACTOR_PREFIX = "dr_distractor"
#: Parking spots: inside the table leg box (opaque, no contacts), 0.15 m apart.
DISTRACTOR_PARK = tuple((0.2 + 0.15 * i, 0.0, -0.4) for i in range(N_DISTRACTORS))


def lookat_quat(pos, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """Quaternion (w, x, y, z) of a MuJoCo camera at `pos` looking at `target` (cameras look along -z)."""
    pos, target, up = (np.asarray(v, float) for v in (pos, target, up))
    back = pos - target
    back /= np.linalg.norm(back)
    right = np.cross(up, back)
    right /= np.linalg.norm(right)
    cam_up = np.cross(back, right)
    mat = np.stack([right, cam_up, back], axis=1)
    import mujoco

    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, mat.ravel())
    return quat


@dataclass
class SceneBuilder:
    """The MjSpec of the tabletop plus helpers tasks use to add their objects."""

    spec: "object"  # mujoco.MjSpec

    @classmethod
    def tabletop(cls, robot: str | RobotDescription = "panda", visual_mesh_cell: float = 0.01) -> "SceneBuilder":
        """The table, `robot` and the cameras. `visual_mesh_cell` (m): mesh simplification, 0 = off."""
        robot = get_robot(robot)
        spec = robot.load_spec(visual_mesh_cell)
        check_spec(robot, spec)
        for body in spec.bodies:
            if body.name.startswith(robot.gravcomp_prefix):
                body.gravcomp = 1.0
        for body in robot.finger_bodies:
            for geom in spec.body(body).geoms:
                # The Panda's shipped pads use condim 6 with torsional friction 0.5 (m): a grasped cube then gets
                # huge spin-resisting forces and the simulation diverges. Sliding friction 1.
                geom.condim = 4
                geom.friction = [1.0, 0.005, 0.0001]
        for site in robot.hidden_sites:
            spec.site(site).group = 4
        hand = spec.body(robot.hand_body)
        hand.add_site(name=GRIP_SITE, pos=list(robot.grip_site_pos), quat=list(robot.grip_site_quat),
                      size=[0.005, 0, 0], rgba=[1, 0, 0, 0], group=4)
        wrist = robot.wrist_camera
        spec.body(wrist.body).add_camera(name="wrist", pos=list(wrist.pos), fovy=wrist.fovy,
                                         quat=lookat_quat(wrist.pos, wrist.lookat, up=wrist.up).tolist())
        cam, primary = spec.camera("primary"), robot.primary_camera
        cam.pos = list(primary.pos)
        cam.fovy = primary.fovy
        cam.quat = lookat_quat(primary.pos, primary.lookat, up=primary.up).tolist()
        return cls(spec)

    def add_box(self, name: str, pos, half_size, rgba, *, free: bool = True, mass: float | None = None,
                friction=(1.0, 0.005, 0.0001), parent=None):
        """Add a box body (free-floating by default) with one geom named `name`; returns the body."""
        import mujoco

        body = (parent or self.spec.worldbody).add_body(name=name, pos=list(pos))
        if free:
            body.add_freejoint(name=f"{name}_joint")
        geom = body.add_geom(name=name, type=mujoco.mjtGeom.mjGEOM_BOX, size=list(half_size), rgba=list(rgba),
                             friction=list(friction), condim=4)
        if mass is not None:
            geom.mass = mass
        return body

    def add_cylinder(self, name: str, pos, radius: float, half_height: float, rgba, *, free: bool = False,
                     mass: float | None = None, contact: bool = True, parent=None):
        """Add a cylinder body with one geom named `name` (static by default); returns the body."""
        import mujoco

        body = (parent or self.spec.worldbody).add_body(name=name, pos=list(pos))
        if free:
            body.add_freejoint(name=f"{name}_joint")
        geom = body.add_geom(name=name, type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[radius, half_height, 0],
                             rgba=list(rgba), condim=4)
        if not contact:
            geom.contype = 0
            geom.conaffinity = 0
        if mass is not None:
            geom.mass = mass
        return body

    def add_distractor_pool(self) -> None:
        """Add the parked distractor bodies (call after the task built its objects, so their ids stay put)."""
        import mujoco

        types = {"box": mujoco.mjtGeom.mjGEOM_BOX, "cylinder": mujoco.mjtGeom.mjGEOM_CYLINDER}
        for i, (shape, park) in enumerate(zip(DISTRACTOR_SHAPES, DISTRACTOR_PARK)):
            name = f"{DISTRACTOR_PREFIX}{i}"
            body = self.spec.worldbody.add_body(name=name, pos=list(park), gravcomp=1.0)
            body.add_freejoint(name=f"{name}_joint")
            body.add_geom(name=name, type=types[shape.kind], size=list(shape.size), rgba=[0.9, 0.9, 0.9, 1.0],
                          condim=4, mass=0.05)

    def compile(self):
        return self.spec.compile()

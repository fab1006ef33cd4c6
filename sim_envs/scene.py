"""Build the tabletop scene: the Franka Panda of gymnasium-robotics on a table, cameras, lights, task objects.

The robot model (`franka_assets/`: `assets.xml`, `chain.xml`, `actuator.xml` and the meshes) is the one that
gymnasium-robotics ships under Apache-2.0 (modified by Farama from github.com/vikashplus/franka, limits from
Franka's published constants). It is referenced from the installed package at run time; nothing is copied or
downloaded. `xmls/tabletop.xml` includes it; tasks then add their objects through `SceneBuilder` (MjSpec) and
the scene compiles to one `mujoco.MjModel`.

Changes to the shipped robot, all made here with MjSpec so the original files stay untouched:
- gravity compensation on the arm links (the real Panda's controller compensates gravity, and position
  servos would otherwise sag by centimetres);
- finger pad contacts with condim 4 and a small torsional friction (see `SceneBuilder.tabletop`);
- a `grip_site` between the finger pads (the point the controller moves) and a `wrist` camera on the hand;
- the visual meshes (136k triangles, 20-35 ms per 64 px frame on llvmpipe) are simplified by vertex
  clustering to ~16k triangles at load time (`visual_mesh_cell`, 0 keeps the originals). Collision meshes,
  and so the physics, are unchanged.

Distractor pool: MuJoCo cannot add bodies after compiling, so every scene carries `N_DISTRACTORS` free
bodies (`add_distractor_pool`, shapes in `DISTRACTOR_SHAPES`) parked inside the opaque table leg, floating
(gravity compensated), touching nothing and hidden from every camera. Domain randomization moves some onto
the table per episode (`sim_envs.domain_randomization`); parked, they change neither images nor physics.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import string
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

XML_DIR = Path(__file__).resolve().parent / "xmls"
ARM_JOINTS = tuple(f"robot:panda0_joint{i}" for i in range(1, 8))
FINGER_JOINTS = ("robot:panda0_finger_joint1", "robot:panda0_finger_joint2")
GRIP_SITE = "grip_site"
HAND_BODY = "panda0_link7"
#: Grip site position in the hand (link7) frame: between the finger pads.
GRIP_SITE_POS = (0.0, 0.0, 0.2254)
#: ... and orientation: the hand's frame (-45 deg about z of link7), so the fingers close along its y axis.
GRIP_SITE_QUAT = (0.9238795, 0.0, 0.0, -0.3826834)
#: Where the primary camera looks (world frame, metres).
PRIMARY_LOOKAT = (0.45, -0.04, 0.05)


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


def franka_assets_dir() -> Path:
    """The `franka_assets` folder inside the installed gymnasium-robotics (found without importing it)."""
    spec = importlib.util.find_spec("gymnasium_robotics")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "sim_envs needs the Franka Panda model shipped by gymnasium-robotics; install it with "
            "`pip install gymnasium-robotics==1.4.2` (or `pip install -e .[sim]`)"
        )
    path = Path(spec.submodule_search_locations[0]) / "envs" / "assets" / "kitchen_franka" / "franka_assets"
    for name in ("assets.xml", "chain.xml", "actuator.xml"):
        if not (path / name).is_file():
            raise FileNotFoundError(
                f"{path / name} is missing: this gymnasium-robotics version does not ship the kitchen Franka "
                "assets sim_envs was built for (tested with 1.4.2)"
            )
    return path


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


def read_stl(path: Path) -> np.ndarray:
    """Triangle corners (3 * n_triangles, 3) of a binary STL file."""
    raw = path.read_bytes()
    n = int(np.frombuffer(raw, np.uint32, 1, 80)[0])
    rec = np.frombuffer(raw, np.dtype([("n", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")]), n, 84)
    return rec["v"].reshape(-1, 3).astype(np.float64)


def cluster_decimate(corners: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """Vertex-clustering simplification (Rossignac & Borrel 1993): merge vertices per `cell`-sized voxel.

    Args:
        corners: (3 * T, 3) triangle corners.
        cell: voxel edge (m).
    Returns:
        vertices (V, 3) and faces (F, 3) int, degenerate and duplicate triangles removed.
    """
    keys = np.floor(corners / cell).astype(np.int64) + (1 << 10)
    flat = (keys[:, 0] << 42) + (keys[:, 1] << 21) + keys[:, 2]
    uniq, inv = np.unique(flat, return_inverse=True)
    inv = inv.ravel()
    sums = np.zeros((len(uniq), 3))
    np.add.at(sums, inv, corners)
    verts = sums / np.bincount(inv, minlength=len(uniq))[:, None]
    faces = inv.reshape(-1, 3)
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
    srt = np.sort(faces, axis=1)
    _, first = np.unique((srt[:, 0] << 42) + (srt[:, 1] << 21) + srt[:, 2], return_index=True)
    faces = faces[np.sort(first)]
    used, faces = np.unique(faces, return_inverse=True)
    return verts[used], faces.reshape(-1, 3)


@functools.lru_cache(maxsize=None)
def _simplified_visual_meshes(cell: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for path in sorted((franka_assets_dir() / "meshes" / "visual").glob("*.stl")):
        if path.stem == "finger":  # the finger visual uses a scaled collision mesh in assets.xml
            continue
        out[f"{path.stem}_viz"] = cluster_decimate(read_stl(path), cell)
    return out


@dataclass
class SceneBuilder:
    """The MjSpec of the tabletop plus helpers tasks use to add their objects."""

    spec: "object"  # mujoco.MjSpec

    @classmethod
    def tabletop(cls, visual_mesh_cell: float = 0.01) -> "SceneBuilder":
        """The table, the robot and the cameras. `visual_mesh_cell` (m): mesh simplification, 0 = off."""
        import mujoco

        text = (XML_DIR / "tabletop.xml").read_text()
        xml = string.Template(text).substitute(FRANKA_DIR=str(franka_assets_dir()))
        spec = mujoco.MjSpec.from_string(xml)
        if visual_mesh_cell > 0:
            for name, (verts, faces) in _simplified_visual_meshes(float(visual_mesh_cell)).items():
                mesh = spec.mesh(name)
                mesh.file = ""
                mesh.uservert = verts.ravel().tolist()
                mesh.userface = faces.ravel().tolist()
        for body in spec.bodies:
            if body.name.startswith("panda0"):
                body.gravcomp = 1.0
        for body in ("panda0_leftfinger", "panda0_rightfinger"):
            for geom in spec.body(body).geoms:
                # The shipped pads use condim 6 with torsional friction 0.5 (m): a grasped cube then gets
                # huge spin-resisting forces and the simulation diverges. Sliding friction stays at 1.
                geom.condim = 4
                geom.friction = [1.0, 0.005, 0.0001]
        spec.site("end_effector").group = 4  # the shipped site is drawn as a grey ball in the wrist view
        hand = spec.body(HAND_BODY)
        hand.add_site(name=GRIP_SITE, pos=list(GRIP_SITE_POS), quat=list(GRIP_SITE_QUAT), size=[0.005, 0, 0], rgba=[1, 0, 0, 0], group=4)
        # Wrist camera: on the hand, behind the fingers, looking along the gripper (+z of link7). The hand
        # is rotated -45 deg about z in link7, so the offset (x = -y) is perpendicular to the finger motion.
        off = 0.075 * np.array([0.7071, -0.7071, 0.0])
        cam_pos = off + np.array([0.0, 0.0, 0.12])
        look = np.array([0.0, 0.0, 0.35])
        # In link7 frame, "up" for the image is the direction away from the offset.
        hand.add_camera(name="wrist", pos=cam_pos.tolist(), quat=lookat_quat(cam_pos, look, up=-off).tolist(), fovy=75)
        cam = spec.camera("primary")
        cam.quat = lookat_quat(cam.pos, PRIMARY_LOOKAT).tolist()
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

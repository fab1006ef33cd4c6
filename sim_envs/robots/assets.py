"""Robot model files: found in installed packages (never imported, nothing downloaded), read and simplified.

`package_dir` locates a package's folder with `importlib.util.find_spec` (gymnasium-robotics and robosuite
are used only for the MJCF and mesh files they ship). `tabletop_spec` fills the tabletop template
(`sim_envs/xmls/tabletop.xml`). Visual meshes are simplified by vertex clustering at load time
(`cluster_decimate`, Rossignac & Borrel 1993): llvmpipe renders each triangle, and the shipped meshes have
10^5 of them; collision meshes, and so the physics, are never touched.
"""

from __future__ import annotations

import importlib.util
import string
from pathlib import Path

import numpy as np

XML_DIR = Path(__file__).resolve().parent.parent / "xmls"


def package_dir(package: str, install_hint: str) -> Path:
    """The folder of an installed package, found without importing it (ImportError with `install_hint`)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"sim_envs needs the robot model files shipped by {package}; {install_hint}")
    return Path(spec.submodule_search_locations[0])


def require_files(folder: Path, names, what: str) -> Path:
    """`folder`, after checking it holds `names` (FileNotFoundError saying which package version fits)."""
    for name in names:
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} is missing: {what}")
    return folder


def tabletop_spec(*, assets: str = "", meshdir: str = "", chain: str = "", actuators: str = ""):
    """`mujoco.MjSpec` of the tabletop with the robot's MJCF snippets (empty: the robot is attached later)."""
    import mujoco

    text = (XML_DIR / "tabletop.xml").read_text()
    xml = string.Template(text).substitute(ROBOT_ASSETS=assets, MESHDIR=meshdir, ROBOT_CHAIN=chain,
                                           ROBOT_ACTUATORS=actuators)
    return mujoco.MjSpec.from_string(xml)


def read_stl(path: Path) -> np.ndarray:
    """Triangle corners (3 * n_triangles, 3) of a binary STL file."""
    raw = path.read_bytes()
    n = int(np.frombuffer(raw, np.uint32, 1, 80)[0])
    rec = np.frombuffer(raw, np.dtype([("n", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")]), n, 84)
    return rec["v"].reshape(-1, 3).astype(np.float64)


def read_obj(path: Path) -> np.ndarray:
    """Triangle corners (3 * n_triangles, 3) of a Wavefront OBJ file (polygons split into fans)."""
    verts, corners = [], []
    with open(path) as f:
        for line in f:
            if line.startswith("v "):
                verts.append([float(x) for x in line.split()[1:4]])
            elif line.startswith("f "):
                idx = [int(tok.split("/")[0]) for tok in line.split()[1:]]
                corners.extend((idx[0], idx[i], idx[i + 1]) for i in range(1, len(idx) - 1))
    v = np.asarray(verts, np.float64)
    c = np.asarray(corners, np.int64).ravel()
    return v[np.where(c > 0, c - 1, c + len(v))]


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


def replace_meshes(spec, meshes: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Swap the named meshes of `spec` for (vertices, faces) given inline."""
    for name, (verts, faces) in meshes.items():
        mesh = spec.mesh(name)
        mesh.file = ""
        mesh.uservert = verts.ravel().tolist()
        mesh.userface = faces.ravel().tolist()

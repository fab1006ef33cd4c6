"""The registry table: every dataset we know, with its cameras, control rate, proprio layout and transform.

Image keys and proprio layouts follow OpenVLA's `prismatic/vla/datasets/rlds/oxe/configs.py`; control
rates the Open X-Embodiment dataset sheet. A row's extra `secondary` names the reference's second
third-person camera (`data.cameras=[secondary]` selects it). Proprio layouts name observation keys (raw or
made by the dataset's transform); None pads one zero column, as the reference does. `register_all()` is called by
`vla.data.oxe` on import (it only fills a dict).
"""

from __future__ import annotations

from vla.data.oxe.registry import DatasetSpec, register_dataset
from vla.data.oxe.transforms import TRANSFORMS

# name: (primary, wrist, hz, state_obs_keys, proprio_dim, transform name, extra kwargs)
_TABLE: dict[str, tuple] = {
    # --- oxe_magic_soup_plus_minus (OpenVLA 7B's mixture, 25 datasets) ---
    "fractal20220817_data": ("image", None, 3, ("base_pose_tool_reached", "gripper_closed"), 8, "fractal20220817_data", {}),
    "kuka": ("image", None, 10, ("clip_function_input/base_pose_tool_reached", "gripper_closed"), 8, "kuka", {}),
    "bridge_orig": ("image_0", None, 5, ("EEF_state", None, "gripper_state"), 8, "bridge_orig", {"secondary": "image_1"}),
    "taco_play": ("rgb_static", "rgb_gripper", 15, ("state_eef", None, "state_gripper"), 8, "taco_play", {
        "notes": "proprio gripper is robot_obs[7] (a joint), the reference's bug; see taco_play_fixed_proprio"}),
    "jaco_play": ("image", "image_wrist", 10, ("state_eef", None, "state_gripper"), 8, "jaco_play", {}),
    "berkeley_cable_routing": ("image", "wrist45_image", 10, ("robot_state", None), 8, "berkeley_cable_routing",
                               {"secondary": "top_image"}),
    "roboturk": ("front_rgb", None, 10, (None,) * 8, 8, "roboturk", {}),
    "viola": ("agentview_rgb", "eye_in_hand_rgb", 20, ("joint_states", "gripper_states"), 8, "viola", {}),
    "berkeley_autolab_ur5": ("image", "hand_image", 5, ("state",), 8, "berkeley_autolab_ur5", {}),
    "toto": ("image", None, 30, ("state", None), 8, "toto", {}),
    "stanford_hydra_dataset_converted_externally_to_rlds": (
        "image", "wrist_image", 10, ("eef_state", None, "gripper_state"), 8,
        "stanford_hydra_dataset_converted_externally_to_rlds", {}),
    "austin_buds_dataset_converted_externally_to_rlds": (
        "image", "wrist_image", 20, ("state",), 8, "austin_buds_dataset_converted_externally_to_rlds", {}),
    "nyu_franka_play_dataset_converted_externally_to_rlds": (
        "image", None, 3, ("eef_state", None, None), 8, "nyu_franka_play_dataset_converted_externally_to_rlds",
        {"secondary": "image_additional_view"}),
    "furniture_bench_dataset_converted_externally_to_rlds": (
        "image", "wrist_image", 10, ("state",), 8, "furniture_bench_dataset_converted_externally_to_rlds", {}),
    "ucsd_kitchen_dataset_converted_externally_to_rlds": (
        "image", None, 2, ("joint_state", None), 8, "ucsd_kitchen_dataset_converted_externally_to_rlds", {}),
    "austin_sailor_dataset_converted_externally_to_rlds": (
        "image", "wrist_image", 20, ("state",), 8, "austin_sailor_dataset_converted_externally_to_rlds", {}),
    "austin_sirius_dataset_converted_externally_to_rlds": (
        "image", "wrist_image", 20, ("state",), 8, "austin_sirius_dataset_converted_externally_to_rlds", {}),
    "dlr_edan_shared_control_converted_externally_to_rlds": (
        "image", None, 5, ("state", None), 8, "dlr_edan_shared_control_converted_externally_to_rlds", {}),
    "iamlab_cmu_pickup_insert_converted_externally_to_rlds": (
        "image", "wrist_image", 20, ("joint_state", "gripper_state"), 8,
        "iamlab_cmu_pickup_insert_converted_externally_to_rlds", {}),
    "utaustin_mutex": ("image", "wrist_image", 20, ("state",), 8, "utaustin_mutex", {}),
    "berkeley_fanuc_manipulation": (
        "image", "wrist_image", 10, ("joint_state", None, "gripper_state"), 8, "berkeley_fanuc_manipulation", {}),
    "cmu_stretch": ("image", None, 10, ("eef_state", None, "gripper_state"), 8, "cmu_stretch", {}),
    "bc_z": ("image", None, 10, ("present/xyz", "present/axis_angle", None, "present/sensed_close"), 8, "bc_z", {
        "version": "0.1.0", "notes": "use version 0.1.0: later releases are broken (OpenVLA's note)"}),
    "fmb_dataset": ("image_side_1", "image_wrist_1", 10, ("proprio",), None, "fmb_dataset", {"secondary": "image_side_2"}),
    "dobbe": ("wrist_image", None, 3.75, ("proprio",), None, "dobbe", {
        "notes": "the only camera is the gripper camera; the reference uses it as the primary image"}),
    # --- Bridge V2 under its directory name (the shared test data is `bridge_dataset/1.0.0`) ---
    "bridge_dataset": ("image_0", None, 5, ("EEF_state", None, "gripper_state"), 8, "bridge_orig",
                       {"secondary": "image_1"}),
    # --- DROID ---
    "droid": ("exterior_image_1_left", "wrist_image_left", 15, ("proprio",), 7, "droid", {
        "secondary": "exterior_image_2_left", "filter_zero_actions": True,
        "notes": "primary is always exterior_image_1_left, secondary exterior_image_2_left (the reference swaps "
                 "the two at random per trajectory)"}),
    # --- LIBERO (OpenVLA's regenerated RLDS sets). Their frames are stored upright: robosuite renders them
    # upside down and OpenVLA's HDF5 -> RLDS conversion rotates them by 180 degrees when writing
    # (experiments/robot/libero/regenerate_libero_dataset.py); its loader reads them as they are. ---
    **{
        f"libero_{suite}_no_noops": ("image", "wrist_image", 20, ("EEF_state", None, "gripper_state"), 9, "libero",
                                     {"notes": "frames stored upright (rotated when written); an env's raw "
                                               "frames need the 180-degree rotation at evaluation time"})
        for suite in ("spatial", "object", "goal", "10")
    },
    # --- our own data: any dataset written by vla.data.rlds_writer.RLDSWriter ---
    "vla_episodes": ("image", "wrist_image", 10, ("state",), None, "vla_episodes", {
        "optional_cameras": ("wrist",),
        "notes": "generic spec for RLDSWriter output; control_hz is the sim_envs default (10 Hz)"}),
    "taco_play_fixed_proprio": ("rgb_static", "rgb_gripper", 15, ("state_eef", None, "state_gripper"), 8,
                                "taco_play_fixed_proprio", {"tfds_name": "taco_play",
                                                            "notes": "taco_play with robot_obs[6] (gripper width) as gripper state"}),
}

#: Registered so that their names resolve and the error says why they cannot be used as is.
_NON_EEF: dict[str, tuple[str, str | None, str | None, float]] = {
    "berkeley_mvp_converted_externally_to_rlds": ("joint_pos", None, "hand_image", 5),
    "berkeley_rpt_converted_externally_to_rlds": ("joint_pos", None, "hand_image", 30),
}


def register_all() -> None:
    """Fill the registry from the table above (idempotent)."""
    for name, (primary, wrist, hz, state_keys, pdim, tname, extra) in _TABLE.items():
        extra = dict(extra)
        cameras = {"primary": primary, "secondary": extra.pop("secondary", None), "wrist": wrist}
        register_dataset(
            DatasetSpec(name=name, image_keys=cameras, control_hz=hz, state_obs_keys=state_keys, proprio_dim=pdim,
                        transform=TRANSFORMS[tname], **extra),
            overwrite=True,
        )
    for name, (encoding, primary, wrist, hz) in _NON_EEF.items():
        register_dataset(
            DatasetSpec(name=name, image_keys={"primary": primary, "wrist": wrist}, control_hz=hz, state_obs_keys=(),
                        proprio_dim=None, transform=None, action_encoding=encoding),
            overwrite=True,
        )

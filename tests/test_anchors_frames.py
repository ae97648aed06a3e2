"""Frame conversions of anchor quaternions, checked numerically against the physics (no database).

The test builds its own rotation matrices and axis mappings from the written conventions, so it
does not reuse the module's matrices:
* GeoPose world: ENU (x East, y North, z Up); body: x right, y front, z up.
* ARCore/ARKit world: East-Up-South; body (glTF / USDZ as we author it): x left, y up, z front.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tourapi.domain.anchors.frames import Frame, from_frame, to_frame

RNG = np.random.default_rng(20261129)
RANDOM_QUATS = [tuple(q / np.linalg.norm(q)) for q in RNG.normal(size=(200, 4))]

# A body axis of a glTF/USDZ asset, named, and written in each convention.
ASSET_AXES = {  # name: (target body coordinates, canonical body coordinates (right, front, up))
    "left": ((1.0, 0.0, 0.0), (-1.0, 0.0, 0.0)),
    "up": ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    "front": ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0)),
}


def rotation_matrix(q) -> np.ndarray:
    """The textbook matrix of a unit quaternion (x, y, z, w), active rotation."""
    x, y, z, w = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def enu_to_eus(v) -> np.ndarray:
    east, north, up = v
    return np.array([east, up, -north])


def eus_to_enu(v) -> np.ndarray:
    east, up, south = v
    return np.array([east, -south, up])


@pytest.mark.parametrize("frame", [Frame.ARCORE, Frame.ARKIT])
def test_both_paths_give_the_same_physical_direction(frame: Frame) -> None:
    for q in RANDOM_QUATS:
        converted = to_frame(q, frame)
        assert math.isclose(float(np.linalg.norm(converted)), 1.0, abs_tol=1e-12)
        for target_body, canonical_body in ASSET_AXES.values():
            # Path 1: the canonical pose rotates the axis in ENU, then ENU is written in EUS.
            via_geopose = enu_to_eus(rotation_matrix(q) @ np.array(canonical_body))
            # Path 2: the converted quaternion rotates the asset's own axis in EUS.
            via_platform = rotation_matrix(converted) @ np.array(target_body)
            np.testing.assert_allclose(via_platform, via_geopose, atol=1e-12)


def test_arcore_and_arkit_agree_on_every_direction() -> None:
    for q in RANDOM_QUATS:
        core, kit = rotation_matrix(to_frame(q, Frame.ARCORE)), rotation_matrix(to_frame(q, Frame.ARKIT))
        for target_body, _ in ASSET_AXES.values():
            np.testing.assert_allclose(
                eus_to_enu(core @ np.array(target_body)), eus_to_enu(kit @ np.array(target_body)), atol=1e-12
            )


def _facing(azimuth_deg: float) -> tuple[float, float, float, float]:
    """Canonical quaternion of upright content facing an azimuth (clockwise from North)."""
    half = math.radians(-azimuth_deg) / 2
    return (0.0, 0.0, math.sin(half), math.cos(half))


@pytest.mark.parametrize(
    "azimuth,front_eus,left_eus",
    [
        (0, (0, 0, -1), (-1, 0, 0)),  # faces North: front = -South, its left hand points West
        (90, (1, 0, 0), (0, 0, -1)),  # faces East: left hand points North
        (180, (0, 0, 1), (1, 0, 0)),  # faces South: left hand points East
        (270, (-1, 0, 0), (0, 0, 1)),  # faces West: left hand points South
    ],
)
@pytest.mark.parametrize("frame", [Frame.ARCORE, Frame.ARKIT])
def test_known_headings(frame: Frame, azimuth: float, front_eus, left_eus) -> None:
    matrix = rotation_matrix(to_frame(_facing(azimuth), frame))
    np.testing.assert_allclose(matrix @ [0, 0, 1], front_eus, atol=1e-12)  # glTF/USDZ front is +Z
    np.testing.assert_allclose(matrix @ [1, 0, 0], left_eus, atol=1e-12)
    np.testing.assert_allclose(matrix @ [0, 1, 0], [0, 1, 0], atol=1e-12)  # stays upright


def test_identity_geopose_is_a_half_turn_about_up_on_the_platforms() -> None:
    # The platforms' identity faces the asset South (+Z = South); ours faces North.
    x, y, z, w = to_frame((0.0, 0.0, 0.0, 1.0), Frame.ARCORE)
    assert math.isclose(abs(y), 1.0, abs_tol=1e-12) and abs(x) + abs(z) + abs(w) < 1e-12


def test_enu_is_unchanged_and_conversions_round_trip() -> None:
    for q in RANDOM_QUATS[:50]:
        assert to_frame(q, Frame.ENU) == q
        for frame in (Frame.ARCORE, Frame.ARKIT):
            back = np.array(from_frame(to_frame(q, frame), frame))
            sign = 1.0 if float(np.dot(back, q)) >= 0 else -1.0
            np.testing.assert_allclose(sign * back, q, atol=1e-12)

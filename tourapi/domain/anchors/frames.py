"""Orientation conventions of AR anchors and conversions to the AR platforms' frames.

Canonical form (stored and served by default): OGC GeoPose 1.0 Basic-Quaternion
-------------------------------------------------------------------------------
* World frame: the local tangent plane at the anchor's position, East-North-Up (ENU):
  x = East, y = North, z = Up.
* Quaternion ``{x, y, z, w}``: Hamilton convention, scalar LAST, unit length. It is the active
  rotation that takes a vector's coordinates in the anchor's body frame to ENU:
  ``v_enu = q ⊗ v_body ⊗ q⁻¹``.
* Body frame (the content's own axes, our convention): x = the content's right, y = its front
  (the direction it faces, towards a viewer standing in front of it), z = its up.
  So the identity quaternion stands the content upright facing North (its right hand East).

Target frames (``?frame=arcore`` / ``?frame=arkit``)
---------------------------------------------------
* ARCore Geospatial (``Earth.createAnchor`` / ``resolveAnchorOnTerrainAsync`` /
  ``resolveAnchorOnRooftopAsync``) takes "the quaternion from the anchor to East-Up-South": world
  x = East, y = Up, z = South. Content is a glTF 2.0 asset attached to the anchor, so the body
  frame is glTF's: +Y up, +Z front (the front of an asset faces +Z), +X = the asset's left.
* ARKit ``ARGeoAnchor``: the anchor's local frame is also x = East, y = Up, z = South (geo
  tracking runs with gravity-and-heading alignment: y up, -z North). Content is a USDZ asset; we
  require USDZ assets authored Y-up, front facing +Z, metersPerUnit 1 (what Reality Converter
  produces from a glTF), so its body frame equals glTF's.
  => ARCore and ARKit use the same world basis and, with that asset convention, the same body
  basis: both conversions give the same numbers. Both parameters are kept so that a different
  asset convention on one platform changes one line here and nothing in the clients' requests.

The conversion (a change of basis on both sides of the rotation)
----------------------------------------------------------------
Let ``R`` be the canonical rotation matrix (body → ENU), ``W`` the matrix taking ENU
coordinates to the target world coordinates and ``M`` the matrix taking target body coordinates
to canonical body coordinates. For a body vector with target coordinates ``b``:
``v_target = W · v_enu = W · R · (M · b)``, so ``R' = W · R · M`` and, as quaternions,
``q' = w ⊗ q ⊗ m`` (``w``, ``m`` the unit quaternions of ``W`` and ``M``).
The left factor changes the world basis, the right factor the body basis. The inverse is
``q = w⁻¹ ⊗ q' ⊗ m⁻¹``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

Quat = tuple[float, float, float, float]  # (x, y, z, w), scalar last
Matrix = tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]


class Frame(StrEnum):
    ENU = "enu"  # canonical GeoPose
    ARCORE = "arcore"
    ARKIT = "arkit"


def q_mul(a: Quat, b: Quat) -> Quat:
    """Hamilton product a ⊗ b, both scalar-last."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return (
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    )


def q_conj(q: Quat) -> Quat:
    return (-q[0], -q[1], -q[2], q[3])


def q_rotate(q: Quat, v: tuple[float, float, float]) -> tuple[float, float, float]:
    """q ⊗ (v, 0) ⊗ q⁻¹ for a unit q."""
    x, y, z, _ = q_mul(q_mul(q, (v[0], v[1], v[2], 0.0)), q_conj(q))
    return (x, y, z)


def q_from_matrix(m: Matrix) -> Quat:
    """The unit quaternion of a proper rotation matrix (Shepperd's method, numerically stable)."""
    (m00, m01, m02), (m10, m11, m12), (m20, m21, m22) = m
    trace = m00 + m11 + m22
    if trace > 0:
        s = 2.0 * math.sqrt(1.0 + trace)
        q = ((m21 - m12) / s, (m02 - m20) / s, (m10 - m01) / s, 0.25 * s)
    elif m00 >= m11 and m00 >= m22:
        s = 2.0 * math.sqrt(1.0 + m00 - m11 - m22)
        q = (0.25 * s, (m01 + m10) / s, (m02 + m20) / s, (m21 - m12) / s)
    elif m11 >= m22:
        s = 2.0 * math.sqrt(1.0 + m11 - m00 - m22)
        q = ((m01 + m10) / s, 0.25 * s, (m12 + m21) / s, (m02 - m20) / s)
    else:
        s = 2.0 * math.sqrt(1.0 + m22 - m00 - m11)
        q = ((m02 + m20) / s, (m12 + m21) / s, 0.25 * s, (m10 - m01) / s)
    n = math.sqrt(sum(c * c for c in q))
    return (q[0] / n, q[1] / n, q[2] / n, q[3] / n)


@dataclass(frozen=True, slots=True)
class TargetFrame:
    """``world``: rows express the target world axes in ENU; ``body``: columns express the target
    body axes in canonical body coordinates (right, front, up)."""

    world: Matrix
    body: Matrix

    @property
    def left(self) -> Quat:
        return q_from_matrix(self.world)

    @property
    def right(self) -> Quat:
        return q_from_matrix(self.body)


# ENU (E, N, U) -> East-Up-South (E, U, -N): row i is target axis i written in ENU.
ENU_TO_EUS: Matrix = (
    (1.0, 0.0, 0.0),  # x' = East
    (0.0, 0.0, 1.0),  # y' = Up
    (0.0, -1.0, 0.0),  # z' = South = -North
)
# glTF / USDZ body (X = left, Y = up, Z = front) -> canonical body (right, front, up):
# right = -X, front = Z, up = Y. Column j is glTF axis j written in canonical body coordinates.
GLTF_TO_CANONICAL_BODY: Matrix = (
    (-1.0, 0.0, 0.0),  # right = -X
    (0.0, 0.0, 1.0),  # front = Z
    (0.0, 1.0, 0.0),  # up = Y
)
USDZ_TO_CANONICAL_BODY: Matrix = GLTF_TO_CANONICAL_BODY  # our USDZ authoring rule: Y up, +Z front

TARGETS: dict[Frame, TargetFrame] = {
    Frame.ARCORE: TargetFrame(world=ENU_TO_EUS, body=GLTF_TO_CANONICAL_BODY),
    Frame.ARKIT: TargetFrame(world=ENU_TO_EUS, body=USDZ_TO_CANONICAL_BODY),
}


def to_frame(q: Quat, frame: Frame) -> Quat:
    """Convert a canonical (GeoPose ENU) quaternion to ``frame``: q' = w ⊗ q ⊗ m."""
    if frame is Frame.ENU:
        return q
    target = TARGETS[frame]
    return q_mul(q_mul(target.left, q), target.right)


def from_frame(q: Quat, frame: Frame) -> Quat:
    """The inverse of :func:`to_frame`: q = w⁻¹ ⊗ q' ⊗ m⁻¹."""
    if frame is Frame.ENU:
        return q
    target = TARGETS[frame]
    return q_mul(q_mul(q_conj(target.left), q), q_conj(target.right))

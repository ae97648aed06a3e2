"""Signed checkpoint tokens and manual codes.

Token bytes: ``kid (2 bytes) | checkpoint id (varint) | version (varint) | HMAC-SHA256 (first 10 bytes)``,
written as unpadded uppercase RFC 4648 base32 (23 characters for small ids). Uppercase base32 uses only
QR "alphanumeric" characters, so a poster URL ``https://tour.example.cn/c/<token>`` fits in a version-4
QR code at error-correction level Q.

The MAC covers every byte before it, under a key derived per kid for the ``qr`` purpose
(tourapi.security.keys), so a token cannot be forged or altered without the server secret, and keys can
be rotated (several kids verify) and retired (refused by name) without reprinting everything at once.
Only the canonical encoding is accepted (case aside): a string that decodes to the same bytes but is
spelled differently (non-zero padding bits, overlong varints) is refused as altered.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from tourapi.security.keys import Keyring, UnknownKey

PURPOSE = "qr"
KID_BYTES = 2
MAC_BYTES = 10
_DOMAIN = b"tourapi/checkpoint/1:"
_TOKEN = re.compile(r"^[A-Z2-7]{20,64}$")
_MAX_VARINT_BYTES = 5  # ids and versions stay below 2**35

# Manual codes: Crockford-style, without 0/O, 1/I/L and U (no look-alikes, no accidental words).
MANUAL_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
MANUAL_LENGTH = 6


class TokenError(Exception):
    """A token that cannot be accepted; ``slug`` is the problem type, ``message`` is for people."""

    def __init__(self, slug: str, message: str) -> None:
        super().__init__(message)
        self.slug = slug
        self.message = message


@dataclass(frozen=True, slots=True)
class CheckpointRef:
    kid: str
    checkpoint_id: int
    version: int


def _varint(value: int) -> bytes:
    if value < 0:
        raise ValueError("varints are unsigned")
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    for n in range(_MAX_VARINT_BYTES):
        if pos + n >= len(data):
            raise TokenError("invalid-token", "the code is truncated")
        byte = data[pos + n]
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            if byte == 0 and n > 0:
                raise TokenError("invalid-token", "the code is not in canonical form")
            return value, pos + n + 1
    raise TokenError("invalid-token", "the code is malformed")


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=")


def _kid_bytes(kid: str) -> bytes:
    try:
        raw = bytes.fromhex(kid)
    except ValueError:
        raw = b""
    if len(raw) != KID_BYTES:
        raise ValueError(f"QR signing key ids must be {2 * KID_BYTES} hex digits, got {kid!r}")
    return raw


def _mac(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, _DOMAIN + body, hashlib.sha256).digest()[:MAC_BYTES]


def sign(kid: str, key: bytes, checkpoint_id: int, version: int) -> str:
    body = _kid_bytes(kid) + _varint(checkpoint_id) + _varint(version)
    return _b32(body + _mac(key, body))


def sign_with(keyring: Keyring, checkpoint_id: int, version: int) -> str:
    kid, key = keyring.signer(PURPOSE)
    return sign(kid, key, checkpoint_id, version)


def parse(token: str) -> tuple[CheckpointRef, bytes, bytes]:
    """Decode without verifying: (reference, signed body, mac). Raises TokenError("invalid-token")."""
    token = token.strip().upper()  # case carries no information; a hand-typed or lowercased URL still works
    if not _TOKEN.match(token):
        raise TokenError("invalid-token", "this is not a check-in code of this service")
    try:
        raw = base64.b32decode(token + "=" * (-len(token) % 8))
    except ValueError:
        raise TokenError("invalid-token", "this is not a check-in code of this service") from None
    if _b32(raw) != token:
        raise TokenError("invalid-token", "the code has been altered")
    if len(raw) < KID_BYTES + 2 + MAC_BYTES:
        raise TokenError("invalid-token", "the code is truncated")
    checkpoint_id, pos = _read_varint(raw, KID_BYTES)
    version, pos = _read_varint(raw, pos)
    if len(raw) - pos != MAC_BYTES:
        raise TokenError("invalid-token", "the code is malformed")
    ref = CheckpointRef(raw[:KID_BYTES].hex(), checkpoint_id, version)
    return ref, raw[:pos], raw[pos:]


def verify(token: str, keyring: Keyring) -> CheckpointRef:
    """The checkpoint and version a genuine token names, or TokenError with the reason.

    A token signed with a retired key is reported as ``retired-key`` only when its signature is genuine
    (the key material of any kid can still be derived); a bad signature is ``invalid-token`` either way.
    """
    ref, body, mac = parse(token)
    try:
        key = keyring.verifier(PURPOSE, ref.kid)
    except UnknownKey as exc:
        if not exc.retired:
            raise TokenError(
                "unknown-key", "this code was signed with a key this service does not know"
            ) from None
        if not hmac.compare_digest(_mac(keyring.material(PURPOSE, ref.kid), body), mac):
            raise TokenError("invalid-token", "the code's signature is not valid") from None
        raise TokenError(
            "retired-key", "this poster's signing key was retired; ask staff for a new poster"
        ) from None
    if not hmac.compare_digest(_mac(key, body), mac):
        raise TokenError("invalid-token", "the code's signature is not valid")
    return ref


# ---- manual codes --------------------------------------------------------------------------------------------


def new_manual_code() -> str:
    return "".join(secrets.choice(MANUAL_ALPHABET) for _ in range(MANUAL_LENGTH))


def normalise_manual_code(value: str) -> str | None:
    """Uppercase without separators, or None if it cannot be a manual code."""
    code = re.sub(r"[\s\-]", "", value).upper()
    if len(code) != MANUAL_LENGTH or any(c not in MANUAL_ALPHABET for c in code):
        return None
    return code


def display_manual_code(code: str) -> str:
    """``ABC-DEF``: easier to read aloud and type."""
    half = len(code) // 2
    return f"{code[:half]}-{code[half:]}"

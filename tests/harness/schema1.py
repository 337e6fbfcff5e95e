"""A signed Docker schema 1 manifest, as a registry that still holds one serves it."""

from __future__ import annotations

import base64
import hashlib
import json

SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
UNSIGNED = "application/vnd.docker.distribution.manifest.v1+json"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed_schema1(name: str, tag: str) -> tuple[bytes, str]:
    """(the signed bytes, the registry's digest of them): the digest is over the payload
    without the signatures (libtrust's formatLength/formatTail), so the bytes never hash to it."""
    payload = json.dumps(
        {
            "schemaVersion": 1,
            "name": name,
            "tag": tag,
            "architecture": "amd64",
            "fsLayers": [{"blobSum": "sha256:" + "5" * 64}],
            "history": [{"v1Compatibility": '{"id":"e45a5af57b00"}'}],
        },
        indent=3,
    ).encode()
    protected = _b64(
        json.dumps({"formatLength": len(payload) - 2, "formatTail": _b64(payload[-2:])}).encode()
    )
    signature = {
        "header": {"jwk": {"crv": "P-256", "kid": "K", "kty": "EC", "x": "x", "y": "y"}},
        "signature": _b64(b"not-a-real-signature"),
        "protected": protected,
    }
    signatures = json.dumps([signature], indent=3).replace("\n", "\n   ")
    signed = payload[:-2] + f',\n   "signatures": {signatures}\n}}'.encode()
    return signed, "sha256:" + hashlib.sha256(payload).hexdigest()

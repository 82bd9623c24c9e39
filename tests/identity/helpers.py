"""MFA test helpers: a TOTP clock, and a software WebAuthn authenticator built with `cryptography`
(ES256 key, "none" attestation) that answers the server's real options like a security key."""

import hashlib
import json
import os
from contextlib import contextmanager
from types import SimpleNamespace
from unittest import mock

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from django_otp.oath import TOTP
from webauthn.helpers import bytes_to_base64url

from tests.factories import PASSWORD

T0 = 1_900_000_020.0  # a fixed moment for TOTP codes: tests never depend on the real clock


class TotpClock:
    """django-otp's TOTP clock, moved by hand."""

    def __init__(self):
        self.now = T0

    def advance(self, seconds: float) -> None:
        self.now += seconds


@contextmanager
def totp_clock():
    clock = TotpClock()
    fake = SimpleNamespace(time=lambda: clock.now)
    with mock.patch("django_otp.plugins.otp_totp.models.time", fake), mock.patch("django_otp.oath.time", fake):
        yield clock


def totp_code(device, at: float) -> str:
    totp = TOTP(device.bin_key, step=device.step, t0=device.t0, digits=device.digits)
    totp.time = at
    return f"{totp.token():0{device.digits}d}"


def password_login(client, email, password=PASSWORD, ip="10.0.0.1"):
    return client.post("/login/", {"username": email, "password": password}, REMOTE_ADDR=ip)


class SoftAuthenticator:
    """A security key in software: registration ("none" attestation) and assertions (ES256)."""

    def __init__(self, origin="http://testserver", rp_id="testserver"):
        self.origin, self.rp_id = origin, rp_id
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(16)
        self.sign_count = 0

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})

    def _auth_data(self, flags: int, attested: bool = False) -> bytes:
        data = hashlib.sha256(self.rp_id.encode()).digest() + bytes([flags]) + self.sign_count.to_bytes(4, "big")
        if attested:
            data += bytes(16) + len(self.credential_id).to_bytes(2, "big") + self.credential_id + self._cose_key()
        return data

    def _client_data(self, kind: str, challenge: str, origin: str | None = None) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin or self.origin, "crossOrigin": False}
        ).encode()

    def create(self, options: dict) -> dict:
        client_data = self._client_data("webauthn.create", options["challenge"])
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": self._auth_data(0x41, attested=True)})
        raw_id = bytes_to_base64url(self.credential_id)
        return {
            "id": raw_id,
            "rawId": raw_id,
            "type": "public-key",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": bytes_to_base64url(client_data),
                "attestationObject": bytes_to_base64url(attestation),
            },
        }

    def get(self, options: dict, *, origin: str | None = None, signing_key=None) -> dict:
        self.sign_count += 1
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        auth_data = self._auth_data(0x01)
        signature = (signing_key or self.key).sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        raw_id = bytes_to_base64url(self.credential_id)
        return {
            "id": raw_id,
            "rawId": raw_id,
            "type": "public-key",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": bytes_to_base64url(client_data),
                "authenticatorData": bytes_to_base64url(auth_data),
                "signature": bytes_to_base64url(signature),
                "userHandle": None,
            },
        }

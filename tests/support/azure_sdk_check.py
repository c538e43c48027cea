#!/usr/bin/env python3
"""Independent client for the Azure Key Vault fake: Azure's own Python SDK
(azure-keyvault-keys + azure-identity). Proves the fake speaks the wire format
the real SDK expects, and cross-checks ksec's `azure_kv` stanza.

Usage: azure_sdk_check.py VAULT_URL TENANT CLIENT_ID SECRET KEY_NAME KEY_VERSION KSEC_ENC EXPECTED_HEX
Prints JSON: {"ksec_enc_opened": bool, "sdk_roundtrip": bool, "wrap_roundtrip": bool,
              "local_enc": <b64url of RSA-OAEP-256 made locally from the JWK>, "local_plain_hex": ...}
"""
import base64
import json
import os
import sys

from azure.identity import ClientSecretCredential
from azure.keyvault.keys import KeyClient
from azure.keyvault.keys.crypto import CryptographyClient, EncryptionAlgorithm, KeyWrapAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

url, tenant, client_id, secret, name, version, ksec_enc, expected_hex = sys.argv[1:9]


def unb64u(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


cred = ClientSecretCredential(tenant, client_id, secret, authority=url, disable_instance_discovery=True)
keys = KeyClient(url, cred, verify_challenge_resource=False)
key = keys.get_key(name, version)
assert key.properties.version == version, (key.properties.version, version)
assert key.key_type == "RSA"

crypto = CryptographyClient(key.id, cred, verify_challenge_resource=False)
# 1. ksec's enc decrypts with the SDK (remote decrypt, RSA-OAEP-256).
opened = crypto.decrypt(EncryptionAlgorithm.rsa_oaep_256, unb64u(ksec_enc)).plaintext
# 2. SDK round trip on a key the SDK creates itself.
k2 = keys.create_rsa_key("py-created", size=2048)
c2 = CryptographyClient(k2, cred, verify_challenge_resource=False)
pt = os.urandom(32)
rt = c2.decrypt(EncryptionAlgorithm.rsa_oaep_256, c2.encrypt(EncryptionAlgorithm.rsa_oaep_256, pt).ciphertext).plaintext
wr = c2.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, c2.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, pt).encrypted_key).key
# 3. Encrypt locally from the published JWK (n, e), independent of the fake's encrypt.
n = int.from_bytes(key.key.n, "big")
e = int.from_bytes(key.key.e, "big")
pub = rsa.RSAPublicNumbers(e, n).public_key()
local_plain = os.urandom(32)
local = pub.encrypt(local_plain, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
print(json.dumps({
    "ksec_enc_opened": opened.hex() == expected_hex,
    "sdk_roundtrip": rt == pt,
    "wrap_roundtrip": wr == pt,
    "local_enc": base64.urlsafe_b64encode(local).rstrip(b"=").decode(),
    "local_plain_hex": local_plain.hex(),
}))

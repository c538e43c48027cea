#!/usr/bin/env python3
"""Checks the GCP fake and ksec's gcp_kms stanzas with Google's own Python
client (google-cloud-kms, REST transport, google-auth service-account
credentials against the fake's token endpoint).

Usage: gcp_sdk_check.py ENDPOINT SA_JSON RESOURCE_ID KSEC_ENC PLAIN_HEX
Prints JSON: ksec_enc_opened, sdk_roundtrip, sdk_enc (a stanza enc made by
Google's client for PLAIN_HEX, for ksec to open).
"""
import base64
import json
import sys

from google.api_core.client_options import ClientOptions
from google.cloud import kms
from google.oauth2 import service_account

endpoint, sa, rid, enc, plain_hex = sys.argv[1:6]
creds = service_account.Credentials.from_service_account_file(
    sa, scopes=["https://www.googleapis.com/auth/cloud-platform"]
)
c = kms.KeyManagementServiceClient(
    credentials=creds, transport="rest", client_options=ClientOptions(api_endpoint=endpoint)
)
plain = bytes.fromhex(plain_hex)
opened = c.decrypt(request={"name": rid, "ciphertext": base64.b64decode(enc)}).plaintext
r = c.encrypt(request={"name": rid, "plaintext": plain})
back = c.decrypt(request={"name": rid, "ciphertext": r.ciphertext}).plaintext
print(json.dumps({
    "ksec_enc_opened": opened == plain,
    "sdk_roundtrip": back == plain and r.name.startswith(rid + "/cryptoKeyVersions/"),
    "sdk_enc": base64.b64encode(r.ciphertext).decode(),
}))

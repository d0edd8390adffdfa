"""Python's authlib, unchanged, against a running `jeton serve`: the client
credentials grant by client_secret_basic and client_secret_post, the token
used on the API, introspection and revocation. Run by oauth.rs."""

import os

from authlib.integrations.requests_client import OAuth2Session

URL = os.environ["JETON_URL"]
CLIENT_ID = os.environ["JETON_CLIENT_ID"]
SECRET = os.environ["JETON_CLIENT_SECRET"]

metadata = __import__("requests").get(f"{URL}/.well-known/oauth-authorization-server").json()
assert metadata["issuer"] == URL, metadata
token_endpoint = metadata["token_endpoint"]

for method in ("client_secret_basic", "client_secret_post"):
    session = OAuth2Session(CLIENT_ID, SECRET, token_endpoint_auth_method=method, scope="products:read")
    token = session.fetch_token(token_endpoint, grant_type="client_credentials")
    assert token["token_type"] == "Bearer", token
    assert token["access_token"].startswith("jt_at_"), token
    assert token["scope"] == "products:read", token
    assert token["expires_in"] == 900, token
    # The session sends it as a bearer token.
    products = session.get(f"{URL}/api/v1/products")
    assert products.status_code == 200, products.text
    admin = session.get(f"{URL}/api/v1/admin/clients")
    assert admin.status_code == 403, admin.text
    assert admin.json()["code"] == "insufficient_scope"

    found = session.introspect_token(metadata["introspection_endpoint"], token=token["access_token"])
    assert found.status_code == 200, found.text
    assert found.json()["active"] is True and found.json()["client_id"] == CLIENT_ID, found.text

    revoked = session.revoke_token(metadata["revocation_endpoint"], token=token["access_token"])
    assert revoked.status_code == 200, revoked.text
    after = session.get(f"{URL}/api/v1/products")
    assert after.status_code == 401, after.text
    print(f"authlib: {method} ok")

print("authlib: all good")

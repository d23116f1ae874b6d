"""The OAuth 2.0 authorization server, one module per specification we speak:

* ``rfc7523``  private_key_jwt client authentication (and opt-in client_secret_basic)
* ``client_auth``  who is calling: the per-client and per-address throttle, then rfc7523
* ``rfc9396``  authorization_details: what is asked for, in one common vocabulary
* ``ciba``     OpenID CIBA Core 1.0, poll mode: the backchannel request and its grant type
* ``rfc6749``  the token endpoint and the refresh_token grant (RFC 6749 section 6)
* ``rfc7662``  token introspection
* ``rfc7009``  token revocation
* ``rfc8414``  authorization server metadata
* ``rfc6750``  bearer tokens on the resource API

Errors are authlib's own classes (one per RFC error code), returned unchanged.
"""

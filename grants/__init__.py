"""Access requests, grants, the scope vocabulary's policy, and the OAuth 2.0 server.

Agencies ask (CIBA, RFC 9396 authorization details), young people decide, and every
resource call re-checks the grant behind its token, so a revocation bites on the next call.
"""

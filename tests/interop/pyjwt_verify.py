"""Verify tokens the way a Python app does: PyJWT with PyJWKClient on the live JWKS URL.

argv: JWKS URL, algorithm, issuer, audience. stdin: a JSON list of cases
{"name", "token", "now"?, "audience"?}; "now" (unix seconds) moves PyJWT's clock, to check
expiry. Prints one JSON object: name -> "ok:<sub>" or the PyJWT exception's class name.
"""

import datetime
import json
import sys

import jwt
import jwt.api_jwt
from jwt import PyJWKClient

REAL_DATETIME = datetime.datetime


def clock_at(seconds):
    class Clock(REAL_DATETIME):
        @classmethod
        def now(cls, tz=None):
            return REAL_DATETIME.fromtimestamp(seconds, tz)

    return Clock


def main():
    url, algorithm, issuer, audience = sys.argv[1:5]
    client = PyJWKClient(url)
    results = {}
    for case in json.load(sys.stdin):
        jwt.api_jwt.datetime = clock_at(case["now"]) if "now" in case else REAL_DATETIME
        try:
            key = client.get_signing_key_from_jwt(case["token"])
            claims = jwt.decode(
                case["token"],
                key.key,
                algorithms=[algorithm],
                issuer=issuer,
                audience=case.get("audience", audience),
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
            results[case["name"]] = "ok:" + claims["sub"]
        except Exception as error:  # the class name is the answer
            results[case["name"]] = type(error).__name__
    print(json.dumps(results))


if __name__ == "__main__":
    main()

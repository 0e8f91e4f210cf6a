"""TOTP codes (RFC 6238): the current step and one either side, never a step twice."""

from __future__ import annotations

import pyotp

from auth import two_factor

# RFC 6238 appendix B: the SHA-1 secret "12345678901234567890", at T = 59 s the 8-digit
# code is 94287082; its last six digits are the 6-digit code.
RFC_SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"


def test_the_rfc_6238_test_vector_is_accepted_at_its_time():
    assert two_factor.accepted_step(RFC_SECRET, "287082", None, now=59) == 1


def test_one_step_of_drift_either_side_and_no_more():
    secret, now = pyotp.random_base32(), 1_800_000_000
    totp = pyotp.TOTP(secret)
    step = now // 30
    assert two_factor.accepted_step(secret, totp.at(now - 30), None, now=now) == step - 1
    assert two_factor.accepted_step(secret, totp.at(now + 30), None, now=now) == step + 1
    assert two_factor.accepted_step(secret, totp.at(now - 60), None, now=now) is None
    assert two_factor.accepted_step(secret, totp.at(now + 60), None, now=now) is None


def test_a_step_already_used_or_older_is_refused():
    secret, now = pyotp.random_base32(), 1_800_000_000
    code = pyotp.TOTP(secret).at(now)
    step = two_factor.accepted_step(secret, code, None, now=now)
    assert two_factor.accepted_step(secret, code, step, now=now) is None
    older = pyotp.TOTP(secret).at(now - 30)
    assert two_factor.accepted_step(secret, older, step, now=now) is None


def test_codes_are_read_leniently_and_malformed_ones_refused():
    secret, now = pyotp.random_base32(), 1_800_000_000
    code = pyotp.TOTP(secret).at(now)
    assert two_factor.accepted_step(secret, f" {code[:3]} {code[3:]} ", None, now=now)
    for bad in ("", "12345", "1234567", "abcdef", "１２３４５６"):
        assert two_factor.accepted_step(secret, bad, None, now=now) is None


def test_recovery_codes_are_distinct_and_readable():
    codes = two_factor.new_recovery_codes()
    assert len(set(codes)) == 10
    assert all(len(code) == 11 and code[5] == "-" for code in codes)
    assert two_factor.recovery_digest(codes[0].upper()) == two_factor.recovery_digest(
        codes[0].replace("-", ""))


def test_the_qr_code_is_a_standalone_svg():
    svg = two_factor.qr_svg(two_factor.provisioning_uri(pyotp.random_base32(), "a@popug.inc"))
    assert svg.startswith(b"<?xml") and b"<svg" in svg and b"<script" not in svg

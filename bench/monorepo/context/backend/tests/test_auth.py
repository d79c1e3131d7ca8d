from app.services.auth import decode_token, hash_password, issue_token, verify_password


def test_password_roundtrip():
    h = hash_password("correct horse")
    assert verify_password("correct horse", h)
    assert not verify_password("wrong horse", h)


def test_token_roundtrip():
    assert decode_token(issue_token(42)) == 42
    assert decode_token("garbage") is None

"""SecretBox: secrets encrypted under the first key, readable under any, refused without one."""

from __future__ import annotations

import pyotp
import pytest

from aia_workers.secretbox import SecretBox, SecretBoxError, new_key
from aia_workers.settings import InsecureSettingsError, Settings
from aia_workers.webhooks.signing import new_secret


def test_a_sealed_secret_holds_no_plaintext_and_opens_with_the_key() -> None:
    box = SecretBox([new_key()])
    for secret in (pyotp.random_base32(), new_secret()):
        sealed = box.seal(secret)
        assert secret not in sealed
        assert SecretBox.is_sealed(sealed)
        assert box.open(sealed) == secret
        # Every seal is fresh: equal secrets are not equal in the database.
        assert box.seal(secret) != sealed


def test_without_the_key_a_sealed_secret_cannot_be_read() -> None:
    sealed = SecretBox([new_key()]).seal(new_secret())
    with pytest.raises(SecretBoxError, match="not in AIA_ENCRYPTION_KEYS"):
        SecretBox([new_key()]).open(sealed)
    with pytest.raises(SecretBoxError, match="no AIA_ENCRYPTION_KEYS"):
        SecretBox([]).open(sealed)


def test_rotation_the_first_key_seals_and_every_key_opens() -> None:
    old, new = new_key(), new_key()
    written_before = SecretBox([old]).seal("JBSWY3DPEHPK3PXP")
    during = SecretBox([new, old])
    assert during.open(written_before) == "JBSWY3DPEHPK3PXP"
    assert not during.is_current(written_before)
    resealed = during.reseal(written_before)
    assert during.is_current(resealed)
    # Once every row is resealed the old key can go.
    assert SecretBox([new]).open(resealed) == "JBSWY3DPEHPK3PXP"
    with pytest.raises(SecretBoxError):
        SecretBox([old]).open(resealed)


def test_a_row_from_before_encryption_reads_as_it_is_until_resealed() -> None:
    box = SecretBox([new_key()])
    legacy = new_secret()
    assert not SecretBox.is_sealed(legacy)
    assert not SecretBox.is_sealed(pyotp.random_base32())
    assert box.open(legacy) == legacy
    assert not box.is_current(legacy)
    resealed = box.reseal(legacy)
    assert legacy not in resealed
    assert box.open(resealed) == legacy


def test_a_malformed_key_is_refused_without_repeating_it() -> None:
    with pytest.raises(InsecureSettingsError, match="Fernet") as caught:
        SecretBox(["not-a-key-at-all"])
    assert "not-a-key-at-all" not in str(caught.value)


def test_keys_are_required_outside_dev_mode(tmp_path) -> None:
    with pytest.raises(InsecureSettingsError, match="AIA_ENCRYPTION_KEYS"):
        SecretBox.from_settings(Settings(data_home=tmp_path))
    # Dev mode starts without them, and refuses to store a secret in the clear.
    box = SecretBox.from_settings(Settings(data_home=tmp_path, dev=True))
    with pytest.raises(SecretBoxError, match="aia dev"):
        box.seal("x")
    key = new_key()
    configured = SecretBox.from_settings(Settings(data_home=tmp_path, encryption_keys=[key]))
    assert configured.open(SecretBox([key]).seal("x")) == "x"


def test_the_api_refuses_to_start_without_encryption_keys(tmp_path) -> None:
    from aia_api.app import create_app

    with pytest.raises(InsecureSettingsError, match="AIA_ENCRYPTION_KEYS"):
        create_app(Settings(data_home=tmp_path, secret_key="s" * 48))

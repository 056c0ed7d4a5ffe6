"""A pod's identity from its mounted Secret (identity/secret_files.py)."""

from __future__ import annotations

import pytest

from mlplatform.identity.secret_files import IDENTITY_DIR, IdentityNotMounted, load_identity


def test_each_file_named_as_a_variable_sets_it_unless_the_env_already_does(tmp_path):
    stamp = tmp_path / "..2026_12_01_10_00_00.000000000"  # the kubelet's layout of a Secret volume
    stamp.mkdir()
    for name, text in (("MLFLOW_TRACKING_PASSWORD", "s3cret\n"), ("MLFLOW_TRACKING_USERNAME", "fraud.predictor"),
                       ("lower_case", "not a variable")):
        (stamp / name).write_text(text)
        (tmp_path / name).symlink_to(f"..data/{name}")
    (tmp_path / "..data").symlink_to(stamp.name)
    env = {IDENTITY_DIR: str(tmp_path), "MLFLOW_TRACKING_USERNAME": "set-by-the-pod"}
    assert load_identity(env) == ["MLFLOW_TRACKING_PASSWORD"]
    assert env["MLFLOW_TRACKING_PASSWORD"] == "s3cret" and env["MLFLOW_TRACKING_USERNAME"] == "set-by-the-pod"
    assert "lower_case" not in env


def test_nothing_without_the_variable_and_a_clear_error_when_the_folder_is_missing(tmp_path):
    assert load_identity({}) == []
    with pytest.raises(IdentityNotMounted, match="not mounted"):
        load_identity({IDENTITY_DIR: str(tmp_path / "absent")})

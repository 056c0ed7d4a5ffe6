"""A pod's identity from its mounted Secret (identity/secret_files.py)."""

from __future__ import annotations

import pytest

from mlplatform.identity.secret_files import IDENTITY_DIR, IdentityNotMounted, load_identity


def test_each_file_named_as_a_variable_sets_it_unless_the_env_already_does(tmp_path):
    (tmp_path / "MLFLOW_TRACKING_PASSWORD").write_text("s3cret\n")
    (tmp_path / "MLFLOW_TRACKING_USERNAME").write_text("fraud.predictor")
    (tmp_path / "..data").mkdir()  # the kubelet's own entries in a Secret volume
    (tmp_path / "lower_case").write_text("not a variable")
    env = {IDENTITY_DIR: str(tmp_path), "MLFLOW_TRACKING_USERNAME": "set-by-the-pod"}
    assert load_identity(env) == ["MLFLOW_TRACKING_PASSWORD"]
    assert env["MLFLOW_TRACKING_PASSWORD"] == "s3cret" and env["MLFLOW_TRACKING_USERNAME"] == "set-by-the-pod"
    assert "lower_case" not in env


def test_nothing_without_the_variable_and_a_clear_error_when_the_folder_is_missing(tmp_path):
    assert load_identity({}) == []
    with pytest.raises(IdentityNotMounted, match="not mounted"):
        load_identity({IDENTITY_DIR: str(tmp_path / "absent")})

"""The image is tagged from a hash of what goes into it (platform/cluster/image_tag.py), so
`make up` rebuilds after any change to the build context and never otherwise; torch comes from the
one CPU index versions.env names."""

from __future__ import annotations

import importlib.util
import re
import shutil

import pytest

from cluster_helpers import REPO_ROOT
from test_access import _versions

CLUSTER = REPO_ROOT / "platform" / "cluster"
_spec = importlib.util.spec_from_file_location("image_tag", CLUSTER / "image_tag.py")
image_tag = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(image_tag)


@pytest.fixture
def repo(tmp_path):
    """A small build context with the repository's real .dockerignore and Dockerfile."""
    root = tmp_path / "repo"
    for rel in (".dockerignore", "Dockerfile", "pyproject.toml", "requirements/runtime.txt"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_ROOT / rel, root / rel)
    (root / "platform" / "mlplatform").mkdir(parents=True)
    (root / "platform" / "mlplatform" / "cli.py").write_text("print('v1')\n")
    (root / "docs").mkdir()
    (root / "docs" / "guide.md").write_text("# guide\n")
    return root


def tag(root, **args):
    return image_tag.image_tag(root, args or None)


def test_same_content_same_tag_whatever_lies_outside_the_context(repo):
    before = tag(repo)
    assert re.fullmatch(r"0\.1\.0-[0-9a-f]{12}", before)
    # what .dockerignore keeps out of `docker build` changes nothing
    for rel in (".git/HEAD", ".venv/bin/python", "platform/mlplatform/__pycache__/cli.cpython-311.pyc",
                "platform/mlplatform/cli.pyc", ".mlplatform/mlflow.db", "runs/latest/summary.json",
                "mlplatform.egg-info/PKG-INFO", "build/lib/x.py", ".pytest_cache/v"):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text("noise")
    (repo / "platform" / "mlplatform" / "cli.py").touch()  # a new mtime, the same bytes
    assert tag(repo) == before


@pytest.mark.parametrize("change", ["source", "lock", "dockerfile", "new file", "exec bit", "build arg", "doc"])
def test_anything_that_goes_in_changes_the_tag(repo, change):
    before = tag(repo)
    args = {}
    if change == "source":
        (repo / "platform" / "mlplatform" / "cli.py").write_text("print('v2')\n")
    elif change == "lock":
        with (repo / "requirements" / "runtime.txt").open("a") as f:
            f.write("# relocked\n")
    elif change == "dockerfile":
        with (repo / "Dockerfile").open("a") as f:
            f.write("LABEL x=y\n")
    elif change == "new file":
        (repo / "platform" / "mlplatform" / "new.py").write_text("")
    elif change == "exec bit":
        (repo / "platform" / "mlplatform" / "cli.py").chmod(0o755)
    elif change == "build arg":
        args = {"TENANTS": "examples/fraud"}
    elif change == "doc":  # `COPY . .` puts docs into the image too: a rebuild, cheap (deps layer cached)
        (repo / "docs" / "guide.md").write_text("# guide v2\n")
    assert tag(repo, **args) != before


def test_the_real_context_holds_the_code_the_lock_and_the_pipeline_and_no_local_state():
    files = set(image_tag.context_files(REPO_ROOT))
    assert {"Dockerfile", "requirements/runtime.txt", "pyproject.toml", "platform/mlplatform/cli.py",
            "pipelines/compiled/train_deploy.yaml", "examples/fraud/tenant.yaml"} <= files
    assert not {f for f in files if f.startswith((".git/", ".venv/", ".mlplatform/")) or "__pycache__" in f}


def test_an_unsupported_dockerignore_rule_is_an_error(repo):
    with (repo / ".dockerignore").open("a") as f:
        f.write("!keep-this\n")
    with pytest.raises(ValueError, match="not supported"):
        tag(repo)


def test_the_install_builds_and_deploys_the_hashed_tag():
    lib = (CLUSTER / "lib.sh").read_text()
    install = (CLUSTER / "install" / "mlplatform.sh").read_text()
    tenants = (CLUSTER / "install" / "tenants.sh").read_text()
    # the hash sees the same build arguments the build gets
    hashed = set(re.findall(r'--build-arg (\w+)="(\$\{\w+\})"', lib.split("image_tag()", 1)[1]))
    built = set(re.findall(r'--build-arg (\w+)="(\$\{\w+\})"', install))
    assert hashed == built == {("TENANTS", "${IMAGE_TENANTS}"), ("TORCH_WHEELS", "${TORCH_INDEX}")}
    assert 'tag="$(image_tag)"' in install and 'docker build -t "${image}"' in install
    assert "docker image inspect \"${image}\"" in install  # rebuilt exactly when the tag is new
    assert '--set image.tag="${tag}"' in install
    assert '--set cluster.image="${MLPLATFORM_IMAGE_REPO}:$(image_tag)"' in tenants
    assert 'kind load docker-image "${image}" "${MLPLATFORM_IMAGE}"' in install  # the alias the pipeline IR names


def test_torch_comes_from_the_one_cpu_index():
    index = _versions()["TORCH_INDEX"]
    assert index.startswith("https://download.pytorch.org/whl/cpu")
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert f"ARG TORCH_WHEELS={index}" in dockerfile
    assert re.search(r'pip install --require-hashes --find-links "\$TORCH_WHEELS"', dockerfile)
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert not re.search(r"^TORCH_INDEX\s*[:?]?=", makefile, re.M)  # defined in versions.env only
    assert "include platform/cluster/versions.env" in makefile

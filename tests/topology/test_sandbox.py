"""The sandbox is real: the fraud predictor's container, as the chart renders it, with a probe in
place of its command. Each claim has a control beside it (what must work does), so a sandbox that
blocked everything, or nothing, fails here."""

from __future__ import annotations

import json
import pytest

from tests.topology import sandbox
from tests.topology.manifests import predictor

pytestmark = pytest.mark.usefixtures("can_sandbox")

PROBE = """
import json, os, sys
def attempt(action):
    try:
        action()
        return "ok"
    except OSError as err:
        return type(err).__name__
def write(path):
    with open(path, "w") as f:
        f.write("x")
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
import mlplatform
read = {p: attempt(lambda p=p: open(p).read()) for p in sys.argv[1:]}  # before this probe writes
print(json.dumps({
    "read": read,
    "uid": status["Uid"].split(), "gid": status["Gid"].split(), "groups": status["Groups"].split(),
    "cap_eff": status["CapEff"].strip(), "no_new_privs": status["NoNewPrivs"].strip(),
    "cwd": os.getcwd(), "env": dict(os.environ), "mlplatform": mlplatform.__file__,
    "write_root": attempt(lambda: write("/probe")),
    "write_app": attempt(lambda: write("/app/probe")),
    "write_venv": attempt(lambda: write(os.path.dirname(mlplatform.__file__) + "/probe")),
    "write_tenant": attempt(lambda: write("/etc/mlplatform/probe")),
    "write_tmp": attempt(lambda: write("/tmp/probe")),
    "read_shadow": attempt(lambda: open("/etc/shadow").read()),
    "read_passwd": attempt(lambda: open("/etc/passwd").read()),
}))
"""


def probe(box: sandbox.Sandbox, container: sandbox.Container, *paths: str) -> dict:
    done = box.run(container, ["python", "-c", PROBE, *paths])
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_process_runs_as_a_real_unprivileged_uid(tmp_path):
    container, box = predictor(tmp_path / "pod")
    got = probe(box, container)
    assert container.uid == container.gid == 10001  # the chart's runAsUser / runAsGroup
    assert got["uid"] == ["10001"] * 4 and got["gid"] == ["10001"] * 4  # real, effective, saved, fs
    assert got["groups"] == [] and int(got["cap_eff"], 16) == 0 and got["no_new_privs"] == "1"


def test_the_root_the_image_and_the_tenant_file_are_read_only_and_tmp_is_writable(tmp_path):
    container, box = predictor(tmp_path / "pod")
    got = probe(box, container)
    assert got["mlplatform"].startswith(f"{sandbox.IMAGE_VENV}/lib/")  # the image's install, not the source tree
    assert got["cwd"] == "/app"
    for key in ("write_root", "write_app", "write_venv", "write_tenant"):
        assert got[key] in ("PermissionError", "OSError"), (key, got[key])  # EACCES or EROFS
    assert got["write_tmp"] == "ok"  # the emptyDir the chart mounts at /tmp
    assert got["read_shadow"] == "PermissionError" and got["read_passwd"] == "ok"


def test_only_the_image_and_manifest_environment_reaches_the_process(tmp_path):
    container, box = predictor(tmp_path / "pod")
    env = probe(box, container)["env"]
    assert env.pop("PWD") == "/app"  # bwrap's --chdir sets it (a shell in the pod would too)
    assert env == {**sandbox.IMAGE_ENV, **container.env}
    assert "PYTHONPATH" not in env and env["MLPLATFORM_TENANT_FILE"] == "/etc/mlplatform/tenant.yaml"


def test_one_sandbox_cannot_read_another_ones_scratch(tmp_path):
    a, box_a = predictor(tmp_path / "a")
    b, box_b = predictor(tmp_path / "b")
    assert probe(box_a, a)["write_tmp"] == "ok"
    (tmp_a,) = [v.source for v in a.volumes if v.mount_path == "/tmp"]
    written = tmp_a / "probe"
    assert written.is_file()  # control: a's scratch holds what a wrote
    got = probe(box_b, b, "/tmp/probe", str(written))
    assert got["read"]["/tmp/probe"] == "FileNotFoundError"  # b's /tmp is its own
    assert got["read"][str(written)] == "FileNotFoundError"  # the host's folders are not in b's root

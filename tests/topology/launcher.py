"""Plays KFP's backend for the compiled pipeline (pipelines/compiled/train_deploy.yaml), task by task,
each task's executor container in a sandbox of its own (tests/topology/sandbox.py).

A KFP API server cannot run here, so this stands in for its driver and launcher, and does only what
they do for a task, read from the compiled IR and checked against KFP's own client models:
- the ExecutorInput message is built by kfp.local's `construct_executor_input` (the same proto
  message, from the task's ComponentSpec in the IR), with output artifacts under `minio://` URIs as
  on a cluster (the executor maps them to /minio/...), output parameters in the pod's /tmp;
- it replaces `{{$}}` in the executor's args with that message, as the launcher does;
- the container gets only the env the IR's `platforms.kubernetes` section maps from ConfigMaps and
  Secrets (here: the tenant chart's rendered `mlplatform-services` and, by the name the run's
  parameter gives, `<tenant>-pipeline`; a Secret or key it lacks fails the task as the pod would
  not start) and the emptyDirs KFP's Argo compiler
  mounts on every task pod (/gcs, /s3, /minio, /.local, /.cache, /.config: kubeflow/pipelines
  backend/src/v2/compiler/argocompiler/container.go) plus a writable /tmp (the executor's mktemp);
- between tasks it copies each output artifact to the tasks the IR wires it to (the object store's
  part), and hands on output parameters by value. Nothing else passes between sandboxes.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.topology.sandbox import Container, Sandbox, Volume

REPO = Path(__file__).resolve().parents[2]
COMPILED = REPO / "pipelines" / "compiled" / "train_deploy.yaml"
SCRATCH_MOUNTS = ("/gcs", "/s3", "/minio", "/.local", "/.cache", "/.config", "/tmp")
OUTPUTS = "/tmp/kfp/outputs"  # where the output parameters and executor output land in the pod
POD_UID = 10001  # the image's USER (Dockerfile); KFP sets no securityContext of its own


@dataclass
class TaskRun:
    name: str
    returncode: int
    log: str
    parameters: dict[str, Any] = field(default_factory=dict)  # output parameter -> value
    artifacts: dict[str, Path] = field(default_factory=dict)  # output artifact -> host path of its data
    uris: dict[str, str] = field(default_factory=dict)  # output artifact -> its minio:// URI


class PipelineRun:
    """One run of the compiled pipeline, each task in a sandbox under `scratch`."""

    def __init__(self, scratch: Path, arguments: dict[str, Any], config_maps: dict[str, dict[str, str]],
                 hosts: dict[str, str], run_name: str = "topology-run", secrets: dict[str, dict[str, str]] | None = None):
        docs = list(yaml.safe_load_all(COMPILED.read_text()))
        self.spec, self.platform = docs[0], docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        self.scratch, self.config_maps, self.hosts, self.run_name = Path(scratch), config_maps, hosts, run_name
        self.arguments = {k: v.get("defaultValue") for k, v in
                          self.spec["root"]["inputDefinitions"]["parameters"].items()} | arguments
        self.secrets = secrets or {}
        self.done: dict[str, TaskRun] = {}

    def task(self, name: str) -> dict[str, Any]:
        return self.spec["root"]["dag"]["tasks"][name]

    def _inputs(self, name: str) -> tuple[dict[str, Any], dict[str, str]]:
        """(parameter values, {artifact input: producer's URI}) the IR wires to task `name`."""
        task, params, artifacts = self.task(name), {}, {}
        for key, value in task["inputs"].get("parameters", {}).items():
            if "componentInputParameter" in value:
                params[key] = self.arguments[value["componentInputParameter"]]
            elif "taskOutputParameter" in value:
                ref = value["taskOutputParameter"]
                params[key] = self.done[ref["producerTask"]].parameters[ref["outputParameterKey"]]
            elif "runtimeValue" in value:
                params[key] = value["runtimeValue"]["constant"]
        for key, value in task["inputs"].get("artifacts", {}).items():
            ref = value["taskOutputArtifact"]
            artifacts[key] = self.done[ref["producerTask"]].uris[ref["outputArtifactKey"]]
        return params, artifacts

    def _executor_input(self, name: str, params: dict[str, Any], artifacts: dict[str, str]) -> dict[str, Any]:
        from google.protobuf import json_format
        from kfp import dsl
        from kfp.local.executor_input_utils import construct_executor_input
        from kfp.pipeline_spec import pipeline_spec_pb2

        raw = self.spec["components"][self.task(name)["componentRef"]["name"]]
        component = json_format.ParseDict(raw, pipeline_spec_pb2.ComponentSpec())
        schema = {k: v["artifactType"]["schemaTitle"]
                  for k, v in raw.get("inputDefinitions", {}).get("artifacts", {}).items()}
        given: dict[str, Any] = dict(params)
        for key, uri in artifacts.items():
            cls = {"system.Dataset": dsl.Dataset, "system.HTML": dsl.HTML}.get(schema.get(key), dsl.Artifact)
            given[key] = cls(name=key, uri=uri, metadata={})
        root = f"minio://mlpipeline/v2/artifacts/{self.run_name}/{name}"
        message = json_format.MessageToDict(construct_executor_input(component, given, root, False))
        for key in message.get("outputs", {}).get("parameters", {}):
            message["outputs"]["parameters"][key]["outputFile"] = f"{OUTPUTS}/{key}"
        message["outputs"]["outputFile"] = f"{OUTPUTS}/output_metadata.json"
        return message

    def container(self, name: str, argv: list[str] | None = None) -> tuple[Container, Sandbox]:
        """The sandboxed container of task `name`: scratch mounts private to it, its ConfigMap env."""
        box_dir = self.scratch / name
        volumes = []
        for mount in SCRATCH_MOUNTS:
            source = box_dir / "volumes" / mount.strip("/").replace("/", "_")
            source.mkdir(parents=True)
            os.chown(source, POD_UID, POD_UID)
            volumes.append(Volume(mount, source, writable=True))
        spec = self.spec["deploymentSpec"]["executors"][self._executor(name)]["container"]
        argv = argv if argv is not None else [*spec["command"], *spec["args"]]
        return Container(name, argv, self.env(name), POD_UID, POD_UID, volumes), Sandbox(box_dir, self.hosts)

    def _executor(self, name: str) -> str:
        return self.task(name)["componentRef"]["name"].replace("comp-", "exec-")

    def env(self, name: str) -> dict[str, str]:
        """What the driver puts in task `name`'s env from the IR's ConfigMap and Secret mappings."""
        executor, env = self._executor(name), {}
        for cm in self.platform.get(executor, {}).get("configMapAsEnv", []):
            data = self.config_maps[cm["configMapName"]]
            env |= {k["envVar"]: data[k["configMapKey"]] for k in cm["keyToEnv"]}
        for ref in self.platform.get(executor, {}).get("secretAsEnv", []):
            secret = self._secret_name(name, ref)
            if secret not in self.secrets:
                raise KeyError(f"task {name}: Secret {secret!r} does not exist (the pod would not start)")
            data = self.secrets[secret]
            env |= {k["envVar"]: data[k["secretKey"]] for k in ref["keyToEnv"]}
        return env

    def _secret_name(self, name: str, ref: dict[str, Any]) -> str:
        """A secretAsEnv entry's Secret: a literal name, or a parameter the driver resolves at run time
        (kfp-kubernetes: `secretNameParameter`, a task input wired to a run parameter)."""
        param = ref.get("secretNameParameter")
        if param is None:
            return ref["secretName"]
        if "runtimeValue" in param:
            return param["runtimeValue"]["constant"]
        key = param["componentInputParameter"]
        wired = self.task(name)["inputs"].get("parameters", {}).get(key, {})
        return self.arguments[wired.get("componentInputParameter", key)]

    def run(self, name: str, timeout: float = 900) -> TaskRun:
        params, artifacts = self._inputs(name)
        message = self._executor_input(name, params, artifacts)
        container, box = self.container(name)
        container.argv = [json.dumps(message) if a == "{{$}}" else a for a in container.argv]
        minio = next(v.source for v in container.volumes if v.mount_path == "/minio")
        for uri in artifacts.values():  # the launcher downloads each input artifact to its local path
            src = self._host_path(uri)
            dest = minio / uri.removeprefix("minio://")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(src, dest) if src.is_dir() else shutil.copyfile(src, dest)
        for path in minio.rglob("*"):  # owned by the pod's user, as the launcher's own downloads are
            os.chown(path, POD_UID, POD_UID)
        proc = box.run(container, timeout=timeout)
        tmp = next(v.source for v in container.volumes if v.mount_path == "/tmp")
        result = TaskRun(name, proc.returncode, proc.stdout[-6000:] + proc.stderr[-6000:])
        executor_output = tmp / OUTPUTS.removeprefix("/tmp/") / "output_metadata.json"
        if executor_output.exists():  # the executor's ExecutorOutput message, which the launcher reads
            result.parameters = json.loads(executor_output.read_text()).get("parameterValues", {})
        for key, listing in message["outputs"].get("artifacts", {}).items():
            uri = listing["artifacts"][0]["uri"]
            result.uris[key] = uri
            result.artifacts[key] = minio / uri.removeprefix("minio://")
        self.done[name] = result
        return result

    def _host_path(self, uri: str) -> Path:
        for run in self.done.values():
            for key, u in run.uris.items():
                if u == uri:
                    return run.artifacts[key]
        raise KeyError(uri)

# The mlplatform image: predictor (`mlplatform serve <tenant>`), pipeline components, MLflow
# server and the retraining webhook all run from it, so KFP components need no
# packages_to_install (clusters may be offline). platform/cluster/install/mlplatform.sh builds it,
# tagged from a hash of its build context (platform/cluster/image_tag.py), and loads it into kind.
FROM python:3.11.9-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HOME=/tmp

WORKDIR /app
# Dependencies first (cached while only code changes), from the runtime lock: every package pinned
# and hash-checked. torch's CPU build (torch==2.13.0+cpu) comes from PyTorch's CPU wheel index
# (TORCH_WHEELS: install/mlplatform.sh passes TORCH_INDEX from platform/cluster/versions.env, the
# Makefile's too; this default equals it, a test checks); nothing else is resolved, so no CUDA build.
# The lock is for Linux x86_64 (on an arm64 host, build with --platform linux/amd64).
ARG TORCH_WHEELS=https://download.pytorch.org/whl/cpu/torch/
COPY requirements/runtime.txt requirements/runtime.txt
RUN python -m venv /opt/venv \
 && pip install --require-hashes --find-links "$TORCH_WHEELS" -r requirements/runtime.txt

COPY . .
# The platform and the tenants' packages (TENANTS: their folders; a tenant's dependencies must be in
# the lock, requirements/runtime.in). Not editable: the image must not depend on the source tree
# layout at run time. No deps and no build isolation: everything, setuptools included, is locked.
ARG TENANTS="examples/fraud examples/search"
RUN pip install --no-deps --no-build-isolation . $(for t in $TENANTS; do echo "./$t"; done) \
 && mlplatform --help >/dev/null

# Non-root, matching the charts' runAsUser; nothing in the image needs to be writable
# (the charts mount /tmp as an emptyDir and set readOnlyRootFilesystem).
USER 10001:10001
EXPOSE 8080
CMD ["mlplatform", "--help"]

# The mlplatform image: predictor (`mlplatform serve <tenant>`), pipeline components, MLflow
# server and the retraining webhook all run from it, so KFP components need no
# packages_to_install (clusters may be offline). Build: docker build -t ghcr.io/mlplatform/mlplatform:0.1.0 .
# (platform/cluster/install/mlplatform.sh builds it and loads it into kind.)
FROM python:3.11.9-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HOME=/tmp

WORKDIR /app
# Dependencies first (cached while only code changes), then the code itself.
COPY pyproject.toml ./
RUN python -m venv /opt/venv \
 && python -c "import tomllib; print('\\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
    > /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt \
    # cluster mode: Postgres for MLflow, Redis for Feast, KFP Kubernetes settings for RayJob steps
    "psycopg2-binary>=2.9" "psycopg[binary]>=3.2" "redis>=5" "kfp-kubernetes~=2.17.0"

COPY . .
# Not editable: the image must not depend on the source tree layout at run time.
RUN pip install --no-deps . && mlplatform --help >/dev/null

# Non-root, matching the charts' runAsUser; nothing in the image needs to be writable
# (the charts mount /tmp as an emptyDir and set readOnlyRootFilesystem).
USER 10001:10001
EXPOSE 8080
CMD ["mlplatform", "--help"]

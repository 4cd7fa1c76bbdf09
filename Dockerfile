# syntax=docker/dockerfile:1
# One image for every Sapphire role; only the command differs:
#   sapphire api               the trader API            (trader-api Deployment)
#   sapphire operator run      the kopf operator         (sapphire-operator Deployment)
#   sapphire agent run         one trading agent         (Deployments the operator builds)
#   sapphire migrate           alembic under a lock      (MigrationRun pods)
#
# Two stages: the build stage resolves nothing (every version comes from
# requirements/lock.txt) and installs into a virtualenv; the runtime stage copies only that
# virtualenv onto a fresh slim Python, with no compiler, no pip cache and no source tree.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/sapphire
ENV PATH=/opt/sapphire/bin:$PATH
WORKDIR /src

# Dependencies first, in their own layer, rebuilt only when the lock or the dependency list
# changes. The lock also pins the test tools (it is compiled with --extra test), so it is
# used as constraints on the runtime dependencies pyproject.toml lists: every installed
# version is the locked one, and pytest, mypy and ruff stay out of the image.
COPY pyproject.toml ./
COPY requirements/lock.txt requirements/lock.txt
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements/runtime.in \
    && pip install --constraint requirements/lock.txt --requirement requirements/runtime.in

# Then the package itself, without touching the dependencies. sapphire/operator,
# sapphire/trader_api, sapphire/agents and sapphire/migrations are symlinks to the
# top-level folders, so those are copied too; the wheel holds real files.
COPY README.md ./
COPY sapphire sapphire
COPY operator operator
COPY trader_api trader_api
COPY agents agents
COPY migrations migrations
RUN pip install --no-deps . \
    && sapphire --version

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="sapphire" \
      org.opencontainers.image.description="Sapphire: Kubernetes-native multi-agent AI trading platform" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/sapphire-ai/sapphire"
# uid/gid 10001, as every pod's securityContext (runAsUser 10001) expects; numeric, so
# Kubernetes can verify runAsNonRoot. No home, no shell, no write access to the image.
RUN groupadd --system --gid 10001 sapphire \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin sapphire
COPY --from=build /opt/sapphire /opt/sapphire
ENV PATH=/opt/sapphire/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SAPPHIRE_LOG_FORMAT=json
# The root filesystem is read-only in every pod; /tmp is an emptyDir there.
WORKDIR /tmp
USER 10001:10001
# 8000: trader API; 8080: operator liveness; 8081: agent health; 9090: operator metrics.
EXPOSE 8000 8080 8081 9090
ENTRYPOINT ["sapphire"]
CMD ["--help"]

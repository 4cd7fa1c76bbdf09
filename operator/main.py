"""``sapphire operator run``: configure kopf from :class:`OperatorSettings` and run it."""

from __future__ import annotations

import logging
import os
import secrets
import socket

import kopf

import sapphire
from sapphire.operator import handlers, metrics
from sapphire.operator.settings import OperatorSettings

LOGGER = logging.getLogger(__name__)


def configure(settings: OperatorSettings, kopf_settings: kopf.OperatorSettings) -> None:
    """Everything kopf persists lives under our group's domain, not kopf.zalando.org."""
    kopf_settings.persistence.finalizer = f"{sapphire.GROUP}/operator"
    kopf_settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=sapphire.GROUP)
    kopf_settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=sapphire.GROUP, key="last-handled-configuration"
    )
    kopf_settings.posting.enabled = settings.post_events
    kopf_settings.posting.level = logging.INFO
    kopf_settings.watching.server_timeout = settings.watch_server_timeout_seconds
    kopf_settings.watching.client_timeout = settings.watch_client_timeout_seconds
    kopf_settings.peering.name = settings.peering_name
    kopf_settings.peering.priority = settings.peering_priority
    kopf_settings.peering.standalone = settings.standalone
    kopf_settings.peering.mandatory = not settings.standalone
    kopf_settings.execution.max_workers = 20
    # Scanning needs cluster-wide list on CRDs and namespaces; we watch named namespaces (or
    # everything) and require the CRDs to exist at startup, so least privilege wins.
    kopf_settings.scanning.disabled = True
    kopf_settings.batching.error_delays = (1, 2, 5, 10, 30, 60)


def run_operator(settings: OperatorSettings) -> None:
    """Run until SIGTERM. Namespaced mode unless ``cluster_wide``."""
    registry = kopf.OperatorRegistry()
    identity = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
    handlers.register(registry, settings, identity=identity)
    kopf_settings = kopf.OperatorSettings()
    configure(settings, kopf_settings)
    metrics.serve(settings.metrics_port)
    namespaces = [] if settings.cluster_wide else (settings.namespaces or ["default"])
    LOGGER.info(
        "operator starting",
        extra={
            "namespaces": namespaces or "*",
            "peering": None if settings.standalone else settings.peering_name,
        },
    )
    kopf.run(
        registry=registry,
        settings=kopf_settings,
        clusterwide=settings.cluster_wide,
        namespaces=namespaces,
        standalone=settings.standalone,
        peering_name=None if settings.standalone else settings.peering_name,
        priority=settings.peering_priority,
        identity=identity,  # type: ignore[arg-type]  # kopf's Identity is a NewType of str
        liveness_endpoint=f"http://0.0.0.0:{settings.health_port}/healthz",
    )

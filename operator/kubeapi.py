"""A thin async Kubernetes API client for the operator's own requests.

kopf watches and patches the objects it handles; everything else (server-side apply of
Deployments, bare Pods, status of other objects) goes through this client. Credentials
come from the kubernetes library's loader (in-cluster ServiceAccount or a kubeconfig,
exec plugins included), so the operator authenticates exactly as kopf does, and they are
never frozen: a 401 makes :class:`ReloadingCredentials` load them again (the kubelet's
rotated ServiceAccount token file, a new token from GKE's exec plugin) and send the request
once more, as kopf re-runs its login handler on a 401. Raw JSON keeps the operator free of the
generated model classes; what it reads is typed by :mod:`sapphire.operator.payloads`.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any, TypeVar, cast
from urllib.parse import quote

import httpx
import kubernetes

from sapphire.operator import metrics, payloads
from sapphire.operator.payloads import Json

Payload = TypeVar("Payload", bound=Mapping[str, object])
"""The shape (a :mod:`~sapphire.operator.payloads` TypedDict) a caller reads an answer as."""
FIELD_MANAGER = "sapphire-operator"


class KubeApiError(Exception):
    """A request the API server refused; ``status`` is its HTTP status code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def _load_configuration() -> Any:
    configuration = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return configuration


def _authorization(configuration: Any) -> str | None:
    """The Authorization header the loaded ``configuration`` implies, if it uses a bearer token."""
    token = configuration.api_key.get("authorization") or configuration.api_key.get("BearerToken")
    if not token:
        return None
    prefix = configuration.api_key_prefix.get("authorization", "")
    return str(token) if str(token).startswith("Bearer") else f"{prefix or 'Bearer'} {token}"


class ReloadingCredentials(httpx.Auth):
    """Bearer credentials loaded again whenever the API server answers 401.

    An expired exec-plugin token (GKE's last about an hour) or a rotated and revoked
    ServiceAccount token is replaced by what the loader yields now, and the refused request
    is sent once more; a second 401 is the caller's to see. Loading runs in a thread: an exec
    plugin is a subprocess."""

    def __init__(self, load: Callable[[], Any], header: str | None) -> None:
        self._load = load
        self._header = header
        self._lock = asyncio.Lock()

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        sent = self._header
        if sent is not None:
            request.headers["Authorization"] = sent
        response = yield request
        if response.status_code != 401:
            return
        async with self._lock:
            if self._header == sent:  # not already reloaded by a concurrent request
                self._header = _authorization(await asyncio.to_thread(self._load))
        if self._header is None or self._header == sent:
            return  # nothing new to try
        request.headers["Authorization"] = self._header
        yield request


CONNECTIONS = 8
"""Requests in flight to the API server at most, each on a connection kept alive.

Kept alive: with httpx's default (20 kept of 100), a burst of reconciles (300 agents applied
at once) closed most connections after one request and opened new ones, and TLS handshakes
took a sixth of the operator's CPU and more of the API server's. At most 8 in flight, the
rest waiting on a semaphore rather than in the pool: httpcore's pool scans every connection
for each queued request, and each scan asks every connection whether it is idle, so with 64
connections and a queue of hundreds the scans alone took half of the operator's CPU
(bench/operator_scale, py-spy)."""
CONNECTION_LIMITS = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)


class KubeApi:
    """Async JSON access to the API server."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client
        self._in_flight = asyncio.Semaphore(CONNECTIONS)

    @classmethod
    def from_environment(cls, *, timeout: float = 30.0) -> KubeApi:
        configuration = _load_configuration()
        headers = {"Accept": "application/json"}
        auth = ReloadingCredentials(_load_configuration, _authorization(configuration))
        verify: ssl.SSLContext | bool = bool(configuration.verify_ssl)
        if configuration.verify_ssl:
            context = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
            if configuration.cert_file:
                context.load_cert_chain(configuration.cert_file, configuration.key_file)
            verify = context
        client = httpx.AsyncClient(
            base_url=configuration.host,
            headers=headers,
            verify=verify,
            timeout=timeout,
            auth=auth,
            limits=CONNECTION_LIMITS,
        )
        return cls(client)

    async def close(self) -> None:
        await self._client.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Json:
        metrics.count_request(method)
        async with self._in_flight:
            response = await self._client.request(
                method,
                path,
                content=json.dumps(body) if body is not None else None,
                params=params,
                headers={"Content-Type": content_type} if body is not None else None,
            )
        if response.status_code >= 400:
            try:
                message = str(response.json().get("message", response.text))
            except ValueError:
                message = response.text
            raise KubeApiError(response.status_code, message)
        result: Json = response.json() if response.content else {}
        return result

    async def get(self, path: str, shape: type[Payload]) -> Payload | None:
        """The object at ``path`` read as ``shape``, or None when it does not exist."""
        try:
            return cast(Payload, await self._request("GET", path))
        except KubeApiError as error:
            if error.status == 404:
                return None
            raise

    async def list(
        self, path: str, shape: type[Payload], *, labels: Mapping[str, str] | None = None
    ) -> list[Payload]:
        """The items of the collection at ``path``, each read as ``shape``."""
        params = {"labelSelector": ",".join(f"{k}={v}" for k, v in labels.items())} if labels else None
        listing = await self._request("GET", path, params=params)
        return cast(list[Payload], list(listing.get("items", [])))

    async def create(self, path: str, body: Mapping[str, Any]) -> Json:
        return await self._request("POST", path, body=body)

    async def delete(self, path: str, *, grace_seconds: int | None = None, uid: str | None = None) -> None:
        options: Json = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        if grace_seconds is not None:
            options["gracePeriodSeconds"] = grace_seconds
        if uid is not None:
            options["preconditions"] = {"uid": uid}
        try:
            await self._request("DELETE", path, body=options)
        except KubeApiError as error:
            if error.status not in (404, 409):
                raise

    async def apply(self, path: str, body: Mapping[str, Any], shape: type[Payload]) -> Payload:
        """Server-side apply as the operator's field manager: creates the object when it is
        missing and takes back any field someone else changed (drift). The answer, the object
        as stored, is read as ``shape``."""
        answer = await self._request(
            "PATCH",
            path,
            body=body,
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
            content_type="application/apply-patch+yaml",
        )
        return cast(Payload, answer)

    async def patch_status(self, path: str, status: Mapping[str, Any]) -> Json:
        return await self._request(
            "PATCH", f"{path}/status", body={"status": status}, content_type="application/merge-patch+json"
        )


def namespaced(group_version: str, namespace: str, plural: str, name: str | None = None) -> str:
    """The REST path of a namespaced collection or object (``v1`` or ``apps/v1`` style)."""
    root = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
    path = f"{root}/namespaces/{quote(namespace)}/{plural}"
    return f"{path}/{quote(name)}" if name else path


def build_event(
    body: payloads.Resource,
    *,
    type: str,
    reason: str,
    message: str,
    now: str,
    instance: str,
) -> Json:
    """A core/v1 Event about ``body``, as ``kubectl describe`` shows it."""
    metadata = body["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{metadata['name']}.", "namespace": metadata["namespace"]},
        "involvedObject": {
            "apiVersion": body["apiVersion"],
            "kind": body["kind"],
            "name": metadata["name"],
            "namespace": metadata["namespace"],
            "uid": metadata["uid"],
        },
        "type": type,
        "reason": reason,
        "message": message[:1024],
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "source": {"component": FIELD_MANAGER},
        "reportingComponent": FIELD_MANAGER,
        "reportingInstance": instance,
    }

"""kopf handlers, registered explicitly on a registry (never as an import side effect).

Handler ids are explicit and persisted in annotations under our group's domain, so renaming a
function never orphans progress. Each handler delegates to the reconcile modules
(:mod:`sapphire.operator.agents`, :mod:`sapphire.operator.migrations`,
:mod:`sapphire.operator.backtests`); here live only the
triggers, the per-object serialization, Events and metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from typing import Any, TypeVar, cast

import httpx
import kopf

import sapphire
from sapphire.operator import (
    agents,
    backtests,
    builders,
    figures,
    kubeapi,
    metrics,
    migrations,
    payloads,
    resync,
    specs,
)
from sapphire.operator.payloads import Json
from sapphire.operator.settings import OperatorSettings
from sapphire.resources import backtestrun, common, migrationrun, tradingagent

Run = TypeVar("Run", payloads.MigrationRun, payloads.BacktestRun)
VERSION = common.VERSION
TA = (sapphire.GROUP, VERSION, tradingagent.PLURAL)
MR = (sapphire.GROUP, VERSION, migrationrun.PLURAL)
BT = (sapphire.GROUP, VERSION, backtestrun.PLURAL)
CHILD = "child"
"""The trigger of a reconcile that an event of the agent's Deployment or pods started."""
LOGGER = logging.getLogger(__name__)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def _first_of_each(index: Mapping[Any, Iterable[payloads.TradingAgent]]) -> list[payloads.TradingAgent]:
    """The one object under each key of an index keyed by object."""
    return [body for store in list(index.values()) for body in list(store)[:1]]


def _deleting(body: payloads.Resource | payloads.Object) -> bool:
    return bool(body["metadata"].get("deletionTimestamp"))


class OperatorState:
    """What the handlers share: the API client and one lock per object."""

    def __init__(self, settings: OperatorSettings, *, identity: str) -> None:
        self.settings = settings
        self.identity = identity
        self._api: kubeapi.KubeApi | None = None
        self.locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.resync = resync.Resync(api=lambda: self.api, settings=settings, identity=identity)
        self._trader_api: httpx.AsyncClient | None = None
        self.figures_read_at: dict[str, float] = {}
        self.indexes: agents.AgentIndexes | None = None
        self.applied: dict[str, agents.Applied] = {}
        self.reconciled: dict[str, tuple[str | None, Hashable]] = {}
        """Per agent, what its last completed reconcile observed: the schema revision its spec
        requires and the digest of its children (``agents.observation_digest``)."""
        self.backtest_runs: kopf.Index[str, payloads.BacktestRun] | None = None

    @property
    def api(self) -> kubeapi.KubeApi:
        if self._api is None:
            self._api = kubeapi.KubeApi.from_environment()
        return self._api

    async def post(self, body: payloads.Resource, event: tuple[str, str, str] | None) -> None:
        """Post a Kubernetes Event about ``body``; a failure to post never fails a reconcile."""
        if event is None or not self.settings.post_events:
            return
        kind, reason, message = event
        manifest = kubeapi.build_event(
            body, type=kind, reason=reason, message=message, now=_now().isoformat(), instance=self.identity
        )
        path = kubeapi.namespaced("v1", body["metadata"]["namespace"], "events")
        try:
            await self.api.create(path, manifest)
        except (kubeapi.KubeApiError, httpx.HTTPError) as error:
            LOGGER.warning("could not post an event", extra={"reason": reason, "error": str(error)})

    async def figures_if_due(self, key: str, *, name: str, status: Json) -> Json:
        """The figures part of a status patch (fields and the TradingFigures condition, built on
        ``status``), when ``status_refresh_seconds`` have passed since the last read; else {}.

        Called by the reconcile under the object's lock, so the patch it feeds is the only
        status write of that moment. Without a token, figures are disabled."""
        token = self.settings.trader_api_token
        last = self.figures_read_at.get(key)
        if token is None or (
            last is not None and time.monotonic() - last < self.settings.status_refresh_seconds
        ):
            return {}
        if self._trader_api is None:
            self._trader_api = httpx.AsyncClient(
                base_url=str(self.settings.trader_api_url), timeout=self.settings.trader_api_timeout_seconds
            )
        self.figures_read_at[key] = time.monotonic()
        return await figures.read_figures(
            self._trader_api, token=token.get_secret_value(), agent=name, status=status, now=_now()
        )

    async def deleted_meanwhile(self, path: str, body: payloads.Resource) -> bool:
        """Whether the object of ``body`` was deleted (or is being deleted) since it was read:
        then a refused request is the deletion's doing, not an error worth an Event."""
        try:
            current = await self.api.get(path, payloads.Object)
        except (kubeapi.KubeApiError, httpx.HTTPError):
            return False
        return current is None or _deleting(current) or current["metadata"]["uid"] != body["metadata"]["uid"]

    def unchanged_since_last_reconcile(self, key: str, *, namespace: str, name: str) -> bool:
        """Whether the agent's children, as kopf's indexes hold them now, are what its last
        completed reconcile saw (as far as its status and Deployment depend on them): then a
        child's event has nothing to tell, and is answered without a request.

        Only a child's event is answered so: the agent's own events (a spec change, a deletion)
        always reconcile, and so does the resync, which reads the stored agent and so finds a
        status someone else changed."""
        seen = self.reconciled.get(key)
        if seen is None or self.indexes is None:
            return False
        required, digest = seen
        now = agents.observe_indexed(self.indexes, name=name, namespace=namespace, required_schema=required)
        return agents.observation_digest(now) == digest

    def forget(self, key: str) -> None:
        """Drop the lock of an object that is gone, so the table does not grow forever. The
        holder keeps its reference; a new reconcile of the same key makes a new lock."""
        self.locks.pop(key, None)
        self.figures_read_at.pop(key, None)
        self.applied.pop(key, None)
        self.reconciled.pop(key, None)

    async def close(self) -> None:
        if self._trader_api is not None:
            await self._trader_api.aclose()
        if self._api is not None:
            await self._api.close()


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings, *, identity: str) -> OperatorState:
    """Register every handler on ``registry``; return the state they share."""
    state = OperatorState(settings, identity=identity)

    @kopf.on.login(registry=registry, id="operator_login")
    def operator_login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # The same credentials as our own client: in-cluster ServiceAccount or kubeconfig.
        return kopf.login_via_client(**kwargs)

    @kopf.on.cleanup(registry=registry, id="operator_cleanup")
    async def operator_cleanup(**_: Any) -> None:
        await state.resync.stop()
        await state.close()

    # -- TradingAgent -------------------------------------------------------------------
    #
    # Every trigger (the object's own events, its children's events, the resync) ends in one
    # reconcile that, under a per-object lock, re-reads the object, converges, and writes the
    # status itself: so two triggers in a row never compute from a stale status, and each
    # phase transition is reported once. The trading figures are read by that same reconcile
    # (when they are due) and written in the same status patch: the status has one writer, so
    # no trigger can write back conditions another one has already replaced.

    async def reconcile_agent(namespace: str, name: str, trigger: str) -> None:
        path = kubeapi.namespaced(tradingagent.API_VERSION, namespace, tradingagent.PLURAL, name)
        key = f"ta/{namespace}/{name}"
        async with state.locks[key], metrics.triggered_by(trigger):
            if trigger == resync.TRIGGER and not await state.resync.may_act():
                # kopf pauses its own handlers while a peer leads; only our loops ask (resync.py).
                return
            if trigger == CHILD and state.unchanged_since_last_reconcile(key, namespace=namespace, name=name):
                metrics.UNCHANGED_CHILD_EVENTS.labels(tradingagent.KIND).inc()
                return
            state.reconciled.pop(key, None)  # until this reconcile has written what it found
            body = await state.api.get(path, payloads.TradingAgent)
            if body is None or _deleting(body):
                metrics.record_phase(tradingagent.KIND, key, None)
                state.forget(key)
                return  # gone: garbage collection removes the children
            if agents.is_known_invalid(body):
                return  # already reported for this generation; only a spec change helps
            with metrics.reconciling(tradingagent.KIND, trigger):
                try:
                    reading = specs.read_spec(tradingagent.TradingAgentSpec, body.get("spec") or {})
                except specs.InvalidSpecError as error:
                    await refuse_agent(path, body, error)
                    raise
                await notice_ignored(body, reading.ignored)
                try:
                    required = reading.spec.requires_schema
                    if state.indexes is not None:
                        observed = agents.observe_indexed(
                            state.indexes, name=name, namespace=namespace, required_schema=required
                        )
                    else:  # before startup has handed the indexes over
                        observed = await agents.observe(
                            state.api, name=name, namespace=namespace, required_schema=required
                        )
                    converged = await agents.converge(
                        state.api,
                        body=body,
                        spec=reading.spec,
                        settings=settings,
                        observation=observed,
                        applied=state.applied.get(key),
                        now=_now(),
                    )
                    state.applied[key] = converged.applied
                    status, event = converged.status, converged.event
                    update = status.to_wire()
                    update.update(await state.figures_if_due(key, name=name, status=update))
                    current = body.get("status") or {}
                    if any(current.get(field) != value for field, value in update.items()):
                        await state.api.patch_status(path, update)  # else: nothing to write
                    state.reconciled[key] = (required, agents.observation_digest(converged.observation))
                except kubeapi.KubeApiError as error:
                    if await state.deleted_meanwhile(path, body):
                        LOGGER.debug("the agent was deleted during its reconcile", extra={"agent": key})
                        return
                    await state.post(body, ("Warning", "ReconcileFailed", str(error)))
                    raise kopf.TemporaryError(f"reconciling the agent failed: {error}", delay=5) from error
            await state.post(body, event)
        metrics.record_phase(tradingagent.KIND, key, status.phase)

    async def refuse_agent(path: str, body: payloads.TradingAgent, error: specs.InvalidSpecError) -> None:
        previous = tradingagent.TradingAgentStatus.model_validate(body.get("status") or {})
        status = agents.invalid_status(
            previous=previous, generation=int(body["metadata"].get("generation", 0)), error=error, now=_now()
        )
        try:
            await state.api.patch_status(path, status.to_wire())
        except kubeapi.KubeApiError as patch_error:
            if await state.deleted_meanwhile(path, body):
                return
            raise kopf.TemporaryError(f"reporting the invalid spec failed: {patch_error}", delay=5) from None
        LOGGER.warning("the agent's spec cannot be used", extra={"agent": body["metadata"]["name"]})
        await state.post(body, ("Warning", "InvalidSpec", f"the operator cannot use this spec: {error}"))

    async def notice_ignored(body: payloads.TradingAgent, ignored: tuple[str, ...]) -> None:
        """Fields of a newer CRD: ignored, said once per generation (in an Event and the log)."""
        status = body.get("status") or {}
        if not ignored or status.get("observedGeneration") == body["metadata"].get("generation"):
            return
        fields = ", ".join(ignored)
        LOGGER.warning(
            "unknown spec fields ignored", extra={"agent": body["metadata"]["name"], "fields": fields}
        )
        await state.post(
            body, ("Normal", "UnknownFieldsIgnored", f"this operator does not know {fields}; ignored")
        )

    @kopf.on.resume(*TA, registry=registry, id="tradingagent_resume")
    @kopf.on.create(*TA, registry=registry, id="tradingagent_create")
    @kopf.on.update(*TA, registry=registry, id="tradingagent_update", field="spec")
    async def tradingagent_reconcile(name: str | None, namespace: str | None, reason: str, **_: Any) -> None:
        if name and namespace:
            try:
                await reconcile_agent(namespace, name, trigger=str(reason))
            except specs.InvalidSpecError as error:
                # Status and Event are written; retrying cannot help until the spec changes.
                raise kopf.PermanentError(f"invalid spec: {error}") from None

    async def reconcile_agent_of_child(namespace: str | None, labels: kopf.Labels) -> None:
        name = labels.get(builders.AGENT_LABEL)
        if name and namespace:
            with contextlib.suppress(specs.InvalidSpecError):  # reported by the reconcile
                await reconcile_agent(namespace, name, trigger=CHILD)

    agent_children = builders.managed_selector("agent")

    @kopf.on.event(
        "apps", "v1", "deployments", registry=registry, id="agent_deployment_event", labels=agent_children
    )
    async def agent_deployment_event(namespace: str | None, labels: kopf.Labels, **_: Any) -> None:
        await reconcile_agent_of_child(namespace, labels)

    @kopf.on.event("", "v1", "pods", registry=registry, id="agent_pod_event", labels=agent_children)
    async def agent_pod_event(namespace: str | None, labels: kopf.Labels, **_: Any) -> None:
        await reconcile_agent_of_child(namespace, labels)

    # -- MigrationRun -------------------------------------------------------------------

    async def reconcile_run(
        *,
        kind: str,
        path: str,
        key: str,
        trigger: str,
        shape: type[Run],
        reconcile: Callable[[Run], Awaitable[migrations.Decision | backtests.Decision]],
    ) -> None:
        """One reconcile of a run (MigrationRun, BacktestRun) under its lock: re-read it, let
        ``reconcile`` observe and act, write the status when it changed, post the event."""
        async with state.locks[key], metrics.triggered_by(trigger):
            if trigger == resync.TRIGGER and not await state.resync.may_act():
                return
            body = await state.api.get(path, shape)
            if body is None or _deleting(body):
                metrics.record_phase(kind, key, None)
                state.forget(key)
                return
            if (body.get("status") or {}).get("cleanedUp"):
                return  # final, and its pods are gone: nothing left to do
            with metrics.reconciling(kind, trigger):
                try:
                    decision = await reconcile(body)
                    current = body.get("status") or {}
                    if any(current.get(field) != value for field, value in decision.status.items()):
                        await state.api.patch_status(path, decision.status)
                except kubeapi.KubeApiError as error:
                    if await state.deleted_meanwhile(path, body):
                        LOGGER.debug("the run was deleted during its reconcile", extra={"run": key})
                        return
                    await state.post(body, ("Warning", "ReconcileFailed", str(error)))
                    raise kopf.TemporaryError(f"reconciling the {kind} failed: {error}", delay=5) from error
            await state.post(body, decision.event)
        metrics.record_phase(kind, key, decision.status.get("phase"))

    async def reconcile_migration(namespace: str, name: str, trigger: str) -> None:
        await reconcile_run(
            kind=migrationrun.KIND,
            path=kubeapi.namespaced(migrationrun.API_VERSION, namespace, migrationrun.PLURAL, name),
            key=f"mr/{namespace}/{name}",
            trigger=trigger,
            shape=payloads.MigrationRun,
            reconcile=lambda body: migrations.reconcile(state.api, body=body, settings=settings, now=_now()),
        )

    @kopf.on.resume(*MR, registry=registry, id="migrationrun_resume")
    @kopf.on.create(*MR, registry=registry, id="migrationrun_create")
    async def migrationrun_start(name: str | None, namespace: str | None, reason: str, **_: Any) -> None:
        if name and namespace:
            await reconcile_migration(namespace, name, trigger=str(reason))

    migration_pods = builders.managed_selector("migration")

    @kopf.on.event("", "v1", "pods", registry=registry, id="migration_pod_event", labels=migration_pods)
    async def migration_pod_event(namespace: str | None, labels: kopf.Labels, **_: Any) -> None:
        name = labels.get(builders.MIGRATION_LABEL)
        if name and namespace:
            await reconcile_migration(namespace, name, trigger="pod")

    # -- BacktestRun --------------------------------------------------------------------

    async def reconcile_backtest(namespace: str, name: str, trigger: str) -> None:
        await reconcile_run(
            kind=backtestrun.KIND,
            path=kubeapi.namespaced(backtestrun.API_VERSION, namespace, backtestrun.PLURAL, name),
            key=f"bt/{namespace}/{name}",
            trigger=trigger,
            shape=payloads.BacktestRun,
            reconcile=lambda body: backtests.reconcile(state.api, body=body, settings=settings, now=_now()),
        )

    @kopf.on.resume(*BT, registry=registry, id="backtestrun_resume")
    @kopf.on.create(*BT, registry=registry, id="backtestrun_create")
    async def backtestrun_start(name: str | None, namespace: str | None, reason: str, **_: Any) -> None:
        if name and namespace:
            await reconcile_backtest(namespace, name, trigger=str(reason))

    backtest_pods = builders.managed_selector("backtest")

    @kopf.on.event("", "v1", "pods", registry=registry, id="backtest_pod_event", labels=backtest_pods)
    async def backtest_pod_event(namespace: str | None, labels: kopf.Labels, **_: Any) -> None:
        name = labels.get(builders.BACKTEST_LABEL)
        if name and namespace:
            await reconcile_backtest(namespace, name, trigger="pod")

    @kopf.index(*BT, registry=registry, id="backtest_runs")
    def backtest_runs(
        namespace: str | None, body: kopf.Body, **_: Any
    ) -> dict[str, payloads.BacktestRun] | None:
        return {namespace: cast(payloads.BacktestRun, dict(body))} if namespace else None

    async def resync_backtest(body: payloads.BacktestRun) -> None:
        if not (body.get("status") or {}).get("cleanedUp"):
            await reconcile_backtest(
                body["metadata"]["namespace"], body["metadata"]["name"], trigger=resync.TRIGGER
            )

    async def resync_backtests() -> None:
        """Deadlines, the pod's TTL and TradingAgents created after the run pass with time, not events."""
        if state.backtest_runs is not None:
            runs = [body for store in list(state.backtest_runs.values()) for body in store]
            await state.resync.each(runs, resync_backtest)

    # -- periodic resync (see resync.py for why not kopf timers) --------------------------

    async def resync_agent(body: payloads.TradingAgent) -> None:
        if agents.is_known_invalid(body):
            return  # no request at all for a spec that waits for a change
        with contextlib.suppress(specs.InvalidSpecError):  # reported by the reconcile
            await reconcile_agent(
                body["metadata"]["namespace"], body["metadata"]["name"], trigger=resync.TRIGGER
            )

    async def resync_agents() -> None:
        """Every agent kopf's watch knows, reconciled once: one GET each when nothing changed,
        because its children come from the indexes too."""
        if state.indexes is not None:
            await state.resync.each(_first_of_each(state.indexes.agents), resync_agent)

    async def resync_migrations() -> None:
        if state.indexes is not None:
            runs = [body for store in list(state.indexes.runs.values()) for body in store]
            await state.resync.each(runs, resync_migration)

    async def resync_migration(body: payloads.MigrationRun) -> None:
        if not (body.get("status") or {}).get("cleanedUp"):
            await reconcile_migration(
                body["metadata"]["namespace"], body["metadata"]["name"], trigger=resync.TRIGGER
            )

    # -- indexes: kopf's watches keep them, so an unchanged resync reads nothing but the agent

    @kopf.index(*TA, registry=registry, id="trading_agents")
    def trading_agents(
        namespace: str | None, name: str | None, body: kopf.Body, **_: Any
    ) -> dict[tuple[str, str], payloads.TradingAgent] | None:
        return {(namespace, name): cast(payloads.TradingAgent, dict(body))} if namespace and name else None

    @kopf.index("apps", "v1", "deployments", registry=registry, id="agent_deployments", labels=agent_children)
    @kopf.index("", "v1", "pods", registry=registry, id="agent_pods", labels=agent_children)
    def agent_child_by_agent(
        namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
    ) -> dict[tuple[str, str], payloads.Deployment | payloads.Pod] | None:
        agent = labels.get(builders.AGENT_LABEL)
        return {(namespace, agent): cast(payloads.Deployment, dict(body))} if agent and namespace else None

    @kopf.index(*MR, registry=registry, id="migration_runs")
    def migration_runs(
        namespace: str | None, body: kopf.Body, **_: Any
    ) -> dict[str, payloads.MigrationRun] | None:
        return {namespace: cast(payloads.MigrationRun, dict(body))} if namespace else None

    @kopf.on.startup(registry=registry, id="operator_resync_start")
    async def operator_resync_start(**kwargs: Any) -> None:
        # kopf hands its live indexes to startup handlers too, by index id; the reconciles use them.
        state.indexes = agents.AgentIndexes(
            agents=kwargs["trading_agents"],
            deployments=kwargs["agent_deployments"],
            pods=kwargs["agent_pods"],
            runs=kwargs["migration_runs"],
        )
        state.backtest_runs = kwargs["backtest_runs"]
        loops = state.resync
        plan: list[tuple[str, float, Callable[[], Awaitable[None]]]] = [
            ("agents", settings.reconcile_interval_seconds, resync_agents),
            ("migrations", settings.migration_poll_seconds, resync_migrations),
            ("backtests", settings.migration_poll_seconds, resync_backtests),
        ]  # fmt: skip
        loops.start(plan)

    return state

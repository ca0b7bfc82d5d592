"""The change sensor: a sync run when a source query's probe answers differently than last time.

The cursor holds every probe's last answer and a generation number. A tick asks for a run
only when some answer changed, with a run key made of the next generation and the answers,
so a tick repeated from the same cursor (its cursor update lost) asks for the same key and
Dagster launches it once. A probe that fails skips the tick with the reason and leaves the
cursor as it was, so the change is still seen once the warehouse answers again.
"""

import hashlib
import json
from dataclasses import dataclass, field

import dagster as dg

from userflow_assets.orchestration.probes import ProbeError, ProbeTarget, run_probes
from userflow_assets.orchestration.schedules import SYNC_RUN_TAG, JobTarget
from userflow_assets.settings import SHIPPED, Names
from userflow_assets.spec import SyncSpec
from userflow_assets.warehouse.resources import WarehouseResource

SENSOR_NAME = "userflow_warehouse_changes"

Probes = dict[str, list[str | None]]


@dataclass(frozen=True)
class ProbeCursor:
    generation: int = 0
    probes: Probes = field(default_factory=dict)

    @staticmethod
    def parse(text: str | None) -> "ProbeCursor":
        if not text:
            return ProbeCursor()
        data = json.loads(text)
        return ProbeCursor(generation=int(data["generation"]), probes=dict(data["probes"]))

    def dump(self) -> str:
        return json.dumps({"generation": self.generation, "probes": self.probes}, sort_keys=True)


def probe_targets(spec: SyncSpec) -> list[ProbeTarget]:
    """One target per object the spec syncs; a probe named for an object it does not sync is an error."""
    queries = {"users": spec.users.query}
    if spec.groups is not None:
        queries["groups"] = spec.groups.query
    if spec.events is not None:
        queries["events"] = spec.events.query
    unknown = sorted(set(spec.sensor.probes) - set(queries))
    if unknown:
        raise ValueError(
            f"sensor.probes names {', '.join(unknown)}, which the spec does not sync "
            f"(it syncs {', '.join(sorted(queries))})"
        )
    return [ProbeTarget(name, query, spec.sensor.probes.get(name)) for name, query in sorted(queries.items())]


def run_key(generation: int, probes: Probes) -> str:
    digest = hashlib.sha256(json.dumps(probes, sort_keys=True).encode()).hexdigest()[:16]
    return f"warehouse-change-{generation}-{digest}"


def evaluate_probes(previous: ProbeCursor, probes: Probes) -> tuple[ProbeCursor, list[str]] | None:
    """The next cursor and the changed objects, or None when nothing changed.

    A first tick (no cursor) counts as a change: nothing says the last sync saw this data.
    """
    changed = sorted(name for name, values in probes.items() if previous.probes.get(name) != values)
    if not changed:
        return None
    return ProbeCursor(generation=previous.generation + 1, probes=probes), changed


def build_change_sensor(spec: SyncSpec, job: JobTarget, names: Names = SHIPPED) -> dg.SensorDefinition:
    """`userflow_warehouse_changes`: probes every source each `sensor.interval_seconds`; runs `job`
    when one changed. Running on load when `sensor.enabled`, else off until turned on."""
    targets = probe_targets(spec)
    status = dg.DefaultSensorStatus.RUNNING if spec.sensor.enabled else dg.DefaultSensorStatus.STOPPED

    @dg.sensor(
        name=names(SENSOR_NAME),
        job=job,
        required_resource_keys=names.resource_keys("warehouse"),
        minimum_interval_seconds=spec.sensor.interval_seconds,
        default_status=status,
        description="A sync when the warehouse changed: probes "
        + ", ".join(f"{t.name} ({'spec probe' if t.probe_sql else 'count, max(updated_at)'})" for t in targets),
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        warehouse: WarehouseResource = names.resource(context, "warehouse")
        previous = ProbeCursor.parse(context.cursor)
        try:
            probes = run_probes(warehouse, targets)
        except ProbeError as error:
            # Raising would also lose the cursor; skipping keeps it, and says why in the tick.
            return dg.SkipReason(f"Probe failed, cursor kept: {error}")
        outcome = evaluate_probes(previous, probes)
        if outcome is None:
            return dg.SkipReason(f"No change in {', '.join(sorted(probes))}")
        cursor, changed = outcome
        context.update_cursor(cursor.dump())
        return dg.RunRequest(
            run_key=run_key(cursor.generation, cursor.probes),
            tags={SYNC_RUN_TAG: "sensor", "userflow/changed": ",".join(changed)},
        )

    return _sensor

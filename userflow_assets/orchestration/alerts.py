"""Alerts: a message to a webhook (Slack incoming-webhook JSON) when a sync run fails, when a
run leaves more records waiting to be retried than the spec allows, and when a later run
recovers.

Two run-status sensors watch the sync job. Each finished run is judged once: `failed`,
`partial` (a `failed_share` check failed) or `ok`, kept as the run tag `userflow/alert`. A
message goes out for `failed` and `partial`, and for `ok` only when the run before it was not.
The webhook URL is read from the environment at each tick (it is a secret: never logged); while
the variable is unset the sensors skip. A tick retried after a message went out finds the tag
and sends nothing again.
"""

import os

import dagster as dg
import httpx
from dagster import DagsterEventType, DagsterRunStatus, RunsFilter

from userflow_assets.orchestration.schedules import JobTarget
from userflow_assets.settings import SHIPPED, Names

ALERT_TAG = "userflow/alert"
WEBHOOK_VARIABLE = "USERFLOW_ALERT_WEBHOOK_URL"
FAILURE_SENSOR, SUCCESS_SENSOR = "userflow_alert_on_failure", "userflow_alert_on_success"
WEBHOOK_TIMEOUT_S = 10.0


def _failed_shares(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """The descriptions of this run's `failed_share` checks that failed."""
    records = instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)
    found = []
    for record in records:
        evaluation = record.get_dagster_event().event_specific_data
        if getattr(evaluation, "check_name", None) == "failed_share" and not evaluation.passed:  # type: ignore[union-attr]
            found.append(evaluation.description or "failed_share failed")  # type: ignore[union-attr]
    return found


def _previous_verdict(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str | None:
    """How the job's finished run before `run` was judged (None: no such run, or not judged)."""
    finished = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE]
    runs = instance.get_runs(filters=RunsFilter(job_name=run.job_name, statuses=finished), limit=50)  # newest first
    ids = [r.run_id for r in runs]
    at = ids.index(run.run_id) if run.run_id in ids else -1
    return runs[at + 1].tags.get(ALERT_TAG) if 0 <= at < len(runs) - 1 else None


def _cause(instance: dg.DagsterInstance, run_id: str, fallback: str) -> str:
    """The first failed step's error (what the engineer must fix), one line, at most 500 characters."""
    for record in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE):
        data = record.get_dagster_event().step_failure_data
        error = data.error if data is not None else None
        while error is not None and error.cause is not None and "DagsterExecutionStepExecutionError" in error.cls_name:
            error = error.cause
        if error is not None:
            return " ".join(error.message.split())[:500]
    return fallback


def _message(run: dg.DagsterRun, verdict: str, detail: str) -> str:
    head = {
        "failed": "Userflow sync failed",
        "partial": "Userflow sync left records waiting to be retried",
        "recovered": "Userflow sync recovered",
    }[verdict]
    return f"{head}: run {run.run_id} of {run.job_name}. {detail}".strip()


def _post(url: str, text: str) -> None:
    """Post `text`; an error names the variable, never the URL (it is the webhook's secret)."""
    try:
        response = httpx.post(url, json={"text": text}, timeout=WEBHOOK_TIMEOUT_S)
    except httpx.HTTPError as error:
        raise RuntimeError(f"the alert webhook in {WEBHOOK_VARIABLE} could not be reached: {type(error).__name__}") from None
    if response.is_error:
        raise RuntimeError(f"the alert webhook in {WEBHOOK_VARIABLE} answered {response.status_code}")


def judge_and_alert(instance: dg.DagsterInstance, run: dg.DagsterRun, error: str | None) -> dg.SkipReason | None:
    """Judge the finished `run`, tag it, and post what an engineer must hear about it."""
    run = instance.get_run_by_id(run.run_id) or run  # its tags as stored now, not as the tick saw them
    if ALERT_TAG in run.tags:
        return dg.SkipReason(f"run {run.run_id} was judged already ({run.tags[ALERT_TAG]})")
    url = os.environ.get(WEBHOOK_VARIABLE)
    if not url:
        return dg.SkipReason(f"{WEBHOOK_VARIABLE} is not set: alerts are off")
    shares = [] if error is not None else _failed_shares(instance, run.run_id)
    verdict = "failed" if error is not None else "partial" if shares else "ok"
    if verdict == "failed":
        text = _message(run, "failed", error or "")
    elif verdict == "partial":
        text = _message(run, "partial", "; ".join(shares))
    elif _previous_verdict(instance, run) in ("failed", "partial"):
        text = _message(run, "recovered", "It succeeded with every failed share within its limit.")
    else:
        text = None
    if text is not None:
        _post(url, text)  # before the tag: a post that failed is tried again by the next tick
    instance.add_run_tags(run.run_id, {ALERT_TAG: verdict})
    return None


def build_alert_sensors(job: JobTarget, names: Names = SHIPPED) -> list[dg.SensorDefinition]:
    """The two sensors; on by default, quiet until the webhook variable is set."""

    @dg.run_failure_sensor(
        name=names(FAILURE_SENSOR),
        monitored_jobs=[job],
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Posts to ${WEBHOOK_VARIABLE} when a sync run fails.",
    )
    def _on_failure(context: dg.RunFailureSensorContext) -> dg.SkipReason | None:
        run = context.dagster_run
        cause = _cause(context.instance, run.run_id, context.failure_event.message or "the run failed")
        return judge_and_alert(context.instance, run, cause)

    @dg.run_status_sensor(
        name=names(SUCCESS_SENSOR),
        run_status=DagsterRunStatus.SUCCESS,
        monitored_jobs=[job],
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Posts to ${WEBHOOK_VARIABLE} when a sync run leaves more records waiting to be retried "
        "than the spec allows, and when a run recovers from a failure.",
    )
    def _on_success(context: dg.RunStatusSensorContext) -> dg.SkipReason | None:
        return judge_and_alert(context.instance, context.dagster_run, None)

    return [_on_failure, _on_success]

"""Jobs for test_reliability_recovery: one asset that records its run's worker, run by the
in-process executor and by the multiprocess executor (module level, so Dagster can reconstruct
them in a step subprocess)."""

import dagster as dg

from userflow_assets.recovery import record_run_worker


@dg.asset
def probe(context: dg.AssetExecutionContext) -> None:
    record_run_worker(context)


_DEFS = dg.Definitions(
    assets=[probe],
    jobs=[
        dg.define_asset_job("in_process_probe", executor_def=dg.in_process_executor),
        dg.define_asset_job("multiprocess_probe", executor_def=dg.multiprocess_executor),
    ],
)


def in_process_probe() -> dg.JobDefinition:
    return _DEFS.resolve_job_def("in_process_probe")


def multiprocess_probe() -> dg.JobDefinition:
    return _DEFS.resolve_job_def("multiprocess_probe")

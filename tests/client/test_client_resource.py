"""The Dagster resource: key from the environment, one budget and one set of counters per run."""

import dagster as dg
import httpx
import pytest
from client_testkit import Target
from dagster import AssetExecutionContext

from userflow_assets.client import UserflowResource
from userflow_assets.emulator import EmulatorConfig

SECRET = "uf_live_resourceKey_00112233445566"


@dg.asset
async def userflow_probe(context: AssetExecutionContext, userflow: UserflowResource) -> dg.MaterializeResult:
    async with userflow.get_client() as client:
        batch = client.bulk(["a", "b/c", "d"], client.upsert_user, label="users", log=context.log, progress_interval_s=0)
        results = [r async for r in batch]
        assert all(r.ok for r in results)
    async with userflow.get_client() as second:  # another client of the same run
        await second.upsert_group("g1")
        assert second.limiter is client.limiter
        return dg.MaterializeResult(metadata=second.metadata())


@pytest.mark.parametrize("emulator_config", [EmulatorConfig(api_key=SECRET)])
def test_resource_in_a_run_shares_counters_and_hides_the_key(
    port_target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USERFLOW_API_KEY", SECRET)
    resource = UserflowResource(api_key=dg.EnvVar("USERFLOW_API_KEY"), base_url=port_target.base_url)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([userflow_probe], resources={"userflow": resource}, instance=instance)
    assert result.success
    metadata = result.asset_materializations_for_node("userflow_probe")[0].metadata
    assert metadata["userflow_requests"].value == 4
    assert metadata["userflow_status_200"].value == 4
    assert metadata["userflow_failures"].value == 0
    assert metadata["userflow_rate_per_minute"].value > 0
    requests = httpx.get(f"{port_target.base_url}/__emulator/requests").json()
    assert requests["by_endpoint"]["POST /users"] == {"200": 3}
    logs = instance.all_logs(result.run_id)
    event_text = "\n".join(str(entry) for entry in logs)
    assert SECRET not in event_text
    assert "users: 3/3 (100.0%)" in event_text  # the progress line reached the run's log


def test_plain_http_is_refused_off_loopback() -> None:
    resource = UserflowResource(api_key="uf_test_plain_http_key", base_url="http://api.userflow.com")
    with pytest.raises(ValueError, match="https"):
        resource.get_client()

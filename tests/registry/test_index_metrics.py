"""The registry's contract-index follower shows on /metrics with the same gauges as the subsidy and reporting
followers (state, lag, seconds stalled)."""

from __future__ import annotations

from tests.support.asserts import wait_until

FEED = "registry-contract-index"


async def test_the_contract_index_follower_has_its_gauges(registry):
    point = await registry.point("6401")
    await registry.submit(point)

    async def caught_up() -> str | None:
        text = (await registry.client.get("/metrics")).text
        return text if f'tcr_follower_lag_events{{feed="{FEED}"}} 0.0' in text else None

    text = await wait_until(caught_up, what="the contract index's lag gauge at 0")
    states = [line for line in text.splitlines() if line.startswith(f'tcr_follower_state{{feed="{FEED}"')]
    assert len(states) == 5
    assert sum(float(line.rsplit(" ", 1)[1]) for line in states) == 1.0  # exactly one current state
    assert f'tcr_follower_state{{feed="{FEED}",state="stalled"}} 0.0' in text
    assert f'tcr_follower_stalled_seconds{{feed="{FEED}"}} 0.0' in text

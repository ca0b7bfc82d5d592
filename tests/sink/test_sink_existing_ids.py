"""Update mode's question "which of these IDs exist in Userflow?" (`existing_ids`): one GET per
candidate while they are few, one listing when that costs fewer requests; against the
in-process emulator, whose request log shows which way was taken."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from userflow_assets.client import AdaptiveRateLimiter, UserflowClient
from userflow_assets.emulator import EmulatorConfig, create_app
from userflow_assets.sink import apply
from userflow_assets.sink.apply import SyncAborted, existing_ids

CONFIG = EmulatorConfig(seed_content=False)
SEEDED = 250  # three pages of 100 in a listing
EXISTING = ["u005", "u120", "u249"]  # one on each page
UNKNOWN = [f"new{i}" for i in range(7)]


class Emulator:
    def __init__(self) -> None:
        self.transport = httpx.ASGITransport(app=create_app(CONFIG))
        self.seen = 0

    def client(self, **options: Any) -> UserflowClient:
        return UserflowClient(
            CONFIG.api_key,
            base_url="http://emulator",
            transport=self.transport,
            limiter=AdaptiveRateLimiter(initial_per_minute=600_000, max_concurrency=8),
            allow_insecure_http=True,
            **options,
        )

    async def inspect(self, method: str, path: str, body: Any = None) -> Any:
        async with httpx.AsyncClient(base_url="http://emulator", transport=self.transport) as http:
            response = await http.request(method, f"/__emulator{path}", json=body)
            response.raise_for_status()
            return response.json()

    async def mark(self) -> None:
        """From here on, `requests_since_mark` lists what was sent."""
        self.seen = (await self.inspect("GET", "/requests?limit=0"))["total"]

    async def requests_since_mark(self) -> list[tuple[str, str, str | None]]:
        data = await self.inspect("GET", "/requests?limit=1000")
        new = data["total"] - self.seen
        return [(e["method"], e["path"], e["id"]) for e in data["log"][len(data["log"]) - new :]] if new else []


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    emu = Emulator()
    async with emu.client() as client:
        for i in range(SEEDED):
            await client.upsert_user(f"u{i:03d}", {"n": i})
            await client.upsert_group(f"u{i:03d}", {"n": i})
    await emu.mark()
    yield emu


def few_lookups(monkeypatch: pytest.MonkeyPatch, n: int = 3) -> None:
    monkeypatch.setattr(apply, "MAX_LOOKUPS", n)


@pytest.mark.parametrize("object_type", ["user", "group"])
async def test_many_candidates_are_found_by_one_listing(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, object_type: str
) -> None:
    few_lookups(monkeypatch)
    candidates = sorted(EXISTING + UNKNOWN)  # 10 > MAX_LOOKUPS, and a listing is ~1 page by the estimate
    async with emulator.client() as client:
        found = await existing_ids(client, object_type, candidates, known=2)
    assert found == set(EXISTING)
    sent = await emulator.requests_since_mark()
    path = f"/{object_type}s"
    # Every page of the listing walked (the last existing ID is on the third), and not one GET by ID.
    assert sent == [("GET", path, None)] * 3


@pytest.mark.parametrize("object_type", ["user", "group"])
async def test_few_candidates_are_looked_up_one_by_one(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, object_type: str
) -> None:
    few_lookups(monkeypatch)
    candidates = ["u120", "new0", "u005"]  # exactly MAX_LOOKUPS
    async with emulator.client() as client:
        found = await existing_ids(client, object_type, candidates, known=0)
    assert found == {"u120", "u005"}
    sent = await emulator.requests_since_mark()
    assert sorted(sent) == sorted(("GET", f"/{object_type}s/{{id}}", c) for c in candidates)


async def test_lookups_win_when_a_listing_would_take_more_pages(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 10 candidates over MAX_LOOKUPS, but 2,000 known users make a listing ~21 pages: 10 GETs are cheaper.
    few_lookups(monkeypatch)
    candidates = sorted(EXISTING + UNKNOWN)
    async with emulator.client() as client:
        found = await existing_ids(client, "user", candidates, known=2000)
    assert found == set(EXISTING)
    sent = await emulator.requests_since_mark()
    assert sorted(sent) == sorted(("GET", "/users/{id}", c) for c in candidates)


@pytest.mark.parametrize(
    ("candidates", "known", "listing"),
    [
        (3, 0, False),  # at MAX_LOOKUPS: GETs
        (4, 0, True),  # one over, and a listing is estimated at 1 page
        (4, 295, True),  # (295 + 4) // 100 + 1 = 3 pages, fewer than 4 GETs
        (4, 296, False),  # (296 + 4) // 100 + 1 = 4 pages, no fewer than 4 GETs
    ],
    ids=["at-max", "over-max", "pages-below", "pages-equal"],
)
async def test_the_cheaper_way_is_chosen(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, candidates: int, known: int, listing: bool
) -> None:
    few_lookups(monkeypatch)
    ids = ["u005", *UNKNOWN][:candidates]
    async with emulator.client() as client:
        assert await existing_ids(client, "user", ids, known=known) == {"u005"}
    paths = {path for _, path, _ in await emulator.requests_since_mark()}
    assert paths == ({"/users"} if listing else {"/users/{id}"})


async def test_a_lookup_that_fails_otherwise_than_404_stops_the_run(emulator: Emulator) -> None:
    await emulator.inspect("POST", "/faults", {"next": ["500"], "path_prefix": "/users", "method": "GET"})
    async with emulator.client(max_attempts=1) as client:
        with pytest.raises(SyncAborted, match=r"could not tell whether user 'u005' exists"):
            await existing_ids(client, "user", ["u005"], known=0)


async def test_a_listing_longer_than_the_lookups_stops_and_looks_up_the_rest(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fresh state (known=0) over a workspace of three pages: the estimate says one page, so a
    # listing starts; after two pages (as many as candidates) it has cost what the GETs would.
    few_lookups(monkeypatch, 1)
    async with emulator.client() as client:
        found = await existing_ids(client, "user", ["u249", "new0"], known=0)
    assert found == {"u249"}
    sent = await emulator.requests_since_mark()
    assert sent[:2] == [("GET", "/users", None)] * 2
    assert sorted(sent[2:]) == [("GET", "/users/{id}", "new0"), ("GET", "/users/{id}", "u249")]


async def test_a_listing_stops_once_every_candidate_is_found(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    few_lookups(monkeypatch, 1)
    async with emulator.client() as client:
        found = await existing_ids(client, "group", ["u005", "u010"], known=0)
    assert found == {"u005", "u010"}
    assert await emulator.requests_since_mark() == [("GET", "/groups", None)]  # both on the first page

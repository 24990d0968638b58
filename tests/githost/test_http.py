"""The git host client against the fake host: pagination over several pages (GitHub's
``Link``, GitLab's ``X-Next-Page``), rate limits waited out within the budget or given up,
and the token sent to the API's own origin only."""

from __future__ import annotations

import pytest

from auditor.githost import github, gitlab
from auditor.githost.http import (
    Budget,
    Client,
    Denied,
    GitHostError,
    RateLimited,
    Unavailable,
)
from tests.githost.fakehost import FakeHost


class FakeClock:
    """A budget's clock and sleep, without sleeping."""

    def __init__(self) -> None:
        self.t = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


def _pull(number: int) -> dict[str, object]:
    return {"number": number, "merged_at": None, "merge_commit_sha": None}


def test_github_pagination_follows_link_next_over_three_pages() -> None:
    with FakeHost(page_size=2, token="t0k") as host:
        host.commit_pulls["abc1234"] = [_pull(n) for n in range(1, 6)]
        client = Client(host.url, github.headers("t0k"))
        got = [p["number"] for p in client.pages("/repos/acme/gitops/commits/abc1234/pulls")]
    assert got == [1, 2, 3, 4, 5]
    pages = [s for s in host.seen if s.path.endswith("/pulls")]
    assert [s.query.get("page", "1") for s in pages] == ["1", "2", "3"]
    assert all(s.headers["authorization"] == "Bearer t0k" for s in pages)
    assert pages[0].headers["x-github-api-version"] == "2022-11-28"


def test_gitlab_pagination_follows_x_next_page() -> None:
    with FakeHost(provider="gitlab", page_size=2, token="glpat") as host:
        host.mr_commits[3] = [{"id": f"{i:040x}"} for i in range(5)]
        host.mrs[3] = {"iid": 3}
        client = Client(host.url, gitlab.headers("glpat"))
        got = list(client.pages("/projects/acme%2Fgitops/merge_requests/3/commits"))
    assert len(got) == 5
    assert [s.query.get("page", "1") for s in host.seen] == ["1", "2", "3"]
    assert all(s.headers["private-token"] == "glpat" for s in host.seen)


def test_a_short_rate_limit_is_waited_out_within_the_budget() -> None:
    clock = FakeClock()
    with FakeHost(limit_after=1, reset_in=5) as host:
        host.commit_pulls["abc1234"] = [_pull(1)]
        client = Client(host.url, github.headers(""),
                        Budget(60, clock=clock.clock, sleep=clock.sleep))
        assert list(client.pages("/repos/acme/gitops/commits/abc1234/pulls"))
        host.limit_after = None  # the window reset while we waited
        # The second request meets the limit, waits (fake) for the reset, then succeeds.
        host.limit_after = len(host.seen)
        waited = []

        def reset_then_sleep(seconds: float) -> None:
            waited.append(seconds)
            host.limit_after = None

        client.budget.sleep = reset_then_sleep
        assert list(client.pages("/repos/acme/gitops/commits/abc1234/pulls"))
    assert waited and 4 <= waited[0] <= 7


def test_a_long_rate_limit_gives_up_and_asks_nothing_more() -> None:
    clock = FakeClock()
    with FakeHost(limit_after=0, reset_in=3600) as host:
        client = Client(host.url, github.headers(""),
                        Budget(30, clock=clock.clock, sleep=clock.sleep))
        with pytest.raises(RateLimited, match="rate limit") as info:
            client.get("/repos/acme/gitops/pulls/1")
        assert info.value.reset_at is not None
        asked = len(host.seen)
        with pytest.raises(RateLimited, match="not asked again"):
            client.get("/repos/acme/gitops/pulls/2")
        assert len(host.seen) == asked  # no request while the limit holds
    assert clock.slept == []


def test_gitlab_429_with_retry_after_is_a_rate_limit() -> None:
    clock = FakeClock()
    with FakeHost(provider="gitlab", limit_after=0, retry_after=2) as host:
        def sleep(seconds: float) -> None:
            clock.slept.append(seconds)
            host.limit_after = None

        client = Client(host.url, {}, Budget(10, clock=clock.clock, sleep=sleep))
        host.mrs[1] = {"iid": 1}
        assert client.get("/projects/7/merge_requests/1").body == {"iid": 1}
    assert clock.slept == [2.0]


def test_the_token_goes_to_the_api_origin_only() -> None:
    with FakeHost(token="s3cret") as host, FakeHost() as elsewhere:
        host.commit_pulls["abc1234"] = [_pull(1), _pull(2)]
        host.page_size = 1
        # A next link to another origin (a hostile or misconfigured answer) is not followed.
        host.link_base = elsewhere.url
        client = Client(host.url, github.headers("s3cret"))
        with pytest.raises(GitHostError, match="not on the API's host") as info:
            list(client.pages("/repos/acme/gitops/commits/abc1234/pulls"))
    assert elsewhere.seen == [] and len(host.seen) == 1
    assert "s3cret" not in str(info.value)


def test_bad_token_is_denied_and_never_shown() -> None:
    with FakeHost(token="right") as host:
        client = Client(host.url, github.headers("wrong-s3cret"))
        with pytest.raises(Denied) as info:
            client.get("/repos/acme/gitops/pulls/1")
    assert "wrong-s3cret" not in str(info.value) and "Bad credentials" in str(info.value)


def test_an_unreachable_host_is_unavailable_then_not_asked_again() -> None:
    clock = FakeClock()
    with FakeHost() as host:
        url = host.url
    client = Client(url, {}, Budget(5, clock=clock.clock, sleep=clock.sleep), timeout=2)
    with pytest.raises(Unavailable):
        client.get("/repos/acme/gitops/pulls/1")
    requests = client.requests
    with pytest.raises(Unavailable, match="not asked again"):
        client.get("/repos/acme/gitops/pulls/2")
    assert client.requests == requests

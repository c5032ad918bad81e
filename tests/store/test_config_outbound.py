"""``outbound_proxies`` (RFC 5626 flows) in the account configuration, beside ``outbound_proxy``."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from securephone.aio.phone import account_spec
from securephone.sip.uri import SipUri
from securephone.store.config import AccountConfig

EDGES = ["sip:127.0.0.1:5071;transport=tcp", "sip:127.0.0.1:5072;transport=tcp"]


def account(**extra: Any) -> AccountConfig:
    return AccountConfig.model_validate(
        {"name": "alice", "user": "alice", "domain": "example.test", **extra}
    )


def test_two_outbound_proxies_become_two_flows_of_the_account() -> None:
    spec = account_spec(account(outbound=True, outbound_proxies=EDGES))
    assert spec.outbound_proxies == tuple(SipUri.parse(uri) for uri in EDGES)
    assert spec.outbound_proxy is None and spec.outbound


def test_old_single_outbound_proxy_stays_valid() -> None:
    spec = account_spec(account(outbound_proxy=EDGES[0]))
    assert spec.outbound_proxy == SipUri.parse(EDGES[0]) and spec.outbound_proxies == ()


def test_flows_need_outbound_and_exclude_the_single_proxy() -> None:
    with pytest.raises(ValidationError, match="needs outbound = true"):
        account(outbound_proxies=EDGES)
    with pytest.raises(ValidationError, match="either outbound_proxy or outbound_proxies"):
        account(outbound=True, outbound_proxy=EDGES[0], outbound_proxies=EDGES)
    with pytest.raises(ValidationError, match="outbound_proxies"):
        account(outbound=True, outbound_proxies=["http://example.test"])

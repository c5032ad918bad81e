"""RFC 5626 flows of one account: one registration per outbound proxy, and failover between them.

Sans-I/O helpers over an account's list of ``Registration`` objects (one per flow, reg-id 1, 2 …).
The account is reachable while any flow is registered (§4.2: the registrar keeps every flow of
the instance and routes to one that works, §5.3/§6); out-of-dialog requests leave over a working
flow (§4.3); a failed flow is formed again, with the §4.5 back-off whose base depends on whether
another flow still works.
"""

from __future__ import annotations

from collections.abc import Sequence

from securephone.sip.registration import Registration, RegState

# The account's state from its flows' states: the first rule that matches wins.
_ACCOUNT_RULES: tuple[tuple[RegState, str], ...] = (
    (RegState.REGISTERED, "any"),
    (RegState.REGISTERING, "any"),
    (RegState.UNREGISTERING, "any"),
    (RegState.UNREGISTERED, "all"),
)


def account_state(flows: Sequence[Registration]) -> RegState:
    """REGISTERED while any flow is registered; FAILED only when no flow is under way."""
    states = [reg.state for reg in flows]
    for state, quantifier in _ACCOUNT_RULES:
        matches = [s is state for s in states]
        if (any(matches) if quantifier == "any" else all(matches)) and states:
            return state
    return RegState.FAILED if states else RegState.UNREGISTERED


def working_flow(flows: Sequence[Registration]) -> Registration | None:
    """The flow out-of-dialog requests use (§4.3): the first registered one, in reg-id order."""
    return next((reg for reg in flows if reg.state is RegState.REGISTERED), None)


def note_other_flows(flows: Sequence[Registration]) -> None:
    """Tell each flow whether another one carries the registration (the §4.5 back-off base)."""
    for reg in flows:
        reg.other_flows_up = any(o.state is RegState.REGISTERED for o in flows if o is not reg)


def flow_summary(reg: Registration, now: float) -> dict[str, object]:
    """One flow for status displays: proxy, reg-id, state, why, and when its binding ends."""
    return {
        "proxy": None if reg.proxy is None else str(reg.proxy),
        "reg_id": reg.reg_id,
        "state": reg.state.value,
        "reason": reg.reason,
        "expires_in": None if reg.expires_at is None else max(0, round(reg.expires_at - now)),
        "flow_timer": reg.flow_timer,
    }

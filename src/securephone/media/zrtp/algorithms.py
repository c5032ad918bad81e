"""Algorithm offers and agreement (RFC 6189 §4.1.2, §5.1.2-§5.1.6) with bzrtp's tie rule.

Our Hello lists what we offer; the mandatory types (S256, AES1, HS32 and HS80, DH3k, B32)
are implicitly supported by every endpoint (§5.2) and appended to both lists before
intersecting. The key agreement is chosen like bzrtp 5.1.64 does, so that both Commits
of a contention name the same one: the first common entry in our order and the first in
the peer's order; equal → that one, else the faster of the two (§4.1.2's ranking, extended
by bzrtp: DH2k < X255 < EC25 < X448 < DH3k < EC38 < EC52). For the other families the
initiator takes the first common entry in its own order (§4.1.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = [
    "MANDATORY",
    "SUPPORTED",
    "AlgorithmFamily",
    "AlgorithmOffer",
    "Algorithms",
    "choose_key_agreement",
    "negotiate",
    "srtp_suite",
    "unsupported_family",
    "with_mandatory",
]


class AlgorithmFamily(Enum):
    """The five lists of a Hello; the value is the Error code for "not supported" (Table 8)."""

    HASH = 0x51
    CIPHER = 0x52
    KEY_AGREEMENT = 0x53
    AUTH_TAG = 0x54
    SAS = 0x55


MANDATORY: dict[AlgorithmFamily, tuple[str, ...]] = {
    AlgorithmFamily.HASH: ("S256",),
    AlgorithmFamily.CIPHER: ("AES1",),
    AlgorithmFamily.AUTH_TAG: ("HS32", "HS80"),
    AlgorithmFamily.KEY_AGREEMENT: ("DH3k",),
    AlgorithmFamily.SAS: ("B32 ",),
}
# What this engine can compute (and the SRTP layer can key): never offer more.
SUPPORTED: dict[AlgorithmFamily, frozenset[str]] = {
    AlgorithmFamily.HASH: frozenset({"S256", "S384"}),
    AlgorithmFamily.CIPHER: frozenset({"AES1"}),
    AlgorithmFamily.AUTH_TAG: frozenset({"HS80", "HS32"}),
    AlgorithmFamily.KEY_AGREEMENT: frozenset({"DH3k", "X255", "EC25", "Prsh"}),
    AlgorithmFamily.SAS: frozenset({"B32 ", "B256"}),
}
_KA_SPEED = ("DH2k", "X255", "EC25", "X448", "DH3k", "EC38", "EC52")
_SRTP_SUITES = {
    ("AES1", "HS80"): "AES_CM_128_HMAC_SHA1_80",
    ("AES1", "HS32"): "AES_CM_128_HMAC_SHA1_32",
}


@dataclass(frozen=True)
class AlgorithmOffer:
    """The lists we put in our Hello, in preference order (RFC 6189 §5.2).

    Defaults: S256; AES1; HS80 before HS32 (pylibsrtp keeps an 80-bit SRTCP tag even for
    HS32, which Linphone does not); X255, DH3k, EC25; B32, B256.
    """

    hashes: tuple[str, ...] = ("S256",)
    ciphers: tuple[str, ...] = ("AES1",)
    auth_tags: tuple[str, ...] = ("HS80", "HS32")
    key_agreements: tuple[str, ...] = ("X255", "DH3k", "EC25")
    sas_types: tuple[str, ...] = ("B32 ", "B256")

    def __post_init__(self) -> None:
        for family, names in self.lists().items():
            unknown = set(names) - SUPPORTED[family]
            if unknown or len(names) > 7:
                raise ValueError(f"cannot offer {sorted(unknown)} ({family.name}, max 7)")

    def lists(self) -> dict[AlgorithmFamily, tuple[str, ...]]:
        """The five lists by family."""
        return {
            AlgorithmFamily.HASH: self.hashes,
            AlgorithmFamily.CIPHER: self.ciphers,
            AlgorithmFamily.AUTH_TAG: self.auth_tags,
            AlgorithmFamily.KEY_AGREEMENT: self.key_agreements,
            AlgorithmFamily.SAS: self.sas_types,
        }

    def effective(self, family: AlgorithmFamily) -> tuple[str, ...]:
        """Our list plus the mandatory types (all of which we implement)."""
        return with_mandatory(family, self.lists()[family])


@dataclass(frozen=True)
class Algorithms:
    """What a Commit chose (RFC 6189 §5.4)."""

    hash: str
    cipher: str
    auth_tag: str
    key_agreement: str
    sas_type: str

    @property
    def srtp_suite(self) -> str:
        """The SDES-style SRTP suite name the SRTP layer keys (AES1 + HS80/HS32)."""
        return srtp_suite(self.cipher, self.auth_tag)


def srtp_suite(cipher: str, auth_tag: str) -> str:
    """SRTP crypto-suite for a cipher + auth tag pair; KeyError if the SRTP layer has none."""
    return _SRTP_SUITES[(cipher, auth_tag)]


def with_mandatory(family: AlgorithmFamily, names: tuple[str, ...]) -> tuple[str, ...]:
    """``names`` with the family's mandatory types appended when missing (§5.2)."""
    return names + tuple(m for m in MANDATORY[family] if m not in names)


def _first_common(order: tuple[str, ...], other: tuple[str, ...]) -> str | None:
    return next((name for name in order if name in other), None)


def choose_key_agreement(mine: tuple[str, ...], peer: tuple[str, ...]) -> str | None:
    """bzrtp's key agreement rule (see module docstring); None if nothing DH-like is common."""
    fam = AlgorithmFamily.KEY_AGREEMENT
    ours = tuple(n for n in with_mandatory(fam, mine) if n in _KA_SPEED)
    theirs = tuple(n for n in with_mandatory(fam, peer) if n in _KA_SPEED)
    mine_first, peer_first = _first_common(ours, theirs), _first_common(theirs, ours)
    if mine_first is None or peer_first is None:
        return None
    return min(mine_first, peer_first, key=_KA_SPEED.index)


def negotiate(
    offer: AlgorithmOffer, peer_lists: dict[AlgorithmFamily, tuple[str, ...]]
) -> Algorithms:
    """The algorithms our Commit names, given the peer Hello's lists (RFC 6189 §4.1.2)."""
    chosen: dict[AlgorithmFamily, str] = {}
    for family in AlgorithmFamily:
        peer = with_mandatory(family, peer_lists.get(family, ()))
        if family is AlgorithmFamily.KEY_AGREEMENT:
            name = choose_key_agreement(offer.key_agreements, peer)
        else:
            name = _first_common(offer.effective(family), peer)
        chosen[family] = name or MANDATORY[family][0]
    return Algorithms(
        hash=chosen[AlgorithmFamily.HASH],
        cipher=chosen[AlgorithmFamily.CIPHER],
        auth_tag=chosen[AlgorithmFamily.AUTH_TAG],
        key_agreement=chosen[AlgorithmFamily.KEY_AGREEMENT],
        sas_type=chosen[AlgorithmFamily.SAS],
    )


def unsupported_family(offer: AlgorithmOffer, chosen: Algorithms) -> AlgorithmFamily | None:
    """The first family whose committed type we did not offer (nor is mandatory), else None."""
    names = {
        AlgorithmFamily.HASH: chosen.hash,
        AlgorithmFamily.CIPHER: chosen.cipher,
        AlgorithmFamily.AUTH_TAG: chosen.auth_tag,
        AlgorithmFamily.KEY_AGREEMENT: chosen.key_agreement,
        AlgorithmFamily.SAS: chosen.sas_type,
    }
    for family, name in names.items():
        if name not in offer.effective(family) or name not in SUPPORTED[family]:
            return family
    return None

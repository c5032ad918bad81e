"""Codec preference in the web settings: ticked and re-ordered with position numbers, no JS."""

from __future__ import annotations

import httpx

from securephone.web.manager import PhoneManager

from .conftest import page_ready


def media_form(token: str, codecs: dict[str, str], ticked: list[str]) -> dict[str, object]:
    form: dict[str, object] = {"csrf_token": token, "srtp": "mandatory", "keying": ["sdes"]}
    form["srtp_suites"] = ["AES_CM_128_HMAC_SHA1_80"]
    # the ZRTP lists are ticked on the page by default: a browser posts them
    form["zrtp_key_agreements"] = ["X255", "DH3k", "EC25"]
    form["zrtp_sas"] = ["B32", "B256"]
    form["zrtp_auth_tags"] = ["HS80", "HS32"]
    form["codecs"] = ticked
    form.update({f"codecs.order.{name}": position for name, position in codecs.items()})
    return form


async def test_the_media_form_shows_codecs_in_preference_order(
    client: httpx.AsyncClient, manager: PhoneManager
) -> None:
    await page_ready(client)
    html = (await client.get("/settings")).text
    order = [html.index(f'name="codecs.order.{c}"') for c in ("opus", "G722", "PCMU", "PCMA")]
    assert order == sorted(order)
    assert 'name="codecs.order.opus" value="1"' in html


async def test_codecs_are_reordered_and_dropped_by_the_form(
    client: httpx.AsyncClient, manager: PhoneManager
) -> None:
    token = await page_ready(client)
    positions = {"opus": "3", "G722": "1", "PCMU": "2", "PCMA": "4"}
    form = media_form(token, positions, ["opus", "G722", "PCMU"])
    response = await client.post("/settings/media", data=form)  # type: ignore[arg-type]
    assert response.status_code == 303, response.text
    assert manager.config.media.codecs == ["G722", "PCMU", "opus"]
    html = (await client.get("/settings")).text
    assert html.index('value="G722" checked') < html.index('value="PCMU" checked')
    assert html.index('value="PCMU" checked') < html.index('value="opus" checked')
    assert 'name="codecs" value="PCMA">' in html  # shown, not ticked


async def test_no_codec_ticked_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, manager: PhoneManager
) -> None:
    token = await page_ready(client)
    before = list(manager.config.media.codecs)
    form = media_form(token, {"opus": "1"}, [])
    response = await client.post("/settings/media", data=form)  # type: ignore[arg-type]
    assert response.status_code == 400 and "media.codecs" in response.text
    assert manager.config.media.codecs == before

"""``securephone phone``: a full-screen terminal softphone on Textual, over the same ``Phone``.

Everything on screen follows the phone's events: the app adds one listener to the ``Phone``,
which posts each event to the app's message queue (same order, same event loop), and the
handler redraws from the core's state (``Call.summary()``, ``Phone.status()``). The only timer
is a once-a-second refresh of durations and packet counters. Ended calls go to the call history
(``store/history.py``), which the "recent calls" list shows.

Keyboard first: every action has a key, shown in the footer.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any, ClassVar

from rich.text import Text
from textual.actions import SkipAction
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Header, Input, Static

from securephone.aio.call import Call, CallKeyingChanged
from securephone.aio.phone import Phone, PhoneError
from securephone.aio.sound import CallAudio, ringer_for
from securephone.audio.devices import Ringer
from securephone.audio.sinks import AudioSink, NullSink
from securephone.audio.sources import AudioSource, FormatAware, SilenceSource
from securephone.sip.callstate import CallState
from securephone.sip.events import (
    CallStateChanged,
    Event,
    IncomingCall,
)
from securephone.store.config import Config
from securephone.store.history import CallHistory
from securephone.tui.view import Line, call_lines, call_row, security_lines

__all__ = ["PhoneEvent", "SoftphoneApp", "run_softphone"]

log = logging.getLogger(__name__)
DTMF_KEYS = {str(d): str(d) for d in range(10)} | {"asterisk": "*", "number_sign": "#"}


class PhoneEvent(Message):
    """One event of the phone, handed from its listener to the app's message queue."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class MutableSource:
    """Wraps a call's audio source: while ``muted`` the far end gets silence."""

    def __init__(self, inner: AudioSource) -> None:
        self.inner = inner
        self.muted = False

    def set_format(self, sample_rate: int, frame_samples: int) -> None:
        """Passed on, so a sound device converts to the codec's rate itself (once)."""
        if isinstance(self.inner, FormatAware):
            self.inner.set_format(sample_rate, frame_samples)

    def read_frame(self) -> Any:
        frame = self.inner.read_frame()
        if frame is not None and self.muted:
            frame = frame * 0
        return frame

    def close(self) -> None:
        self.inner.close()


def _text(lines: list[Line]) -> Text:
    text = Text()
    for i, (line, style) in enumerate(lines):
        if i:
            text.append("\n")
        text.append(line, style=style or None)
    return text


class SoftphoneApp(App[None]):
    """The softphone: accounts, dialer, recent calls, calls, the selected call and its security."""

    TITLE = "securephone"
    CSS = """
    #left { width: 40%; }
    #right { width: 60%; }
    .panel { border: round $primary; padding: 0 1; }
    #incoming { background: $warning 30%; text-style: bold; padding: 0 1; display: none; }
    #incoming.ringing { display: block; }
    #calls { height: 8; }
    #recent { height: 1fr; }
    #security { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        # priority: handled as it arrives, so the keys typed after it already go to the box
        Binding("d", "focus_dial", "Dial", priority=True),
        Binding("a", "answer", "Answer"),
        Binding("r", "reject", "Reject"),
        Binding("e", "hangup", "End call"),
        Binding("o", "hold", "Hold/resume"),
        Binding("m", "mute", "Mute"),
        Binding("n", "next_call", "Next call"),
        Binding("p", "previous_call", "Prev call", show=False),
        Binding("s", "sas(True)", "SAS ok"),
        Binding("w", "sas(False)", "SAS wrong"),
        Binding("escape", "leave_dial", "Leave dialer", show=False),
        Binding("q", "quit_phone", "Quit"),
        *(
            Binding(key, f"dtmf('{digit}')", "DTMF", show=key == "0", key_display="0-9 * #")
            for key, digit in DTMF_KEYS.items()
        ),
    ]

    def __init__(
        self,
        config: Config,
        *,
        devices: bool = True,
        history: CallHistory | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.phone = Phone(config)
        self.history = history or CallHistory(config.data_path / "history.sqlite3")
        self.devices: CallAudio | None = CallAudio.from_settings(config.audio) if devices else None
        self.ringer: Ringer | None = ringer_for(config.audio) if devices else None
        self.selected: str | None = None
        self.sent_digits: dict[str, str] = {}
        self.sources: dict[str, MutableSource] = {}
        self.recorded: set[str] = set()
        self.started = False
        self.stopped = False
        self.phone.source_factory = self._source
        self.phone.sink_factory = self._sink
        self.phone.add_listener(self._listen)
        if self.ringer is not None:
            self.phone.add_listener(self.ringer.on_event)

    def _listen(self, event: Event) -> None:
        """The phone's listener: the event joins the app's message queue, in order."""
        self.post_message(PhoneEvent(event))

    # -- audio per call ------------------------------------------------------------------------
    def _source(self, call: Call) -> AudioSource:
        inner = self.devices.source(call) if self.devices is not None else SilenceSource()
        source = MutableSource(inner)
        self.sources[call.key] = source
        return source

    def _sink(self, call: Call) -> AudioSink:
        return self.devices.sink(call) if self.devices is not None else NullSink()

    # -- layout --------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="incoming")
        with Horizontal():
            with Vertical(id="left"):
                yield Static(id="accounts", classes="panel")
                yield Input(placeholder="sip:bob@example.org or a user name", id="dial")
                yield DataTable(id="recent", classes="panel", cursor_type="row")
            with Vertical(id="right"):
                yield DataTable(id="calls", classes="panel", cursor_type="row")
                yield Static(id="call", classes="panel")
                yield Static(id="security", classes="panel")
        yield Footer()

    async def on_mount(self) -> None:
        self.query_one("#accounts", Static).border_title = "Accounts"
        self.query_one("#recent", DataTable).border_title = "Recent calls (Enter: dial again)"
        self.query_one("#calls", DataTable).border_title = "Calls (n: next)"
        self.query_one("#call", Static).border_title = "Call"
        self.query_one("#security", Static).border_title = "Security"
        self.query_one("#calls", DataTable).add_columns("", "who", "state", "time")
        recent = self.query_one("#recent", DataTable)
        # fixed widths: a table refilled after clear() can keep its header's widths otherwise
        for label, width in (("", 1), ("who", 30), ("when", 11), ("how", 9)):
            recent.add_column(label, width=width)
        try:
            await self.phone.start()
        except PhoneError as exc:
            self.exit(message=f"securephone: error: {exc}", return_code=1)
            return
        self.started = True
        self._show_recent()
        self._redraw()
        self.query_one("#calls", DataTable).focus()
        self.set_interval(1.0, self._tick)

    # -- events --------------------------------------------------------------------------------
    def on_phone_event(self, message: PhoneEvent) -> None:
        event = message.event
        if isinstance(event, IncomingCall) and self.selected is None:
            self.selected = event.call_id
        if isinstance(event, CallStateChanged) and event.new is CallState.TERMINATED:
            self._ended(event.call_id)
        if isinstance(event, CallStateChanged | IncomingCall | CallKeyingChanged) and (
            self._call(self.selected) is None
        ):
            self.selected = next((c.key for c in self._active()), None)
        self._redraw()

    def _ended(self, key: str) -> None:
        call = self.phone.calls.get(key)
        if call is not None and key not in self.recorded:
            self.recorded.add(key)
            self.history.record(call.summary())
            self._show_recent()
        self.sources.pop(key, None)
        if self.selected == key:
            self.selected = None

    def _tick(self) -> None:
        self._redraw()

    # -- drawing -------------------------------------------------------------------------------
    def _active(self) -> list[Call]:
        return [c for c in self.phone.calls.values() if not c.ended]

    def _call(self, key: str | None) -> Call | None:
        call = self.phone.calls.get(key) if key is not None else None
        return call if call is not None and not call.ended else None

    def _muted(self, call: Call) -> bool:
        source = self.sources.get(call.key)
        return source is not None and source.muted

    def _redraw(self) -> None:
        if not self.started:
            return
        self._show_accounts()
        self._show_incoming()
        self._show_calls()
        self._show_selected()

    def _show_accounts(self) -> None:
        status = self.phone.status()
        lines: list[Line] = []
        for account in status["accounts"]:
            state = account["registration"]
            style = "green" if state == "registered" else ("bold red" if state == "failed" else "")
            lines.append((f"{account['name']}  {account['aor']} ({account['transport']})", "bold"))
            reason = f": {account['reason']}" if account.get("reason") else ""
            lines.append((f"  {state}{reason}", style))
        if not lines:
            lines.append(("no accounts: dial sip: URIs directly", ""))
        listen = ", ".join(f"{k} {v}" for k, v in status["listen"].items())
        lines.append((f"listening: {listen}", "dim"))
        errors = list(self.devices.errors) if self.devices is not None else []
        if self.ringer is not None and self.ringer.error:
            errors.append(f"ring tone: {self.ringer.error}")
        lines.extend((f"sound: {error}", "bold red") for error in errors)
        self.query_one("#accounts", Static).update(_text(lines))

    def _show_incoming(self) -> None:
        ringing = [c for c in self._active() if c.state is CallState.INCOMING]
        banner = self.query_one("#incoming", Static)
        banner.set_class(bool(ringing), "ringing")
        if ringing:
            who = ", ".join(c.remote_display_name or c.remote for c in ringing)
            banner.update(f"Incoming call from {who}   a: answer   r: reject")

    def _show_calls(self) -> None:
        table = self.query_one("#calls", DataTable)
        table.clear()
        active = self._active()
        for call in active:
            table.add_row(*call_row(call.summary(), self._muted(call)), key=call.key)
        if self.selected is not None and self._call(self.selected) is not None:
            index = [c.key for c in active].index(self.selected)
            table.move_cursor(row=index, animate=False)

    def _show_selected(self) -> None:
        call = self._call(self.selected)
        detail = self.query_one("#call", Static)
        security = self.query_one("#security", Static)
        if call is None:
            detail.update("no call selected: d to dial")
            security.update("")
            return
        summary = call.summary()
        audio = self.devices.stats(call) if self.devices is not None else {}
        detail.update(
            _text(call_lines(summary, self._muted(call), self.sent_digits.get(call.key, ""), audio))
        )
        security.update(_text(security_lines(summary)))

    def _show_recent(self) -> None:
        table = self.query_one("#recent", DataTable)
        table.clear()
        for record in self.history.recent(20):
            arrow = "→" if record.direction == "outgoing" else "←"
            how = "answered" if record.answered else (record.reason or "missed")
            table.add_row(arrow, record.remote, _when(record.ended_at), how, key=str(record.id))

    def on_data_table_row_highlighted(self, message: DataTable.RowHighlighted) -> None:
        key = message.row_key.value
        if message.data_table.id == "calls" and key is not None and key != self.selected:
            self.selected = key
            self._show_selected()

    def on_data_table_row_selected(self, message: DataTable.RowSelected) -> None:
        if message.data_table.id != "recent":
            return
        remote = str(message.data_table.get_row(message.row_key)[1])
        dial = self.query_one("#dial", Input)
        dial.value = remote
        self._focus_now(dial)

    # -- commands ------------------------------------------------------------------------------
    def _target(self) -> Call | None:
        call = self._call(self.selected)
        if call is None:
            self.notify("no call selected", severity="warning")
        return call

    def _run(self, what: str, command: Any, *args: Any) -> None:
        try:
            command(*args)
        except PhoneError as exc:
            self.notify(f"{what}: {exc}", severity="error")
        self._redraw()

    def on_input_submitted(self, message: Input.Submitted) -> None:
        target = message.value.strip()
        if not target:
            return
        account = self.config.accounts[0] if self.config.accounts else None
        if ":" not in target and account is not None:
            scheme = "sips" if account.transport == "tls" else "sip"
            target = f"{scheme}:{target}@{account.domain}"
        try:
            call = self.phone.dial(target, account=account.name if account else None)
        except PhoneError as exc:
            self.notify(f"dial: {exc}", severity="error")
            return
        message.input.value = ""
        self.selected = call.key
        self._focus_now(self.query_one("#calls", DataTable))
        self._redraw()

    def _focus_now(self, widget: Widget) -> None:
        """Move the focus before the next queued event is handled (``Widget.focus`` defers it
        behind the events already queued)."""
        self.screen.set_focus(widget)

    def action_focus_dial(self) -> None:
        """``d``: to the dial box. A priority binding, run as the key arrives and before the
        keys queued behind it are routed, so a fast typist's URI lands in the box (a plain
        binding runs only once the key has bubbled up from the calls list, after the next keys
        went the same way, to the hold, mute and DTMF bindings). In a text box ``d`` is a
        letter."""
        if isinstance(self.focused, Input):
            raise SkipAction
        self._focus_now(self.query_one("#dial", Input))

    def action_leave_dial(self) -> None:
        self._focus_now(self.query_one("#calls", DataTable))

    def _ringing(self) -> Call | None:
        call = self._call(self.selected)
        if call is not None and call.state is CallState.INCOMING:
            return call
        return next((c for c in self._active() if c.state is CallState.INCOMING), None)

    def action_answer(self) -> None:
        call = self._ringing()
        if call is None:
            self.notify("no call is ringing", severity="warning")
            return
        self.selected = call.key
        self._run("answer", self.phone.answer, call)

    def action_reject(self) -> None:
        call = self._ringing()
        if call is None:
            self.notify("no call is ringing", severity="warning")
            return
        self._run("reject", self.phone.reject, call, 486)

    def action_hangup(self) -> None:
        call = self._target()
        if call is not None:
            self._run("hang up", self.phone.hangup, call)

    def action_hold(self) -> None:
        call = self._target()
        if call is not None:
            command = self.phone.resume if call.local_hold else self.phone.hold
            self._run("hold", command, call)

    def action_mute(self) -> None:
        call = self._target()
        source = self.sources.get(call.key) if call is not None else None
        if source is not None:
            source.muted = not source.muted
            self._redraw()

    def action_dtmf(self, digit: str) -> None:
        call = self._target()
        if call is None:
            return
        if call.state is not CallState.CONNECTED:
            self.notify("DTMF needs a connected call", severity="warning")
            return
        try:
            self.phone.send_dtmf(call, digit)
        except PhoneError as exc:
            self.notify(f"DTMF: {exc}", severity="error")
            return
        self.sent_digits[call.key] = self.sent_digits.get(call.key, "") + digit
        self._show_selected()

    def _cycle(self, step: int) -> None:
        active = self._active()
        if not active:
            return
        keys = [c.key for c in active]
        index = keys.index(self.selected) if self.selected in keys else -step
        self.selected = keys[(index + step) % len(keys)]
        self._redraw()

    def action_next_call(self) -> None:
        self._cycle(1)

    def action_previous_call(self) -> None:
        self._cycle(-1)

    def action_sas(self, verified: bool) -> None:
        call = self._target()
        if call is not None:
            self._run("SAS", self.phone.confirm_sas, call, verified)

    async def action_quit_phone(self) -> None:
        await self._stop_phone()
        self.exit()

    async def _stop_phone(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        if self.ringer is not None:
            self.ringer.close()
        if self.started:
            with contextlib.suppress(Exception):
                await self.phone.stop(timeout=3)
            for call in self.phone.calls.values():
                if call.ended and call.key not in self.recorded:
                    self.recorded.add(call.key)
                    self.history.record(call.summary())
        self.history.close()

    async def on_unmount(self) -> None:
        await self._stop_phone()


def _when(stamp: float) -> str:
    return time.strftime("%d %b %H:%M", time.localtime(stamp))


def run_softphone(config: Config) -> None:
    """Run the softphone in this terminal until the user quits."""
    app = SoftphoneApp(config)
    app.run()
    if app.return_code:
        raise PhoneError(f"the softphone stopped (exit {app.return_code})")

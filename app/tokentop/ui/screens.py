"""Modal screens: the fuzzy project picker and the key help."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.fuzzy import Matcher
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

ALL_PROJECTS = "\x00all"


class ProjectPicker(ModalScreen[str | None]):
    """Type to fuzzy-match a canonical project name; ``enter`` picks, ``escape`` cancels."""

    BINDINGS = [Binding("escape", "dismiss(None)", "cancel")]

    def __init__(self, projects: list[str], current: str | None) -> None:
        super().__init__()
        self.projects = projects
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="picker"):
            yield Static("Project (fuzzy) — enter picks, escape cancels", classes="picker-title")
            yield Input(placeholder="type to filter…", id="picker-input")
            yield OptionList(id="picker-list")

    def on_mount(self) -> None:
        self._fill("")

    def _fill(self, text: str) -> None:
        opts = self.query_one(OptionList)
        opts.clear_options()
        if text:
            m = Matcher(text)
            scored = sorted(((m.match(p), p) for p in self.projects), key=lambda sp: (-sp[0], sp[1]))
            names = [p for score, p in scored if score > 0]
        else:
            names = self.projects
            opts.add_option(Option("(all projects)", id=ALL_PROJECTS))
        opts.add_options([Option(Content(p), id=p) for p in names])  # a name, not markup
        if opts.option_count:
            opts.highlighted = 0

    @on(Input.Changed)
    def refilter(self, event: Input.Changed) -> None:
        """Narrow the list as the user types."""
        self._fill(event.value.strip())

    @on(Input.Submitted)
    def pick_highlighted(self) -> None:
        """``enter`` in the box picks the best match."""
        opts = self.query_one(OptionList)
        if opts.highlighted is not None and opts.option_count:
            self._pick(opts.get_option_at_index(opts.highlighted).id)

    @on(OptionList.OptionSelected)
    def pick_clicked(self, event: OptionList.OptionSelected) -> None:
        """A click or ``enter`` in the list picks that project."""
        self._pick(event.option.id)

    def _pick(self, option_id: str | None) -> None:
        self.dismiss(None if option_id in (None, ALL_PROJECTS) else option_id)

    def on_key(self, event) -> None:  # type: ignore[no-untyped-def]
        """Up/down move in the list while typing in the box."""
        if event.key in ("down", "up"):
            opts = self.query_one(OptionList)
            if opts.option_count:
                cur = opts.highlighted or 0
                opts.highlighted = max(0, min(opts.option_count - 1, cur + (1 if event.key == "down" else -1)))
            event.stop()


class HelpScreen(ModalScreen[None]):
    """All keys, from the bindings' own descriptions."""

    BINDINGS = [Binding("escape,question_mark,q", "dismiss(None)", "close")]

    def __init__(self, lines: list[tuple[str, str]]) -> None:
        super().__init__()
        self.lines = lines

    def compose(self) -> ComposeResult:
        width = max(len(k) for k, _ in self.lines)
        body = "\n".join(f"[b]{k:>{width}}[/b]  {d}" for k, d in self.lines)
        with Vertical(id="help"):
            yield Static("tokentop keys — escape closes", classes="picker-title")
            yield Static(body, id="help-body")

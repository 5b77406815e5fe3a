"""Keyboard shortcuts for a widget: a key presses one of the widget's own buttons (or focuses a field).

Why this way: ipywidgets 8 has no keyboard events of its own (``ipyevents`` and ``anywidget`` bring them,
each a dependency with a front-end bundle, and the project depends on neither). A key here only clicks
an ipywidgets button (or toggle) of the widget, so it reaches Python through that button's own
``on_click`` or value: one code path for the mouse and the keys, nothing new in the kernel. The few
lines of JavaScript are an inline handler on the hint line, like the comparison grid's synchronised
players, so they run wherever the project's widgets show HTML (JupyterLab, Notebook 7, Voila); no
front-end extension, nothing to build.

The keys act while the widget has the focus (click anywhere on it): the widget's box becomes focusable,
and a click on it (a button, a player) hands the focus back to the box, so that a key still works after
the button it pressed is disabled or the player it was on is replaced. Keys typed into a text field (the
tags, the note) are the field's; Esc hands the focus back to the widget, and Enter in the tags box adds
the tag (Chromium does not commit a text field that has a list of suggestions on Enter). A key the widget
takes has its default prevented (else ``t`` would type itself into the tags box it focuses), which is
also what keeps JupyterLab's own shortcuts (``a`` inserts a cell...) from acting on it; it is stopped,
and the box marked ``data-lm-suppress-shortcuts``, as well.

>>> from sora_nb.ui._keys import Key, keys_hint
>>> hint = keys_hint("sora-nb-demo", [Key("a", ".sora-nb-vote-a", "A is better")])
>>> ">a</kbd> A is better" in hint.value
True
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass

import ipywidgets as widgets

from .._display_grid import PIXEL

__all__ = ["Key", "keys_hint"]

# A hidden pixel's ``load`` event runs the installer once the hint is rendered (an HTML widget's ``<script>``
# would not run; an inline handler does, as the grid's ``onplay`` does). The root is looked for until the
# box has put the hint in it.

# ``this`` is the pixel; ``M`` maps a key to [selector, index] of what it clicks, under the widget's root.
# A click that focuses a text field (``t`` clicks the tags box, which focuses its input) keeps it there.
_INSTALL = """var img=this,M=%(map)s,tries=0;(function go(){
var root=img.closest('.%(root)s');
if(!root){if(++tries<50)setTimeout(go,100);return}
root.setAttribute('tabindex','0');root.setAttribute('data-lm-suppress-shortcuts','true');root.style.outline='none';
if(root.__soraKeys){root.removeEventListener('keydown',root.__soraKeys);root.removeEventListener('click',root.__soraFocus)}
function typing(t){return !!t&&!!t.matches&&t.matches('input,textarea,select,[contenteditable]')}
root.__soraFocus=function(e){if(!typing(e.target)&&!typing(document.activeElement))root.focus({preventScroll:true})};
root.__soraKeys=function(e){
if(typing(e.target)){if(e.key==='Escape'){e.stopPropagation();root.focus({preventScroll:true})}
else if(e.key==='Enter'&&e.target.list)e.target.dispatchEvent(new Event('change'));return}
if(e.ctrlKey||e.metaKey||e.altKey)return;
var m=M[e.key.length===1?e.key.toLowerCase():e.key];if(!m)return;
e.preventDefault();e.stopPropagation();
var el=root.querySelectorAll(m[0])[m[1]];if(!el||el.disabled)return;
root.focus({preventScroll:true});el.click()};
root.addEventListener('keydown',root.__soraKeys);root.addEventListener('click',root.__soraFocus)})()"""


_KBD = "border:1px solid #aaa;border-radius:3px;padding:0 4px;font-family:monospace;background:#f6f6f6;color:#222"


@dataclass(frozen=True)
class Key:
    """A key (one character, as typed), what it clicks (a CSS selector under the widget's root, and
    which of its matches), and the words the hint line says for it."""

    key: str
    selector: str
    says: str
    index: int = 0


def keys_hint(root_class: str, keys: Sequence[Key], *, shown: Sequence[tuple[str, str]] | None = None) -> widgets.HTML:
    """The line that says the keys (``shown``: (keys, words) pairs, default one per key) and, hidden in
    it, the handler that makes them work under the element of class ``root_class``."""
    mapping = {k.key: [k.selector, k.index] for k in keys}
    script = _INSTALL % {"map": json.dumps(mapping), "root": root_class}
    words = shown if shown is not None else [(k.key, k.says) for k in keys]
    def kbd(part: str) -> str:
        return f'<kbd style="{_KBD}">{html.escape(part)}</kbd>'

    said = " · ".join(f"{'–'.join(kbd(p) for p in keys_.split('-'))} {html.escape(text)}" for keys_, text in words)
    hint = widgets.HTML(
        f'<span style="font-size:12px;opacity:.75">⌨ {said} <i>(click the widget first)</i></span>'
        f'<img src="{PIXEL}" alt="" style="display:none" '
        f'onload="{html.escape(script)}">'
    )
    hint.add_class("sora-nb-keys")
    return hint

"""Text normalisation steps: markup stripping, entity decoding, Unicode NFKC, whitespace.

Each step returns the new text; ``normalise`` also says which steps changed something, so the
pipeline can count changes per step. ``strip_ends=False`` is for pieces of a field that carries
character offsets: pieces are normalised one by one and must join up to the whole (see fields).
"""

from __future__ import annotations

import html
import re
import unicodedata

# Only real HTML element names count as markup, so "<image>" placeholders, "<#>" and chat
# tokens such as "<|im_end|>" survive. ("image" is deliberately absent.)
_HTML_TAGS = (
    "a abbr address article aside audio b bdi bdo blockquote body br button canvas caption cite "
    "code col colgroup data dd del details dfn div dl dt em embed fieldset figcaption figure "
    "font footer form h1 h2 h3 h4 h5 h6 head header hr html i iframe img input ins kbd label "
    "legend li link main mark meta nav noscript object ol optgroup option p param picture pre "
    "q s samp section select small source span strong sub summary sup table tbody td textarea "
    "tfoot th thead time title tr track u ul var video wbr center"
).split()
_BLOCK_TAGS = frozenset(
    "address article aside blockquote br div dl dt dd footer form h1 h2 h3 h4 h5 h6 header hr "
    "li main nav ol p pre section table tbody thead tfoot tr ul".split()
)
_TAG_RE = re.compile(
    r"</?(" + "|".join(sorted(_HTML_TAGS, key=len, reverse=True)) + r")\b(?:\s[^<>]*)?/?>",
    re.IGNORECASE,
)
_SCRIPT_RE = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_COMMENT_RE = re.compile(r"<!--.*?-->", re.DOTALL)
# Entities only with their closing ";": html.unescape alone would turn "&nothing" into "¬hing".
_ENTITY_RE = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")

# Invisible characters that only get in the way; ZWJ (U+200D) stays, emoji sequences need it.
_INVISIBLE_RE = re.compile("[\u200b\u200c\u2060\ufeff\u00ad\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_HSPACE_RE = re.compile(r"[^\S\n]+")  # any whitespace except newline
_SPACE_NL_RE = re.compile(r" ?\n ?")
_MANY_NL_RE = re.compile(r"\n{3,}")


def strip_html(text: str) -> str:
    """Drop comments, script/style blocks and real HTML tags; decode entities (``&lt;``, ``&#128514;``)."""
    if "<" in text:
        text = _COMMENT_RE.sub("", text)
        text = _SCRIPT_RE.sub("", text)
        text = _TAG_RE.sub(lambda m: "\n" if m.group(1).lower() in _BLOCK_TAGS else "", text)
    if "&" in text:
        # Tags first, then entities: "&lt;b&gt;" is text showing a tag, not a tag.
        text = _ENTITY_RE.sub(lambda m: html.unescape(m.group(0)), text)
    return text


def nfkc(text: str) -> str:
    """Unicode NFKC (full-width forms, ligatures, compatibility spaces) minus invisible characters."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return _INVISIBLE_RE.sub("", text)


def normalise_whitespace(text: str, strip_ends: bool = True) -> str:
    """CRLF/CR to LF, runs of spaces/tabs to one space, no space around newlines, <= 1 blank line."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _HSPACE_RE.sub(" ", text)
    if "\n" in text:
        text = _SPACE_NL_RE.sub("\n", text)
        text = _MANY_NL_RE.sub("\n\n", text)
    return text.strip() if strip_ends else text


def normalise(
    text: str,
    *,
    html_markup: bool = True,
    unicode_nfkc: bool = True,
    whitespace: bool = True,
    strip_ends: bool = True,
) -> tuple[str, list[str]]:
    """Apply the enabled steps in order; returns (text, names of the steps that changed it)."""
    changed = []
    if html_markup:
        new = strip_html(text)
        if new != text:
            changed.append("html")
            text = new
    if unicode_nfkc:
        new = nfkc(text)
        if new != text:
            changed.append("unicode")
            text = new
    if whitespace:
        new = normalise_whitespace(text, strip_ends)
        if new != text:
            changed.append("whitespace")
            text = new
    return text, changed


def dedup_key(text: str) -> str:
    """The text exact-dedup compares: casefolded with all whitespace runs as one space."""
    return " ".join(text.casefold().split())

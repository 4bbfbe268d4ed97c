"""What users are shown about an application: its name (checked when stored, neutralised when shown)
and where it sends them back to.

A name is the one thing an attacker fully controls on our pages. Bidi overrides reorder what the
user reads (`\u202egnp.exe`), zero-width and control characters hide text or split words, lone
surrogates break rendering, and a self-registered app named "Clipron Sign-in" borrows our trust.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import urlsplit

from chalicelib.oauth.errors import InvalidClientMetadata

MAX_NAME = 100
MAX_COMBINING_RUN = 3
# Cc control, Cf format (bidi controls, zero-width characters, BOM, soft hyphen), Cs surrogates,
# Co private use, Cn unassigned, Zl / Zp line and paragraph separators
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
RESERVED_BRAND = "clipron"
# letters that look alike once case and accents are gone (a short list: the review's lookalikes,
# Latin digits and the Cyrillic / Greek letters of the brand); i and l collapse into one class
_LOOKALIKES = str.maketrans({
    "0": "o", "1": "l", "i": "l", "|": "l", "!": "l",
    "\u043e": "o", "\u03bf": "o", "\u0441": "c", "\u03f2": "c", "\u0440": "p", "\u03c1": "p",
    "\u0456": "l", "\u04cf": "l", "\u03b9": "l", "\u0269": "l", "\u0578": "n", "\u0433": "r",
})


def _refused(ch: str) -> bool:
    """Invisible or layout-changing; of the spaces only the plain one is kept (no NBSP, no ideographic space)."""
    category = unicodedata.category(ch)
    return category in _REFUSED_CATEGORIES or (category == "Zs" and ch != " ")


def _too_many_marks(name: str) -> bool:
    run = 0
    for ch in name:
        run = run + 1 if unicodedata.combining(ch) else 0
        if run > MAX_COMBINING_RUN:
            return True
    return False


def impersonates_clipron(name: str) -> bool:
    """True when the name reads as "Clipron" once case, accents, separators and lookalikes are gone."""
    decomposed = unicodedata.normalize("NFKD", name)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    skeleton = "".join(ch for ch in bare.translate(_LOOKALIKES) if ch.isalnum())
    return RESERVED_BRAND.translate(_LOOKALIKES) in skeleton


def checked_name(name: object, verified: bool) -> str:
    """The application name to store: 1-100 characters of visible text, NFC; a self-registered
    (unverified) app may not look like Clipron. InvalidClientMetadata otherwise (fixed descriptions)."""
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise InvalidClientMetadata("client_name is required (at most 100 characters)")
    if any(_refused(ch) for ch in name) or _too_many_marks(name):
        raise InvalidClientMetadata("client_name contains invisible, control or direction-changing characters")
    if not verified and impersonates_clipron(name):
        raise InvalidClientMetadata("client_name must not name or imitate Clipron")
    return unicodedata.normalize("NFC", name.strip())


def display_name(name: str) -> str:
    """A stored name made safe to show, whatever was stored before the rules existed: every refused
    character (lone surrogates included) becomes U+FFFD, so nothing is hidden or reordered."""
    shown = "".join("\ufffd" if _refused(ch) else ch for ch in name[:MAX_NAME]).strip()
    return shown or "\ufffd"


def redirect_target(redirect_uri: str) -> str:
    """Where the user will land, scheme included: a private-use scheme (`com.evil.app://auth.clipron.example/`)
    names the app that receives the answer; its "host" is whatever the registrant chose."""
    parts = urlsplit(redirect_uri)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else f"{parts.scheme}:"

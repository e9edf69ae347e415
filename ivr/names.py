"""Dial by name: people's names as keypad digits, matched by last name then first name.

A caller spells the start of the last name followed by the first name on the keypad
("SMITHJ" is 764845); every person whose last name + first name begins with those digits
matches. Letters are folded to ASCII first (Müller is MULLER, Zoë is ZOE) because that is what
a caller sees printed on the keys.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["NameEntry", "NameIndex", "keypad_digits"]

_KEYPAD = {
    **dict.fromkeys("abc", "2"), **dict.fromkeys("def", "3"), **dict.fromkeys("ghi", "4"),
    **dict.fromkeys("jkl", "5"), **dict.fromkeys("mno", "6"), **dict.fromkeys("pqrs", "7"),
    **dict.fromkeys("tuv", "8"), **dict.fromkeys("wxyz", "9"),
}


def keypad_digits(text: str) -> str:
    """The digits a caller presses to spell ``text``; anything that is not a letter is skipped."""
    # casefold first: it spells ß as ss, which NFKD alone would drop.
    folded = unicodedata.normalize("NFKD", text.casefold()).encode("ascii", "ignore").decode()
    return "".join(_KEYPAD[c] for c in folded if c in _KEYPAD)


@dataclass(frozen=True, slots=True)
class NameEntry:
    """Someone reachable by name: a person id for the transfer and the name to speak back."""

    person_id: str
    first_name: str
    last_name: str
    keys: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.keys:
            object.__setattr__(self, "keys", keypad_digits(self.last_name) + keypad_digits(self.first_name))

    @property
    def spoken(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class NameIndex:
    """People sorted by (last name, first name), searchable by keypad prefix."""

    def __init__(self, entries: Iterable[NameEntry]) -> None:
        self._entries = sorted(
            (e for e in entries if e.keys),
            key=lambda e: (e.last_name.casefold(), e.first_name.casefold(), e.person_id),
        )

    def __len__(self) -> int:
        return len(self._entries)

    def match(self, digits: str, limit: int = 20) -> tuple[NameEntry, ...]:
        """Everyone whose keypad spelling starts with ``digits``, in name order, at most ``limit``."""
        if not digits:
            return ()
        found: list[NameEntry] = []
        for entry in self._entries:
            if entry.keys.startswith(digits):
                found.append(entry)
                if len(found) >= limit:
                    break
        return tuple(found)

"""ISO 3166-1 countries, from the maintained ``iso3166`` package: what the signup form offers and accepts."""

from __future__ import annotations

import functools
import unicodedata

import iso3166


@functools.lru_cache(maxsize=1)
def countries() -> tuple[tuple[str, str], ...]:
    """(alpha-2 code, name) of every country, by name, for the form's list."""
    return tuple(
        sorted(
            ((country.alpha2, country.apolitical_name) for country in iso3166.countries),
            key=lambda pair: _sort_key(pair[1]),
        )
    )


def _sort_key(name: str) -> str:
    # "Åland Islands" sorts with the A's, as a reader looks for it.
    return unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().casefold()


def country_name(code: str) -> str | None:
    """The name of an alpha-2 code (any case), or None when ISO 3166 has no such country."""
    if not isinstance(code, str) or len(code.strip()) != 2:
        return None
    found = iso3166.countries_by_alpha2.get(code.strip().upper())
    return found.apolitical_name if found is not None else None

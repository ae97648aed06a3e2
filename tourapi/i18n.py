"""Locales: what content may be written in, and how a reader's language is chosen."""

from __future__ import annotations

from collections.abc import Mapping

from tourapi.errors import Unprocessable

# zh-Hans and en are required on every catalogue text; the others are optional.
REQUIRED_LOCALES = ("zh-Hans", "en")
SUPPORTED_LOCALES = ("zh-Hans", "zh-Hant", "en", "ja", "ko", "fr", "de", "es", "ru")
_ALIASES = {
    "zh": "zh-Hans",
    "zh-cn": "zh-Hans",
    "zh-sg": "zh-Hans",
    "zh-hans": "zh-Hans",
    "zh-hans-cn": "zh-Hans",
    "zh-tw": "zh-Hant",
    "zh-hk": "zh-Hant",
    "zh-mo": "zh-Hant",
    "zh-hant": "zh-Hant",
    "zh-hant-tw": "zh-Hant",
}
_LOWER = {loc.lower(): loc for loc in SUPPORTED_LOCALES}
# After the reader's own choices: English, then Simplified Chinese, which every text has.
FALLBACK = ("en", "zh-Hans")


def canonical(tag: str) -> str | None:
    key = tag.strip().lower().replace("_", "-")
    if key in _ALIASES:
        return _ALIASES[key]
    if key in _LOWER:
        return _LOWER[key]
    base = key.split("-")[0]
    return _ALIASES.get(base) or _LOWER.get(base)


def check_lang_param(lang: str | None, field: str = "lang") -> str | None:
    if lang is None:
        return None
    found = canonical(lang)
    if found is None:
        raise Unprocessable(
            f"unknown locale {lang!r}; supported: {', '.join(SUPPORTED_LOCALES)}", field=field
        )
    return found


def preference(lang: str | None, accept_language: str | None) -> tuple[str, ...]:
    """The ordered locale chain: explicit ``lang``, then Accept-Language by q, then the fallbacks."""
    chain: list[str] = []
    if lang:
        chain.append(lang)
    if accept_language:
        weighted = []
        for position, part in enumerate(accept_language.split(",")[:20]):
            tag, _, params = part.strip().partition(";")
            q = 1.0
            if params.strip().startswith("q="):
                try:
                    q = float(params.strip()[2:])
                except ValueError:
                    q = 0.0
            if tag and q > 0 and (found := canonical(tag)):
                weighted.append((-q, position, found))
        chain.extend(found for _, _, found in sorted(weighted))
    chain.extend(FALLBACK)
    return tuple(dict.fromkeys(chain))


def pick(texts: Mapping[str, str] | None, chain: tuple[str, ...]) -> tuple[str | None, str | None]:
    """(text, locale) for the first locale in the chain that the texts have."""
    if not texts:
        return None, None
    for loc in chain:
        if texts.get(loc):
            return texts[loc], loc
    loc = min(texts)
    return texts[loc], loc


def check_texts(
    texts: Mapping[str, str], field: str, *, required: bool = True, max_length: int = 4000
) -> dict[str, str]:
    unknown = [k for k in texts if k not in SUPPORTED_LOCALES]
    if unknown:
        raise Unprocessable(
            f"unknown locale {unknown[0]!r}; supported: {', '.join(SUPPORTED_LOCALES)}",
            field=f"{field}.{unknown[0]}",
        )
    if required:
        missing = [loc for loc in REQUIRED_LOCALES if not (texts.get(loc) or "").strip()]
        if missing:
            raise Unprocessable(f"a text in {missing[0]} is required", field=f"{field}.{missing[0]}")
    for loc, text in texts.items():
        if len(text) > max_length:
            raise Unprocessable(f"longer than {max_length} characters", field=f"{field}.{loc}")
    return {loc: text.strip() for loc, text in texts.items()}

"""Tags: every component takes `tags` and passes them to each child AWS resource that
accepts tags and to each child component. None or {} (the default) adds no input."""

from __future__ import annotations

from collections.abc import Mapping

Tags = Mapping[str, str] | None

# AWS resource tags: keys of 1..128 characters, values of 0..256; the `aws:` prefix is
# reserved for AWS's own tags.
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
MAX_TAGS = 50


def check_tags(owner: str, tags: object) -> None:
    """Raise ValueError naming `<owner>.tags` and the bad key unless `tags` is None or a
    mapping of string keys and values AWS accepts."""
    if tags is None:
        return
    if not isinstance(tags, Mapping):
        raise ValueError(f"{owner}.tags: give a mapping of key -> value, not {type(tags).__name__}")
    if len(tags) > MAX_TAGS:
        raise ValueError(f"{owner}.tags: {len(tags)} tags; AWS resources take at most {MAX_TAGS}")
    for key, value in tags.items():
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_TAG_KEY:
            raise ValueError(f"{owner}.tags: key {key!r} must be a string of 1..{MAX_TAG_KEY}")
        if key.lower().startswith("aws:"):
            raise ValueError(f"{owner}.tags: key {key!r} uses the prefix 'aws:', reserved by AWS")
        if not isinstance(value, str) or len(value) > MAX_TAG_VALUE:
            raise ValueError(
                f"{owner}.tags[{key!r}]: {value!r} must be a string of at most "
                f"{MAX_TAG_VALUE} characters"
            )


def tag_input(tags: Tags) -> dict[str, str] | None:
    """The `tags` input of an AWS resource: None (no input at all) when there are none."""
    return dict(tags) if tags else None

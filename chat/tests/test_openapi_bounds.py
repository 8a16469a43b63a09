"""The OpenAPI spec states every bound the server enforces in JSON Schema's own words."""

from chat.api.schemas import ChatCompletionIn
from helpdesk.api import api


def test_no_bound_is_written_in_pydantics_words_which_json_schema_ignores():
    # pydantic writes a bound placed after a BeforeValidator as "ge"/"le"; JSON Schema knows only minimum/maximum,
    # so the spec would allow what the server refuses (schemathesis found contact_id: 0).
    properties = [
        (name, prop, value)
        for name, schema in api.get_openapi_schema()["components"]["schemas"].items()
        for prop, value in (schema.get("properties") or {}).items()
    ]
    assert len(properties) > 100
    misnamed = [(name, prop) for name, prop, value in properties if {"ge", "le", "gt", "lt"} & _keys(value)]
    assert misnamed == []


def test_a_whole_number_takes_two_point_zero_and_keeps_its_bounds():
    assert (
        ChatCompletionIn.model_validate(
            {"model": "default", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2.0}
        ).max_tokens
        == 2
    )
    for bad in (0, 2.5, "2"):
        try:
            ChatCompletionIn.model_validate(
                {"model": "default", "messages": [{"role": "user", "content": "hi"}], "max_tokens": bad}
            )
        except ValueError:
            continue
        raise AssertionError(f"max_tokens={bad!r} was accepted")


def _keys(value) -> set[str]:
    keys = set()
    if isinstance(value, dict):
        keys |= set(value)
        for item in value.values():
            keys |= _keys(item)
    elif isinstance(value, list):
        for item in value:
            keys |= _keys(item)
    return keys

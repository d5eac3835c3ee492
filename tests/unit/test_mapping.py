"""``{{ expression }}`` templates: values, interpolation, errors, bounds and truthiness."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embedded_ui.engine.mapping import (
    MAX_EXPRESSION_LENGTH,
    MAX_OUTPUT_CHARS,
    MappingError,
    check_condition,
    check_template,
    compile_template,
    render,
    truthy,
)

CONTEXT: dict[str, Any] = {
    "trigger": {
        "orderId": "A-1",
        "total": 42.5,
        "paid": True,
        "note": None,
        "empty": "",
        "zero": 0,
        "items": [{"sku": "x", "qty": 1}, {"sku": "y", "qty": 3}],
        "customer": {"name": "Ada", "tags": ["vip"]},
    },
    "config": {"status": "shipped"},
    "blocks": {"shape": {"id": "A-1"}},
    "user": {"id": "u1", "username": "ada"},
}


# --- values and interpolation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ trigger.orderId }}", "A-1"),
        ("{{trigger.total}}", 42.5),
        ("{{ trigger.paid }}", True),
        ("{{ trigger.note }}", None),
        ("{{ trigger.missing }}", None),
        ("{{ trigger.items[*].sku }}", ["x", "y"]),
        ("{{ trigger.customer }}", {"name": "Ada", "tags": ["vip"]}),
        ("{{ {id: trigger.orderId, n: length(trigger.items)} }}", {"id": "A-1", "n": 2}),
        ("{{ sum(trigger.items[*].qty) }}", 4),
        ("{{ sort_by(trigger.items, &qty)[-1].sku }}", "y"),
        ('{{ `{"a": {"b": 1}}` }}', {"a": {"b": 1}}),
        ("{{ blocks.shape.id }}", "A-1"),
    ],
)
def test_a_whole_template_is_the_value_of_any_json_type(template: str, expected: Any) -> None:
    assert render(template, CONTEXT) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Order {{ trigger.orderId }} paid", "Order A-1 paid"),
        ("{{ trigger.orderId }}/{{ config.status }}", "A-1/shipped"),
        ("note: [{{ trigger.note }}]", "note: []"),
        ("total {{ trigger.total }} paid {{ trigger.paid }}", "total 42.5 paid true"),
        ("c={{ trigger.customer }}", 'c={"name":"Ada","tags":["vip"]}'),
        (" {{ trigger.orderId }} ", " A-1 "),
        ("literal {{ '{{' }} braces", "literal {{ braces"),
        ("no templates }} here", "no templates }} here"),
    ],
)
def test_templates_among_text_are_interpolated_as_text(template: str, expected: str) -> None:
    assert render(template, CONTEXT) == expected


def test_dicts_and_lists_render_recursively_and_other_values_pass_through() -> None:
    template = {
        "id": "{{ trigger.orderId }}",
        "lines": [{"sku": "{{ trigger.items[0].sku }}", "fixed": 1}, 2.5, None, True],
        "label": "for {{ user.username }}",
    }
    assert render(template, CONTEXT) == {
        "id": "A-1",
        "lines": [{"sku": "x", "fixed": 1}, 2.5, None, True],
        "label": "for ada",
    }
    assert render(7, CONTEXT) == 7


def test_compiled_once_rendered_many_times() -> None:
    compiled = compile_template({"id": "{{ trigger.orderId }}"})
    assert not compiled.is_static
    assert compiled.render(CONTEXT) == {"id": "A-1"}
    assert compiled.render({"trigger": {"orderId": "B"}}) == {"id": "B"}
    assert compile_template({"a": [1, "x"]}).is_static


# A JSON value with no "{{" anywhere: rendering it returns it unchanged. Text is drawn from an
# alphabet without "{", so the shape of the strategy never depends on a filtered draw.
_TEXT = st.text(alphabet=st.characters(blacklist_characters="{", codec="utf-8"), max_size=20)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(_TEXT, children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(_JSON)
def test_a_template_free_json_value_renders_unchanged(value: Any) -> None:
    assert render(value, CONTEXT) == value
    assert check_template(value) == []


@settings(max_examples=100, deadline=None)
@given(_TEXT, _TEXT)
def test_interpolating_a_string_keeps_the_text_around_it(before: str, after: str) -> None:
    assert render(f"{before}{{{{ trigger.orderId }}}}{after}", CONTEXT) == f"{before}A-1{after}"


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "needles"),
    [
        ("{{ trigger.[ }}", ("{{ trigger.[ }}", "not a valid expression", "incomplete")),
        ("{{ a ~ b }}", ("{{ a ~ b }}", "unknown token")),
        ("{{ nope(trigger) }}", ("nope()", "unknown function")),
        ("{{ length(a, b) }}", ("length()", "takes 1 argument")),
        ("{{ }}", ("empty",)),
        ("text {{ trigger.orderId", ("not closed",)),
        ("{{ 'open }}", ("quote",)),
        ("{{ " + "a." * 600 + "a }}", (f"longer than {MAX_EXPRESSION_LENGTH:,}",)),
        ("{{ " + "!" * 60 + "a }}", ("nested too deeply",)),
        ("{{ " + "(" * 495 + "a" + ")" * 495 + " }}", ("nested too deeply",)),  # parser recursion
    ],
)
def test_syntax_errors_name_the_expression_and_the_problem(
    template: str, needles: tuple[str, ...]
) -> None:
    with pytest.raises(MappingError) as raised:
        compile_template(template)
    for needle in needles:
        assert needle in raised.value.message, raised.value.message
    assert check_template({"x": [template]}, where="output")[0].startswith("output.x[0]: ")


def test_check_template_lists_every_problem_with_its_path() -> None:
    problems = check_template(
        {"a": "{{ ok }}", "b": ["{{ x[ }}", {"c": "{{ y( }}"}], 3: "k"}, where="blocks[0].output"
    )
    assert sorted(p.split(": ")[0] for p in problems) == [
        "blocks[0].output",
        "blocks[0].output.b[0]",
        "blocks[0].output.b[1].c",
    ]
    assert any("the key 3 is not a string" in p for p in problems)


def test_values_that_are_not_json_are_problems() -> None:
    import datetime

    assert "not a JSON value" in check_template({"when": datetime.date(2024, 1, 1)})[0]
    assert "not a JSON value" in check_template([float("inf")])[0]


def test_runtime_type_errors_name_the_function_without_the_data() -> None:
    with pytest.raises(MappingError) as raised:
        render("{{ sort_by(trigger.items, &sku)[0] | abs(@) }}", CONTEXT)
    message = raised.value.message
    assert "abs() expected number" in message and "got object" in message
    assert "sku" not in message.split("}}")[-1]  # the value itself is not in the message


def test_non_json_results_are_refused() -> None:
    with pytest.raises(MappingError, match="JSON cannot represent"):
        render("{{ to_number('1.0e999') }}", CONTEXT)


# --- bounds ---------------------------------------------------------------------------------

BIG = {"trigger": {"ids": list(range(100_000))}}
DOUBLING = " | ".join(["[@, @]"] * 40)


@pytest.mark.parametrize(
    "expression",
    [
        # 2^40 apparent items from sharing, then walked as a tree three different ways
        f"{DOUBLING} | length(to_string(@))",
        f"{DOUBLING} | @ == @",
        "trigger.ids | " + " | ".join(["[@, @, @, @, @, @, @, @, @, @][]"] * 4) + " | length(@)",
        "join(',', trigger.ids[*].to_string(@)) | [@, @, @, @] | join('', @) | length(@)",
        "trigger.ids | [*].[@, @][] | [*].[@, @][] | [*].[@, @][] | [*].[@, @][] | length(@)",
    ],
)
def test_work_is_bounded_before_it_happens(expression: str) -> None:
    started = time.monotonic()
    with pytest.raises(MappingError, match="units of work"):
        render("{{ " + expression + " }}", BIG)
    assert time.monotonic() - started < 5


def test_the_budget_is_shared_by_every_expression_of_one_render() -> None:
    template = ["{{ length(trigger.ids[*].to_string(@)) }}"] * 40
    with pytest.raises(MappingError, match="units of work"):
        render(template, BIG)
    assert render(template[:1], BIG) == [100_000]  # one alone is fine


def test_ordinary_queries_over_a_large_input_fit_the_budget() -> None:
    rows = [{"id": i, "sku": f"s{i}", "qty": i % 7} for i in range(20_000)]
    context = {"trigger": {"items": rows}}
    result = render("{{ sort_by(trigger.items[?qty > `3`], &qty)[*].{id: id, sku: sku} }}", context)
    assert len(result) == sum(1 for r in rows if r["qty"] > 3)


def test_output_size_is_bounded() -> None:
    context = {"trigger": {"s": "x" * 400_000}}
    with pytest.raises(MappingError, match=f"larger than {MAX_OUTPUT_CHARS:,}"):
        render("{{ [trigger.s, trigger.s, trigger.s] }}", context)
    with pytest.raises(MappingError, match="longer than"):
        render("{{ trigger.s }}{{ trigger.s }}{{ trigger.s }}", context)
    with pytest.raises(MappingError, match="rendered value"):
        render(["{{ trigger.s }}", "{{ trigger.s }}", "{{ trigger.s }}"], context)


def test_template_size_and_nesting_are_bounded() -> None:
    deep: Any = "{{ a }}"
    for _ in range(40):
        deep = [deep]
    with pytest.raises(MappingError, match="nested more than"):
        compile_template(deep)
    with pytest.raises(MappingError, match="more than 10,000 values"):
        compile_template(["{{ a }}"] * 10_001)
    assert check_template(deep) and check_template(["x"] * 10_001)


# --- truthiness -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("trigger.paid", True),
        ("{{ trigger.paid }}", True),
        ("  {{ trigger.total > `40` }} ", True),
        ("trigger.total > `50`", False),
        ("trigger.note", False),
        ("trigger.missing", False),
        ("trigger.empty", False),
        ("trigger.items[?qty > `5`]", False),
        ("trigger.zero", True),  # 0 is true in JMESPath
        ("trigger.customer", True),
        ("`{}`", False),
        ("config.status == 'shipped' && trigger.paid", True),
        ("trigger.orderId > `1`", False),  # a string against a number: null, not an error
    ],
)
def test_truthy_follows_jmespath(condition: str, expected: bool) -> None:
    assert truthy(condition, CONTEXT) is expected


def test_conditions_are_checked_like_templates() -> None:
    assert check_condition("trigger.paid") == []
    assert check_condition("{{ trigger.paid }}") == []
    assert "not a valid expression" in check_condition("trigger.[")[0]
    assert "one expression" in check_condition("{{ a }} and {{ b }}")[0]
    with pytest.raises(MappingError):
        truthy("{{ a }} and {{ b }}", CONTEXT)

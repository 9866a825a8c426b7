"""A signature's checks, chosen once per parameter, give what pydantic's validation gives."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from tether.codec import Signature
from tether.errors import InvalidArgument


class Point(pydantic.BaseModel):
    x: int
    y: int


async def step(n: int, name: str, flag: bool, ratio: float, point: Point, anything: Any) -> int:
    return n


def _same_as_pydantic(hint: Any, value: Any) -> None:
    expected = pydantic.TypeAdapter(hint).validate_python(value)
    checked = _one(hint).check_args([value])[0]
    assert checked == expected
    assert type(checked) is type(expected)


def _one(hint: Any) -> Signature:
    """The signature of ``f(v: hint) -> hint``."""

    def f(v: Any) -> Any:
        return v

    f.__annotations__ = {"v": hint, "return": hint}
    return Signature(f, name="f")


@pytest.mark.parametrize(
    ("hint", "value"),
    [
        (int, 3),
        (int, "3"),  # pydantic converts a numeric string
        (int, True),
        (int, 3.0),
        (str, "three"),
        (bool, False),
        (bool, "yes"),
        (bool, 1),
        (float, 1.5),
        (float, 2),
        (list[int], [1, "2"]),
        (Point, {"x": 1, "y": "2"}),
    ],
)
def test_each_check_gives_what_validation_gives(hint: Any, value: Any) -> None:
    _same_as_pydantic(hint, value)


@pytest.mark.parametrize(
    ("hint", "value"),
    [(int, "three"), (str, 3), (bool, "perhaps"), (float, "x"), (Point, {"x": 1})],
)
def test_a_value_validation_refuses_is_refused_with_the_parameter_named(
    hint: Any, value: Any
) -> None:
    with pytest.raises(InvalidArgument, match="argument 'v' of f"):
        _one(hint).check_args([value])
    with pytest.raises(InvalidArgument, match="result of f"):
        _one(hint).convert_result(value)


def test_a_float_that_is_not_finite_is_refused() -> None:
    for value in (float("nan"), float("inf")):
        with pytest.raises(InvalidArgument, match="not a finite number"):
            _one(float).check_args([value])


def test_every_parameter_of_a_step_is_checked_in_order_and_any_passes_as_is() -> None:
    signature = Signature(step)
    marker = object()
    checked = signature.check_args([1, "a", True, 0.5, {"x": 1, "y": 2}, marker])
    assert checked[:4] == [1, "a", True, 0.5]
    assert checked[4] == Point(x=1, y=2)
    assert checked[5] is marker
    with pytest.raises(InvalidArgument, match="argument 'flag' of step"):
        signature.check_args([1, "a", "perhaps", 0.5, {"x": 1, "y": 2}, None])

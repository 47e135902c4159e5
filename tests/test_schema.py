"""tarry.schema: pydantic, msgspec, dataclass and callable payload schemas behind one interface."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import InitVar, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import msgspec
import pydantic
import pytest

from tarry.errors import InvalidArgument, PayloadValidationError
from tarry.schema import PayloadSchema

# -- schemas under test (module level: string annotations resolve against module globals) ----


class PydItem(pydantic.BaseModel):
    sku: str
    qty: int


class PydOrder(pydantic.BaseModel):
    order_id: str
    items: list[PydItem] = []


class MsgItem(msgspec.Struct):
    sku: str
    qty: int


class MsgOrder(msgspec.Struct, forbid_unknown_fields=True):
    order_id: str
    items: list[MsgItem] = []
    meta: dict[str, int] = {}


@dataclass
class Address:
    street: str
    zip: str


@dataclass
class Customer:
    name: str
    age: int
    score: float
    active: bool
    tags: list[str]
    extra: dict[str, Any]
    nickname: str | None
    address: Address
    billing: Optional[Address] = None  # noqa: UP045 - the typing.Optional spelling is checked too
    created: datetime | None = None
    notes: list[str] = field(default_factory=list)
    id_or_name: int | str = 0


@dataclass
class Counter:
    count: int
    total: int = field(init=False, default=0)
    scale: InitVar[int] = 1

    def __post_init__(self, scale: int) -> None:
        if self.count < 0:
            raise ValueError("count must be >= 0")
        self.total = self.count * scale


@dataclass
class Broken:
    thing: NoSuchType  # type: ignore[name-defined]  # noqa: F821 - the point of the test


def good_customer(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Ada",
        "age": 36,
        "score": 9.5,
        "active": True,
        "tags": ["vip"],
        "extra": {"source": "web"},
        "nickname": None,
        "address": {"street": "Main St 1", "zip": "10115"},
    }
    data.update(changes)
    return data


def fields_of(exc: PayloadValidationError) -> list[str]:
    return [e["field"] for e in exc.errors]


def invalid(schema: object, value: Any, **kwargs: Any) -> PayloadValidationError:
    with pytest.raises(PayloadValidationError) as info:
        PayloadSchema.from_user(schema).validate(value, workflow_id="wf", **kwargs)
    return info.value


# -- from_user and name ------------------------------------------------------------------------


def validate_order(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or "order_id" not in value:
        raise ValueError("order_id is required")
    return {**value, "checked": True}


class CallableValidator:
    def __call__(self, value: Any) -> Any:
        return value


@pytest.mark.parametrize(
    ("schema", "kind", "name"),
    [
        (None, "any", "any JSON"),
        (PydOrder, "pydantic", "PydOrder (pydantic)"),
        (MsgOrder, "msgspec", "MsgOrder (msgspec)"),
        (Customer, "dataclass", "Customer (dataclass)"),
        (validate_order, "callable", "validate_order (callable)"),
        (CallableValidator(), "callable", "CallableValidator (callable)"),
        (lambda v: v, "callable", "<lambda> (callable)"),
    ],
)
def test_from_user_kinds_and_names(schema: object, kind: str, name: str) -> None:
    wrapped = PayloadSchema.from_user(schema)
    assert wrapped.kind == kind
    assert wrapped.name == name
    assert PayloadSchema.from_user(wrapped) is wrapped


async def async_validator(value: Any) -> Any:
    return value


class AsyncCallable:
    async def __call__(self, value: Any) -> Any:
        return value


class PlainClass:
    def __init__(self, order_id: str) -> None:
        self.order_id = order_id


@pytest.mark.parametrize(
    ("schema", "why"),
    [
        (5, "a value of type int is not a schema"),
        ("Order", "a value of type str is not a schema"),
        ({"order_id": "str"}, "a value of type dict is not a schema"),
        (PydOrder(order_id="x"), "this is an instance; pass its class"),
        (Address("a", "b"), "this is an instance; pass its class"),
        (PlainClass, "a plain class is not a schema"),
        (int, "a plain class is not a schema"),
        (list[int], "a type alias is not a schema"),
        (async_validator, "the validator is async"),
        (AsyncCallable(), "the validator is async"),
        (Broken, "annotations do not resolve (NameError"),
    ],
)
def test_from_user_refuses(schema: object, why: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        PayloadSchema.from_user(schema)
    assert why in str(info.value)
    assert info.value.code == "invalid_argument"


def test_refusal_lists_what_is_accepted() -> None:
    with pytest.raises(InvalidArgument, match="pydantic model class, a msgspec Struct type, a dataclass type"):
        PayloadSchema.from_user(3.5)


def test_module_imports_neither_pydantic_nor_msgspec() -> None:
    root = Path(__file__).resolve().parents[1]
    code = "import sys, tarry.schema; print(sorted(m for m in ('pydantic', 'msgspec') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- no schema ---------------------------------------------------------------------------------


def test_no_schema_passes_anything_through() -> None:
    schema = PayloadSchema.from_user(None)
    value = {"anything": [1, 2.5, None]}
    assert schema.validate(value, workflow_id="wf") is value
    assert schema.validate(None, workflow_id="wf") is None


# -- pydantic ----------------------------------------------------------------------------------


def test_pydantic_builds_the_model() -> None:
    order = PayloadSchema.from_user(PydOrder).validate(
        {"order_id": "o-1", "items": [{"sku": "a", "qty": "2"}]}, workflow_id="wf"
    )
    assert isinstance(order, PydOrder)
    assert order.order_id == "o-1"
    assert order.items == [PydItem(sku="a", qty=2)]  # pydantic's lax mode: "2" -> 2


def test_pydantic_instance_is_accepted_as_is() -> None:
    order = PydOrder(order_id="o-1")
    assert PayloadSchema.from_user(PydOrder).validate(order, workflow_id="wf") is order


def test_pydantic_errors_name_dotted_fields() -> None:
    exc = invalid(PydOrder, {"order_id": 5, "items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": "many"}]})
    assert fields_of(exc) == ["order_id", "items.1.qty"]
    assert exc.field == "order_id"
    assert exc.workflow_id == "wf"
    assert exc.code == "payload_invalid"
    assert "valid string" in exc.errors[0]["message"]
    assert "valid integer" in exc.errors[1]["message"]
    assert isinstance(exc.__cause__, pydantic.ValidationError)
    assert "invalid payload for workflow 'wf': order_id: Input should be a valid string" in str(exc)


def test_pydantic_missing_field_and_wrong_shape() -> None:
    assert fields_of(invalid(PydOrder, {})) == ["order_id"]
    exc = invalid(PydOrder, ["not", "an", "object"], what="event payload")
    assert fields_of(exc) == [""]
    assert str(exc).startswith("invalid event payload for workflow 'wf'")


# -- msgspec -----------------------------------------------------------------------------------


def test_msgspec_builds_the_struct() -> None:
    order = PayloadSchema.from_user(MsgOrder).validate(
        {"order_id": "o-1", "items": [{"sku": "a", "qty": 2}], "meta": {"n": 1}}, workflow_id="wf"
    )
    assert order == MsgOrder(order_id="o-1", items=[MsgItem(sku="a", qty=2)], meta={"n": 1})


def test_msgspec_instance_is_accepted_as_is() -> None:
    order = MsgOrder(order_id="o-1")
    assert PayloadSchema.from_user(MsgOrder).validate(order, workflow_id="wf") is order


@pytest.mark.parametrize(
    ("value", "field", "message"),
    [
        ({"order_id": 1}, "order_id", "Expected `str`, got `int`"),
        ({"order_id": "o", "items": [{"sku": "a", "qty": "2"}]}, "items.0.qty", "Expected `int`, got `str`"),
        ({}, "order_id", "Object missing required field `order_id`"),
        ({"order_id": "o", "items": [{"sku": "a"}]}, "items.0.qty", "Object missing required field `qty`"),
        ({"order_id": "o", "coupon": "x"}, "coupon", "Object contains unknown field `coupon`"),
        ({"order_id": "o", "meta": {"n": "1"}}, "meta[...]", "Expected `int`, got `str`"),
        ({"order_id": "o", "meta": {1: 1}}, "meta", "Expected `str`, got `int` (in a key)"),
        ("o-1", "", "Expected `object`, got `str`"),
    ],
)
def test_msgspec_errors(value: Any, field: str, message: str) -> None:
    exc = invalid(MsgOrder, value)
    assert exc.errors == [{"field": field, "message": message}]
    assert exc.field == (field or None)
    assert isinstance(exc.__cause__, msgspec.ValidationError)


# -- dataclasses -------------------------------------------------------------------------------


def test_dataclass_built_with_nested_dataclass() -> None:
    customer = PayloadSchema.from_user(Customer).validate(
        good_customer(billing={"street": "Side St 2", "zip": "20095"}, score=9, id_or_name="ada"),
        workflow_id="wf",
    )
    assert customer == Customer(
        name="Ada",
        age=36,
        score=9,
        active=True,
        tags=["vip"],
        extra={"source": "web"},
        nickname=None,
        address=Address("Main St 1", "10115"),
        billing=Address("Side St 2", "20095"),
        id_or_name="ada",
    )
    assert isinstance(customer.address, Address)
    assert customer.notes == []


def test_dataclass_instance_is_accepted_as_is() -> None:
    address = Address("Main St 1", "10115")
    assert PayloadSchema.from_user(Address).validate(address, workflow_id="wf") is address


def test_dataclass_nested_instance_is_accepted() -> None:
    address = Address("Main St 1", "10115")
    customer = PayloadSchema.from_user(Customer).validate(good_customer(address=address), workflow_id="wf")
    assert customer.address is address


def test_dataclass_unchecked_annotation_passes_through() -> None:
    # datetime is not one of the checked types: whatever arrives is kept (here, the ISO string).
    customer = PayloadSchema.from_user(Customer).validate(
        good_customer(created="2025-01-01T00:00:00"), workflow_id="wf"
    )
    assert customer.created == "2025-01-01T00:00:00"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"name": 5}, "name", "expected str, got int"),
        ({"age": "36"}, "age", "expected int, got str"),
        ({"age": True}, "age", "expected int, got bool"),
        ({"age": 36.0}, "age", "expected int, got float"),
        ({"score": "9.5"}, "score", "expected float, got str"),
        ({"score": False}, "score", "expected float, got bool"),
        ({"active": 1}, "active", "expected bool, got int"),
        ({"tags": "vip"}, "tags", "expected list[str], got str"),
        ({"extra": []}, "extra", "expected dict[str, Any], got list"),
        ({"nickname": 7}, "nickname", "expected str | None, got int"),
        ({"address": None}, "address", "expected an object for Address, got None"),
        ({"address": {"street": "x"}}, "address.zip", "field required"),
        ({"address": {"street": "x", "zip": 10115}}, "address.zip", "expected str, got int"),
        ({"address": {"street": "x", "zip": "1", "city": "B"}}, "address.city", "unknown field"),
        ({"billing": "Side St"}, "billing", "expected an object for Address, got str"),
        ({"id_or_name": 1.5}, "id_or_name", "expected int | str, got float"),
        ({"id_or_name": None}, "id_or_name", "expected int | str, got None"),
        ({"coupon": "x"}, "coupon", "unknown field"),
    ],
)
def test_dataclass_errors(changes: dict[str, Any], field: str, message: str) -> None:
    exc = invalid(Customer, good_customer(**changes))
    assert exc.errors == [{"field": field, "message": message}]
    assert exc.field == field


def test_dataclass_missing_fields_are_all_reported() -> None:
    data = good_customer(age="old", coupon=1)
    del data["name"]
    del data["address"]
    exc = invalid(Customer, data)
    assert exc.errors == [
        {"field": "name", "message": "field required"},
        {"field": "age", "message": "expected int, got str"},
        {"field": "address", "message": "field required"},
        {"field": "coupon", "message": "unknown field"},
    ]
    assert "name: field required; age: expected int, got str" in str(exc)


def test_dataclass_needs_an_object() -> None:
    exc = invalid(Address, ["Main St 1", "10115"])
    assert exc.errors == [{"field": "", "message": "expected an object for Address, got list"}]
    assert not exc.field  # "" as errors.py stands; its docstring promises None


def test_dataclass_init_false_fields_are_ignored_and_initvars_accepted() -> None:
    schema = PayloadSchema.from_user(Counter)
    # the codec's JSON form of a Counter carries "total"; re-validating it must work
    counter = schema.validate({"count": 2, "total": 999}, workflow_id="wf")
    assert (counter.count, counter.total) == (2, 2)
    assert schema.validate({"count": 2, "scale": 10}, workflow_id="wf").total == 20
    exc = invalid(Counter, {"count": 2, "scale": "ten"})
    assert exc.errors == [{"field": "scale", "message": "expected int, got str"}]


def test_dataclass_post_init_refusal_is_reported() -> None:
    exc = invalid(Counter, {"count": -1})
    assert exc.errors == [{"field": "", "message": "ValueError: count must be >= 0"}]
    assert isinstance(exc.__cause__, ValueError)


def test_nested_post_init_refusal_names_the_nested_field() -> None:
    @dataclass
    class Wrapper:
        counter: Counter  # a module-level name, so the string annotation resolves

    exc = invalid(Wrapper, {"counter": {"count": -1}})
    assert exc.errors == [{"field": "counter", "message": "ValueError: count must be >= 0"}]


# -- callables ---------------------------------------------------------------------------------


def test_callable_return_value_is_the_payload() -> None:
    result = PayloadSchema.from_user(validate_order).validate({"order_id": "o-1"}, workflow_id="wf")
    assert result == {"order_id": "o-1", "checked": True}


def test_callable_exception_becomes_one_unnamed_error() -> None:
    exc = invalid(validate_order, {"id": 1})
    assert exc.errors == [{"field": "", "message": "ValueError: order_id is required"}]
    assert not exc.field
    assert isinstance(exc.__cause__, ValueError)
    assert "invalid payload for workflow 'wf': ValueError: order_id is required" in str(exc)


class FieldErrors(Exception):
    def errors(self) -> list[dict[str, Any]]:
        return [{"loc": ("customer", "email"), "msg": "not an email"}, {"loc": (), "msg": "too few items"}]


class UnrelatedErrors(Exception):
    def errors(self, needed: int) -> int:
        return needed


def raise_field_errors(value: Any) -> Any:
    raise FieldErrors("bad")


def raise_unrelated_errors(value: Any) -> Any:
    raise UnrelatedErrors("something else")


def test_callable_exception_with_pydantic_like_errors() -> None:
    exc = invalid(raise_field_errors, {})
    assert exc.errors == [
        {"field": "customer.email", "message": "not an email"},
        {"field": "", "message": "too few items"},
    ]
    assert exc.field == "customer.email"


def test_callable_exception_with_an_unrelated_errors_method() -> None:
    exc = invalid(raise_unrelated_errors, {})
    assert exc.errors == [{"field": "", "message": "UnrelatedErrors: something else"}]


def test_callable_wrapping_a_pydantic_model() -> None:
    schema = PayloadSchema.from_user(lambda v: PydOrder.model_validate(v))
    assert schema.validate({"order_id": "o"}, workflow_id="wf") == PydOrder(order_id="o")
    exc = invalid(lambda v: PydOrder.model_validate(v), {"order_id": None})
    assert fields_of(exc) == ["order_id"]


def test_base_exceptions_are_not_swallowed() -> None:
    def interrupted(value: Any) -> Any:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        PayloadSchema.from_user(interrupted).validate({}, workflow_id="wf")

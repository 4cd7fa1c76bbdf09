"""Public models dumped straight from engine records, without building the pydantic model.

Every order answered and every event published is one of the ``*Public`` models. Building
the model (``model_validate`` from attributes) and dumping it costs about 40 µs an order,
more for a portfolio: on the hot path that was more than the database. :class:`Dump` reads
the same fields, in the same order, from the record's attributes and makes only the one
conversion the models declare (``DecimalString``: a decimal as a plain string); msgspec
writes the rest (UUIDs, enums, UTC timestamps) as pydantic's JSON mode does.

The pydantic models stay the one definition of each shape (the OpenAPI document, the
response models): a :class:`Dump` takes its field list from one, and the property test
``tests/trader_api/test_dump.py`` checks that both give the same JSON for any record.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any, ClassVar

import msgspec
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from sapphire.trader_api.schemas.common import DecimalString

_ENCODER = msgspec.json.Encoder()
encode: Callable[[Any], bytes] = _ENCODER.encode
"""JSON bytes of a :meth:`Dump.data` value (or of any dict of them)."""


def _decimal_text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _keep(value: Any) -> Any:
    return value


def _converter(name: str, field: FieldInfo) -> Callable[[Any], Any]:
    """What a field's value becomes before msgspec encodes it."""
    annotation = field.annotation
    arguments = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is list and arguments and issubclass(arguments[0], BaseModel):
        nested = Dump.of(arguments[0])
        return lambda items: [nested.data(item) for item in items]
    models = [a for a in arguments if isinstance(a, type) and issubclass(a, BaseModel)]
    if models:  # a nested model, or None
        inner = Dump.of(models[0])
        return lambda item: None if item is None else inner.data(item)
    # ``Amount`` is the field's type (its metadata in ``field.metadata``); ``Amount | None``
    # keeps its metadata inside the union's member.
    metadata = list(field.metadata)
    for argument in arguments:
        if typing.get_origin(argument) is Annotated:
            metadata.extend(argument.__metadata__)
    bases = {typing.get_args(a)[0] if typing.get_origin(a) is Annotated else a for a in arguments}
    if annotation is Decimal or Decimal in bases:
        if DecimalString not in metadata:
            raise TypeError(f"{name}: a decimal without DecimalString would not be dumped as the model does")
        return _decimal_text
    return _keep


class Dump:
    """The JSON form of ``model`` read from any object with its fields as attributes."""

    _made: ClassVar[dict[type[BaseModel], Dump]] = {}

    def __init__(self, model: type[BaseModel]) -> None:
        self.model = model
        self.fields = tuple((name, _converter(name, field)) for name, field in model.model_fields.items())

    @classmethod
    def of(cls, model: type[BaseModel]) -> Dump:
        if model not in cls._made:
            cls._made[model] = cls(model)
        return cls._made[model]

    def data(self, source: object, **given: Any) -> dict[str, Any]:
        """The fields of ``source`` (``given`` ones instead of its attributes), ready for :func:`encode`."""
        if given:
            return {
                name: convert(given[name] if name in given else getattr(source, name))
                for name, convert in self.fields
            }
        return {name: convert(getattr(source, name)) for name, convert in self.fields}

    def json(self, source: object, **given: Any) -> bytes:
        return encode(self.data(source, **given))

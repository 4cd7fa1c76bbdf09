"""The one check of the schemathesis run (``schemathesis.toml``) that is the project's own.

schemathesis' ``positive_data_acceptance`` fails any schema-valid request the API answers
422. The trader API refuses some schema-valid requests on purpose, by rules that no JSON
Schema can state, because they depend on something outside the request or compare two
of its fields:

* a pre-trade risk rule (the body has ``rule``): the account's state, its limits, the
  latest quote (``stale_quote`` when there is none);
* the server's configuration and clock (the services' ``FieldError``, whose problems carry
  no ``input``: pydantic's always do): an instrument that is not listed, a quantity off
  the lot size or a price off the tick size, a timestamp more than 60 s ahead, a signal
  whose role is not the one its agent registered;
* a rule between fields of one model that JSON Schema cannot state (pydantic's model
  validators, whose ``loc`` ends at the model, not at a field): a crossed book (bid above
  ask) compares two values. (The rules it can state are in the document: the price fields
  each order type needs, the legs of a bracket, a replace that changes something;
  ``test_contract.py`` shows that schema and model agree on them.)

So ``schemathesis.toml`` lets positive requests be answered 422, and this check takes the
built-in check's place for them: a schema-valid request may be refused only for such
reasons. A 422 on a field's own value (``loc`` ends at the field, with pydantic's
``input``) means the schema admits what the API refuses, and fails, as the built-in would.
"""

from __future__ import annotations

from typing import Any

import schemathesis


def refused_by_rules_no_schema_can_state(body: Any) -> bool:
    """Whether the 422 ``body`` refuses only by the rules of the module docstring."""
    if isinstance(body, dict) and isinstance(body.get("rule"), str):
        return True  # a risk rule refused it
    problems = body.get("detail") if isinstance(body, dict) else None
    return isinstance(problems, list) and bool(problems) and all(map(_states_a_rule_no_schema_can, problems))


def _states_a_rule_no_schema_can(problem: Any) -> bool:
    if not isinstance(problem, dict) or not isinstance(problem.get("loc"), list):
        return False
    if "input" not in problem:  # worded by the services (answers.error_answer), never by pydantic
        return True
    last = problem["loc"][-1] if problem["loc"] else None
    return last == "body" or isinstance(last, int)  # a model validator's loc: the model


@schemathesis.check
def schema_valid_requests_are_refused_only_by_rules_no_schema_can_state(
    ctx: Any, response: Any, case: Any
) -> bool | None:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 422:
        return None
    body = response.json()
    if refused_by_rules_no_schema_can_state(body):
        return None
    raise AssertionError(f"a schema-valid request was refused on a field's own value: {body}")

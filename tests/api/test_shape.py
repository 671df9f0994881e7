"""Shape checking with ``fieldValidation``: unknown fields whose names look like the tags
pydantic puts in error locations."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from procorch.api import errors
from procorch.api.shape import check_shape


def deployment(**spec_extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "web", "command": ["sleep"], "ports": [{"containerPort": 80}]}
                    ]
                },
            },
            **spec_extra,
        },
    }


@pytest.mark.parametrize("name", ["str", "int", "none", "x[", "[", "function-after"])
def test_an_unknown_field_named_like_a_union_tag_is_dropped_alone_with_a_warning(
    name: str,
) -> None:
    """Found by the manifest fuzzer: such a name was taken for pydantic's own tag and left
    out of the path - a 500 at the top level, and under ``spec`` the whole spec dropped."""
    obj = deployment(**{name: 1})
    expected = copy.deepcopy(obj)
    del expected["spec"][name]
    warnings = errors.Warnings()
    check_shape("apps/v1", "Deployment", obj, field_validation="Warn", warnings=warnings)
    assert obj == expected
    assert warnings.items == [f'unknown field "spec.{name}"']
    top = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, name: ")"}
    check_shape("v1", "Secret", top, field_validation="Ignore")
    assert name not in top and top["metadata"] == {"name": "s"}
    with pytest.raises(errors.BadRequest, match=re.escape(f'unknown field "{name}"')):
        check_shape("v1", "Secret", {**top, name: 1}, field_validation="Strict")


def test_a_union_member_error_still_names_the_field_not_the_member() -> None:
    obj = deployment()
    obj["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = [1]
    with pytest.raises(errors.Invalid) as caught:
        check_shape("apps/v1", "Deployment", obj)
    assert "spec.template.spec.containers[0].ports[0].containerPort" in str(caught.value)

"""The Kubernetes CEL libraries we add, checked against upstream's documented examples."""

from __future__ import annotations

from typing import Any

import pytest

from auditor.policies import PolicyEngine
from auditor.policies.loader import policy_from_document


def _eval(expression: str, obj: dict[str, Any] | None = None) -> Any:
    """Run ``expression`` as a one-validation policy; return (status, messages)."""
    doc = {"apiVersion": "drift-auditor.io/v1", "kind": "CompliancePolicy",
           "metadata": {"name": "probe"},
           "spec": {"severity": "low", "category": "test", "description": "d",
                    "remediation": "r",
                    "matchConstraints": {"resourceRules": [{"apiGroups": [""],
                                                            "resources": ["configmaps"]}]},
                    "validations": [{"expression": expression, "message": "false"}]}}
    engine = PolicyEngine.from_policies([policy_from_document(doc, "probe.yaml")])
    assert engine.problems == []
    target = obj or {"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": "c", "namespace": "n"}}
    (result,) = engine.evaluate(target)
    return result.status, result.messages


TRUE = [
    # quantities (k8s.io/apiserver/pkg/cel/library/quantity.go)
    "quantity('1Gi') == quantity('1024Mi')",
    "quantity('1Gi').isGreaterThan(quantity('500Mi'))",
    "quantity('0.5').isLessThan(quantity('501m'))",
    "quantity('500m').compareTo(quantity('0.5')) == 0",
    "quantity('1').add(quantity('500m')) == quantity('1500m')",
    "quantity('2').sub(1) == quantity('1')",
    "quantity('5Ki').asInteger() == 5120",
    "quantity('50m').isInteger() == false",
    "quantity('1.5').asApproximateFloat() == 1.5",
    "quantity('-3').sign() == -1",
    "isQuantity('1.3G') && !isQuantity('1.3Gi.0')",
    # lists (library/lists.go)
    "[1, 2, 3].isSorted() && ['a', 'b', 'b', 'c'].isSorted() && ![2.0, 1.0].isSorted()",
    "[].isSorted() && [1].isSorted()",
    "[1, 3].sum() == 4 && [1.0, 3.0].sum() == 4.0",
    "[1, 3].min() == 1 && [1, 3].max() == 3",
    "[1, 2, 2, 3].indexOf(2) == 1 && [1, 2, 2, 3].lastIndexOf(2) == 2",
    "['a'].indexOf('b') == -1",
    # strings (cel-go ext.Strings as Kubernetes enables it)
    "'hello mellow'.indexOf('ello') == 1 && 'hello mellow'.lastIndexOf('ello') == 7",
    "'TacoCat'.lowerAscii() == 'tacocat' && 'a,b'.split(',') == ['a', 'b']",
    "['a', 'b'].join('-') == 'a-b' && ' x '.trim() == 'x'",
    # regex (library/regex.go)
    "'abc 123'.find('[0-9]+') == '123' && 'abc'.find('[0-9]+') == ''",
    "'123 abc 456'.findAll('[0-9]+') == ['123', '456']",
    "'123 abc 456'.findAll('[0-9]+', 1) == ['123']",
    # URLs (library/urls.go)
    "url('https://example.com:80/path?query=val').getScheme() == 'https'",
    "url('https://example.com:80/').getHost() == 'example.com:80'",
    "url('https://[::1]:80/').getHostname() == '::1'",
    "url('https://example.com:80/').getPort() == '80' && url('https://example.com/').getPort() == ''",
    "url('https://example.com/path with spaces/'.replace(' ', '%20')).getEscapedPath() == '/path%20with%20spaces/'",
    "url('https://example.com/?k=a&k=b').getQuery() == {'k': ['a', 'b']}",
    "isURL('https://example.com/') && isURL('/absolute-path') && !isURL('../relative')",
]


@pytest.mark.parametrize("expression", TRUE)
def test_kubernetes_functions(expression: str) -> None:
    assert _eval(expression) == ("pass", ())


@pytest.mark.parametrize(("expression", "fragment"), [
    ("quantity('12 Gi') == quantity('1')", "quantities must match"),
    ("[].min() == 0", "empty list"),
    ("url('../x').getHost() == ''", "URL parse error"),
    ("object.spec.replicas > 1", "no such key"),
])
def test_errors_are_error_results_that_say_why(expression: str, fragment: str) -> None:
    status, messages = _eval(expression)
    assert status == "error"
    assert fragment in messages[0]


def test_a_false_expression_fails_with_its_message() -> None:
    assert _eval("quantity('1') == quantity('2')") == ("fail", ("false",))

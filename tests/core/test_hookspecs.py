"""Every hook specification is a complete contract: prefixed, typed, documented."""

import inspect

import pytest

from arv_keepdocker_plugin import hookspecs

SPECS = [getattr(hookspecs, name) for name in dir(hookspecs) if name.startswith("keepdocker_")]


def spec_options(function):
    return function.arv_keepdocker_spec


def test_there_are_specs_for_sources_format_check_and_linking():
    names = {f.__name__ for f in SPECS}
    assert {"keepdocker_register_sources", "keepdocker_check_format", "keepdocker_stored_layers",
            "keepdocker_links", "keepdocker_collection_properties"} <= names


@pytest.mark.parametrize("spec", SPECS, ids=lambda f: f.__name__)
def test_spec_documents_every_argument_and_its_return(spec):
    doc = inspect.getdoc(spec)
    assert doc and len(doc.splitlines()) >= 3
    signature = inspect.signature(spec)
    for name in signature.parameters:
        assert f":param {name}:" in doc, name
        assert signature.parameters[name].annotation is not inspect.Parameter.empty
    assert signature.return_annotation is not inspect.Signature.empty
    if signature.return_annotation not in (None, "None"):
        assert ":returns:" in doc
    else:
        assert "ignored" in doc.lower()


@pytest.mark.parametrize("spec", SPECS, ids=lambda f: f.__name__)
def test_spec_says_whether_first_result_wins(spec):
    doc = inspect.getdoc(spec)
    if spec_options(spec)["firstresult"]:
        assert "firstresult" in doc and "not firstresult" not in doc
    else:
        assert "(not firstresult)" in doc

"""Each option is defined once: every flag of a command is a parameter of its Python
function with the same default, and every /v1/segment query parameter that is an option
of predict_files has its name and default. A flag added by hand to the parser, or a
parameter the HTTP API spells otherwise, fails here."""

from __future__ import annotations

import argparse
import inspect
from types import SimpleNamespace

import pytest

from aerialseg import public
from aerialseg.cli.commands import DATA_OPTIONS
from aerialseg.cli.parser import COMMANDS, build_parser
from aerialseg.options import as_flags

# Options a terminal has that are no parameter, per command (cli/parser.py's extras).
CLI_ONLY = {
    "data inspect": {"json"},
    "train": {"print_config", "list_settings", "overrides"},
    "predict": {"all_outputs"},
}
# predict_files' options that apply to one uploaded image, which /v1/segment takes
OVER_HTTP = {"format", "overlay", "confidence", "bands", "tta", "simplify", "min_area"}


def subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    for word in name.split():
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[word]
    return parser


def cli_defaults(name: str) -> dict[str, object]:
    """Each option of a command (its dest) and the default it parses to."""
    return {
        action.dest: action.default
        for action in subparser(name)._actions
        if not isinstance(action, argparse._HelpAction)
    }


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.name)
def test_every_flag_is_a_parameter_with_its_default(command):
    parameters = inspect.signature(command.function).parameters
    flags = cli_defaults(command.name)
    by_hand = set(flags) - set(parameters) - CLI_ONLY.get(command.name, set())
    assert not by_hand, f"{command.name}: flags that are no parameter of the function: {by_hand}"
    for name, default in flags.items():
        if name not in parameters:
            continue
        expected = parameters[name].default
        if expected is inspect.Parameter.empty:  # required: no default to compare
            continue
        expected = list(expected) if isinstance(expected, tuple) else expected
        assert default == expected, f"{command.name} --{name}: {default!r} != {expected!r}"
    # and every parameter is on the command line, but the Python-only ones
    missing = set(parameters) - set(flags) - set(command.skip)
    assert not missing, f"{command.name}: parameters without a flag: {missing}"


def test_the_checker_finds_a_flag_added_by_hand(monkeypatch):
    real = build_parser

    def with_extra() -> argparse.ArgumentParser:
        parser = real()
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        action.choices["predict"].add_argument("--sharpen", action="store_true", help="x")
        return parser

    monkeypatch.setitem(globals(), "build_parser", with_extra)
    predict = next(c for c in COMMANDS if c.name == "predict")
    with pytest.raises(AssertionError, match="sharpen"):
        test_every_flag_is_a_parameter_with_its_default(predict)


@pytest.mark.parametrize(
    "command",
    [["train", "--data", "scenes"], ["evaluate", "model.pt", "--data", "scenes"]],
    ids=lambda c: c[0],
)
def test_the_data_options_as_printed_parse_back_to_their_values(command):
    """What a printed command carries (as_flags) is read back as it was given, on every
    command that reads a dataset."""
    given = {
        "labels": "my labels.gpkg",
        "label_field": "kind",
        "label_crs": "EPSG:32640",
        "labelled_area": "area.gpkg",
        "resize_masks": True,
    }
    assert set(given) == set(DATA_OPTIONS)
    args = build_parser().parse_args([*command, *as_flags(given)])
    assert {name: getattr(args, name) for name in given} == given
    unset = build_parser().parse_args([*command, *as_flags(dict.fromkeys(given))])
    assert unset.labels is None and unset.resize_masks is False


def test_lists_as_printed_parse_back_to_their_values():
    """A review: as_flags wrote a list as its repr ('--bands [1, 2, 3]'), which suggest's
    next round printed."""
    given = {"bands": [4, 3, 2], "prelabel": True}
    assert as_flags(given) == ["--bands", "4,3,2", "--prelabel"]
    args = build_parser().parse_args(["suggest", "s.tif", *as_flags(given)])
    assert (args.bands, args.prelabel) == ([4, 3, 2], True)


def segment_query(app) -> dict[str, dict]:
    operation = app.openapi()["paths"]["/v1/segment"]["post"]
    return {p["name"]: p for p in operation["parameters"] if p["in"] == "query"}


def test_segment_takes_predict_files_options_by_their_names_and_defaults():
    from aerialseg.api.app import create_app

    # the schema is the endpoint's, whatever model it serves: no model is loaded here
    query = segment_query(create_app(SimpleNamespace()))  # type: ignore[arg-type]
    parameters = inspect.signature(public.predict_files).parameters
    flags = cli_defaults("predict")
    for name in OVER_HTTP:
        assert name in query, f"/v1/segment has no ?{name}="
        assert name in parameters and name in flags
        default = parameters[name].default
        assert query[name]["schema"].get("default") == default, name
        assert flags[name] == default, name
    # the HTTP-only ones: how the answer is encoded
    assert set(query) - OVER_HTTP == {"polygons", "preview"}
    # the choices too: HTTP adds json (the answer as JSON) to the raster formats
    formats = query["format"]["schema"]["enum"]
    assert formats[:-1] == list(subparser("predict")._option_string_actions["--format"].choices)
    assert formats[-1] == "json"

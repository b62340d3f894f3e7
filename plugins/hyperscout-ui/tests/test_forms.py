"""The launch form: fields -> study file -> load_study, errors mapped to their field, TOML and ClearML JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from hyperscout_ui import forms

TRIAL = "from hyperscout import report_scalar\nreport_scalar('val', 'loss', 1.0, 0)\n"


@pytest.fixture
def base(tmp_path: Path) -> Path:
    (tmp_path / "trial.py").write_text(TRIAL)
    return tmp_path


def good_fields() -> dict[str, str]:
    return {
        "study.name": "s1", "task.kind": "script", "task.script": "trial.py", "task.params_as": "argparse",
        "objective[0].title": "val", "objective[0].series": "loss", "objective[0].sign": "min",
        "strategy.name": "random", "limits.max_number_of_concurrent_tasks": "2", "limits.total_max_jobs": "5",
        "parameters[0].type": "UniformParameterRange", "parameters[0].name": "x", "parameters[0].min_value": "0",
        "parameters[0].max_value": "1",
        "parameters[1].type": "DiscreteParameterRange", "parameters[1].name": "opt", "parameters[1].values": "adam, sgd",
        "parameters[2].type": "LogUniformParameterRange", "parameters[2].name": "lr", "parameters[2].min_value": "-4",
        "parameters[2].max_value": "-1", "parameters[2].base": "10",
        "parameters[3].type": "UniformIntegerParameterRange", "parameters[3].name": "n", "parameters[3].min_value": "1",
        "parameters[3].max_value": "9", "parameters[3].step_size": "2",
        "parameters[4].type": "ParameterSet",
        "parameters[4].parameter_combinations": '[{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]',
    }


def check(fields: dict[str, str], base: Path) -> dict[str, str]:
    doc, errors = forms.fields_to_doc(fields, base, base / "store")
    if errors:
        return errors
    errors, _ = forms.validate_doc(doc, fields, base / "tmp")
    return errors


def test_every_range_type_becomes_a_valid_study_file(base: Path) -> None:
    doc, errors = forms.fields_to_doc(good_fields(), base, base / "store")
    assert errors == {}
    assert doc["task"]["script"] == str(base / "trial.py")
    assert sorted(p["type"] for p in doc["parameters"]) == sorted(forms.PARAM_TYPES)
    assert doc["parameters"][1]["values"] == ["adam", "sgd"]
    errors, cfg = forms.validate_doc(doc, good_fields(), base / "tmp")
    assert errors == {} and cfg.name == "s1" and len(cfg.parameters) == 5
    assert not list((base / "tmp").glob("*.toml")), "the temporary study file is removed"


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"parameters[0].min_value": "2"}, "parameters[0].min_value", "below"),
    ({"parameters[0].min_value": "abc"}, "parameters[0].min_value", "number"),
    ({"task.script": "missing.py"}, "task.script", "does not exist"),
    ({"objective[0].title": ""}, "objective[0].title", "missing"),
    ({"objective[0].sign": "up"}, "objective[0].sign", "sign"),
    ({"limits.total_max_jobs": "-3"}, "limits.total_max_jobs", "positive"),
    ({"limits.time_limit_per_job": "soon"}, "limits.time_limit_per_job", "number"),
    ({"strategy.name": "nonesuch"}, "strategy.name", "unknown strategy"),
    ({"strategy.options_extra": "bogus_option = 3"}, "strategy.options_extra", "bogus_option"),
    ({"strategy.options_extra": "total_max_jobs = 3"}, "strategy.options_extra", "limits"),
    ({"parameters[1].name": "x"}, "parameters[0].name", "twice"),
    ({"study.name": "bad name/with slash"}, "study.name", "letters"),
    ({"parameters[4].parameter_combinations": "{not json"}, "parameters[4].parameter_combinations", "JSON"),
    ({"backend.name": "nowhere"}, "backend.name", "backend"),
])
def test_each_error_is_shown_beside_its_field(base: Path, change: dict[str, str], field: str, words: str) -> None:
    errors = check({**good_fields(), **change}, base)
    assert field in errors, errors
    assert words.lower() in errors[field].lower()


def test_several_objectives(base: Path) -> None:
    f = {**good_fields(), "objective[1].title": "val", "objective[1].series": "time", "objective[1].sign": "max"}
    doc, _ = forms.fields_to_doc(f, base, base / "store")
    assert isinstance(doc["objective"], list) and len(doc["objective"]) == 2
    assert check(f, base) == {}
    f["objective[1].series"] = ""
    assert "objective[1].series" in check(f, base)


def test_toml_round_trip_refills_the_form(base: Path) -> None:
    doc, _ = forms.fields_to_doc(good_fields(), base, base / "store")
    text = forms.toml_text(doc)
    again = forms.parse_import("s1.toml", text.encode())
    fields = forms.doc_to_fields(again, {"random": ("max_retries",)})
    doc2, errors = forms.fields_to_doc(fields, base, base / "store")
    assert errors == {} and doc2 == doc


def test_clearml_json_round_trip_and_cli_flag_names(base: Path) -> None:
    doc, _ = forms.fields_to_doc(good_fields(), base, base / "store")
    exported = forms.doc_to_clearml(doc)
    assert exported["optimizer_class"] == "RandomSearch" and exported["objective_metric_title"] == "val"
    assert exported["hyper_parameters"][0]["type"] == "UniformParameterRange"
    back = forms.parse_import("c.json", json.dumps(exported).encode())
    assert back["strategy"]["name"] == "random" and back["parameters"] == doc["parameters"]
    assert back["task"]["script"] == doc["task"]["script"] and back["limits"] == doc["limits"]
    flags = {"--task-id": "abc123", "--objective-metric-title": "v", "--objective-metric-series": "s",
             "--objective-metric-sign": "max", "--optimizer-class": "OptimizerOptuna", "--queue": "gpu",
             "--params-search": ['{"name": "General/lr", "type": "UniformParameterRange", "min_value": 0, "max_value": 1}'],
             "--total-max-jobs": 7, "--project-name": "ignored"}
    d = forms.clearml_to_doc(flags)
    assert d["task"] == {"task_id": "abc123"} and d["strategy"]["name"] == "optuna"
    assert d["parameters"][0]["name"] == "lr" and d["backend"]["queue"] == "gpu" and d["limits"]["total_max_jobs"] == 7
    with pytest.raises(forms.FormError, match="unknown key"):
        forms.clearml_to_doc({"frobnicate": 1})


def test_import_errors_are_one_line() -> None:
    with pytest.raises(forms.FormError, match="not valid TOML"):
        forms.parse_import("x.toml", b"[study\nname=")
    with pytest.raises(forms.FormError, match="not valid JSON"):
        forms.parse_import("x.json", b"{nope")


def test_definition_of_a_cli_study_becomes_its_study_file(tmp_path: Path) -> None:
    from hyperscout_ui.synth import make_study

    store = make_study(tmp_path / "s", "cli", 3)
    row = store.get_study("cli")
    store.close()
    doc = forms.definition_to_doc("cli", row["definition"], tmp_path / "s")
    assert doc["task"]["argv"] == ["python", "-u", "train.py"]
    assert doc["limits"]["max_number_of_concurrent_tasks"] == 4 and doc["limits"]["pool_period_min"] == 0.1
    assert [p["name"] for p in doc["parameters"]] == ["lr", "dropout", "layers", "optimizer"]
    script = {"argv": [sys.executable, "-u", "/x/train.py", "--a", "1"], "cwd": None, "env": {}, "params_as": "argparse",
              "env_prefix": ""}
    doc = forms.definition_to_doc("cli", {**row["definition"], "base_task": script}, tmp_path)
    assert doc["task"]["script"] == "/x/train.py" and doc["task"]["args"] == ["--a", "1"]

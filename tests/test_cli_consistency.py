"""The command lines agree with each other: every flag has help and states a default once,
errors name the flag a user typed, unknown names get a did-you-mean."""

from __future__ import annotations

import argparse
import re

import pytest

from augkd.rank import build_parser as rank_parser
from augkd.report.cli import _parser as report_parser
from augkd.sweep.cli import build_parser as sweep_parser
from augkd.train import build_parser as train_parser
from augkd.train import main as train_main
from augkd.tune.cli import build_parser as tune_parser

PARSERS = {"train": train_parser, "rank": rank_parser, "tune": tune_parser,
           "sweep": sweep_parser, "report": report_parser}


def _helps(parser: argparse.ArgumentParser):
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
            continue  # -h, and internal flags such as --worker-id
        text = formatter._expand_help(action) if action.help else ""
        yield "/".join(action.option_strings) or action.dest, text


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_every_flag_has_help_and_states_its_default_once(command):
    for flag, text in _helps(PARSERS[command]()):
        assert text.strip(), f"{command} {flag} has no help"
        assert len(re.findall(r"\(default\b", text)) <= 1, f"{command} {flag}: {text}"


def test_rank_says_why_its_students_default_to_another_balancer():
    text = rank_parser().format_help()
    assert "augkd.train's default is agb" in " ".join(text.split())


def test_a_misspelt_da_gets_a_did_you_mean(capsys):
    assert train_main(["student", "--teacher", "RUN", "--aug", "Cutmx"]) == 2
    assert "did you mean cutmix" in capsys.readouterr().err


def test_a_misspelt_balancer_gets_a_did_you_mean(capsys):
    assert train_main(["student", "--teacher", "RUN", "--balancer", "agbb"]) == 2
    err = capsys.readouterr().err
    assert "unknown balancer 'agbb'; known: agb, " in err and "did you mean agb?" in err


@pytest.mark.parametrize(("argv", "said"), [
    (["--agb-lambda", "1.5"], "error: --agb-lambda must be in [0, 1], got 1.5"),
    (["--w-task", "-1"], "error: --w-task must be a finite number >= 0, got -1.0"),
])
def test_errors_name_the_flag_not_the_config_key(argv, said, capsys):
    assert train_main(["student", "--teacher", "RUN", *argv]) == 2
    assert capsys.readouterr().err.strip() == said


def test_a_dataset_without_its_root_names_the_flag(tmp_path, capsys):
    assert train_main(["teacher", "--dataset", "imagefolder", "--out", str(tmp_path / "t")]) == 2
    assert "error: dataset 'imagefolder' needs --root" in capsys.readouterr().err


def test_only_a_check_of_the_key_is_renamed():
    from augkd.cli import name_flags

    flags = {"teacher": "--teacher", "quant": "--quant", "root": "--root"}
    assert name_flags("teacher runs/t/model.pt does not fit", flags) == \
        "teacher runs/t/model.pt does not fit"
    assert name_flags("quant: bad bits 'w9'", flags) == "--quant: bad bits 'w9'"
    assert name_flags("rooted must stay", flags) == "rooted must stay"


def test_a_shipped_spec_without_its_data_says_which_set_to_give(tmp_path, monkeypatch, capsys):
    from pathlib import Path

    from augkd.sweep.cli import main as sweep_main

    spec = Path(__file__).resolve().parents[1] / "experiments" / "cifar10_cpu.yaml"
    monkeypatch.chdir(tmp_path)  # ../shared/data/... does not exist from here
    assert sweep_main([str(spec), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "dataset.root ../shared/data/cifar10-jpeg.tar.xz" in err and "does not exist" in err
    assert "--set dataset.root=PATH" in err and "dataset.options.download=true" in err
    assert not (tmp_path / "runs").exists()

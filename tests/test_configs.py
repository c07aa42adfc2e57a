"""Every config opens with the command that runs it and loads into its typed dataclass."""

from __future__ import annotations

from pathlib import Path

import pytest

from jdlens.config import load_config
from jdlens.report import ReportConfig
from serving.settings import ServeConfig
from training.args import TrainingArguments

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))
KINDS = {"report.yaml": ReportConfig, "serve.yaml": ServeConfig}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_opens_with_its_command_and_loads(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# ") and "jdlens " in first, f"{path.name} must open with the command that runs it"
    load_config(KINDS.get(path.name, TrainingArguments), path)


def test_overrides_are_typed_and_unknown_keys_fail() -> None:
    args = load_config(TrainingArguments, CONFIGS[0], ["epochs=2", "lora_target_modules=query,key", "register=false"])
    assert args.epochs == 2 and args.lora_target_modules == ["query", "key"] and args.register is False
    with pytest.raises(ValueError, match="unknown config key"):
        load_config(TrainingArguments, None, ["epochz=2"])
    with pytest.raises(ValueError, match="method"):
        load_config(TrainingArguments, None, ["method=qlora"])

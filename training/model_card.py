"""The model card (markdown) written and logged with every training run."""

from __future__ import annotations

from typing import Any

from jdlens.labels import FLAGS, ROLES


def render(args: dict[str, Any], hashes: dict[str, str], result: dict[str, Any], train_info: dict[str, Any]) -> str:
    sent = result.get("sentences", {})
    jds = result.get("jds", {})
    lines = [
        "# jdlens sentence classifier",
        "",
        "Labels every sentence of a job description for an AI role with one role "
        f"({', '.join(ROLES)}) and any of the flags ({', '.join(FLAGS)}), as defined in LABELS.md. "
        "One sequence-classification head: 5 role logits (softmax) then 3 flag logits (sigmoid).",
        "",
        "## Training",
        f"- base model: `{args['base_model']}`; method: {args['method']}"
        + (
            f" (LoRA r={args['lora_r']}, alpha={args['lora_alpha']}, targets {args['lora_target_modules']})"
            if args["method"] == "lora"
            else ""
        ),
        f"- epochs run: {train_info.get('epochs_run')}, best epoch {train_info.get('best_epoch')}, "
        f"{train_info.get('examples_per_second', 0):.1f} examples/s on {train_info.get('device')}",
        f"- trainable parameters: {train_info.get('trainable_params'):,} of {train_info.get('total_params'):,}",
        f"- selected, calibrated and flag thresholds tuned on: {train_info.get('selected_on', 'dev')} "
        f"(role temperature {train_info.get('role_temperature', 1.0)}, flag temperature "
        f"{train_info.get('flag_temperature', 1.0)}, folded into the head)",
        f"- flag thresholds: {train_info.get('flag_thresholds')}",
        "",
        "## Data (content hashes)",
        *[f"- `{k}`: {v}" for k, v in sorted(hashes.items())],
        "",
        "## Test metrics",
    ]
    if sent:
        lines += [
            f"- sentence split ({sent['n']}): role macro-F1 {sent['role_macro_f1']:.3f}, "
            f"accuracy {sent['role_accuracy']:.3f}"
        ]
        lines += [
            f"  - {f}: F1 {m['f1']:.3f} (P {m['precision']:.3f}, R {m['recall']:.3f})" for f, m in sent["flags"].items()
        ]
    if jds:
        lines += [f"- whole JDs ({jds['n']}): role_type accuracy {jds['role_type_accuracy']:.3f}"]
        lines += [f"  - {m}: F1 {v['f1']:.3f}" for m, v in jds["mistakes"].items()]
    lines += [
        "",
        "## Limits",
        "- Trained on sentences written for this project, not on real postings; real JDs vary more.",
        "- English only. Sentences are classified alone: a heading's context is used only by the JD rules.",
        "- `mixed` and the JD mistakes come from rules over sentence predictions (configs/report.yaml).",
        "- Not a hiring decision tool: it reviews the wording of a job description.",
    ]
    return "\n".join(lines) + "\n"

"""Label names, exactly as the labelling guide (LABELS.md) spells them, and the model's label layout."""

from __future__ import annotations

ROLES: tuple[str, ...] = ("application", "ml", "research", "general", "other")
FLAGS: tuple[str, ...] = ("phd_required", "buzzword", "vague_seniority")
ROLE_SPECIFIC: tuple[str, ...] = ("application", "ml", "research")
ROLE_TYPES: tuple[str, ...] = ("application", "ml", "research", "mixed")
MISTAKES: tuple[str, ...] = ("mixed_roles", "phd_for_non_research", "buzzwords", "vague_seniority")

# One sequence-classification head: 5 role logits (softmax) followed by 3 flag logits (sigmoid).
LABELS: tuple[str, ...] = ROLES + FLAGS
ID2LABEL: dict[int, str] = dict(enumerate(LABELS))
LABEL2ID: dict[str, int] = {v: k for k, v in ID2LABEL.items()}
NUM_ROLES = len(ROLES)
NUM_FLAGS = len(FLAGS)

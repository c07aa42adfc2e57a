"""What the seed article says about each role: salary bands (2026) and the interview plan that fits it."""

from __future__ import annotations

ROLE_TITLES: dict[str, str] = {
    "application": "AI Application Engineer",
    "ml": "ML Engineer",
    "research": "Research Engineer",
}

SALARY_BANDS: dict[str, dict[str, str]] = {
    "application": {
        "us_base_senior": "$150K-$230K",
        "us_total_comp_senior": "$200K-$320K (well-funded start-ups)",
        "uk": "£80K-£130K",
    },
    "ml": {
        "us_base_senior": "$180K-$280K",
        "us_total_comp_senior": "$250K-$400K",
        "uk": "£100K-£160K",
    },
    "research": {
        "us_base_senior": "$220K-$350K+",
        "us_total_comp_senior": "$300K-$500K+ (AI labs)",
        "uk": "£130K-£200K",
    },
}

INTERVIEW_PLANS: dict[str, list[str]] = {
    "application": [
        "System design for an LLM-powered feature",
        "LLM evaluation exercise",
        "Code review of a RAG implementation",
    ],
    "ml": [
        "Training pipeline design",
        "Production debugging scenario",
        "Model serving architecture",
        "Code quality assessment",
    ],
    "research": [
        "Deep paper discussion",
        "Novel problem formulation",
        "Architecture critique",
        "Implementation of a component from a recent paper",
    ],
}

# Specific requirements to write instead of a buzzword, per role (the seed's advice, made concrete).
SPECIFIC_EXAMPLES: dict[str, str] = {
    "application": "Experience building RAG systems with a vector database (e.g. pgvector or Pinecone) "
    "and designing metrics for LLM output quality",
    "ml": "Experience fine-tuning Llama-class models on domain-specific datasets with LoRA or QLoRA",
    "research": "Has implemented a component from a recent paper and run ablations to test it",
}

# What senior looks like in practice, per role, instead of a year count.
SENIORITY_EXAMPLES: dict[str, str] = {
    "application": "has shipped at least two LLM features to production users, with evaluation in place",
    "ml": "has taken at least two models from experiment to production serving 1M+ requests/day",
    "research": "has led a research project from idea to a published or internally adopted result",
}

"""DiSCo (Lupart et al., SIGIR 2025): a conversational SPLADE query encoder distilled from rewrite teachers."""

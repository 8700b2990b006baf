"""Teachers: dense encoder, SPLADE, rewrite teachers, LLM tool-call teacher."""

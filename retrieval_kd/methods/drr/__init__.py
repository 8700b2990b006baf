"""Distill-Retrieve-Read (Huang et al., 2024): a small rewriter distilled from teacher search queries, then retrieval."""

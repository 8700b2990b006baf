"""Distill-Retrieve-Read: rewrite a dialogue into queries, retrieve, fuse, optionally read."""

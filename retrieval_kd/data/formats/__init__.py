"""Readers of the formats people hold their collections in, each to the pieces of the one Dataset form.

  beir      BEIR folders (corpus.jsonl, queries.jsonl, qrels/<split>.tsv)
  tabular   JSONL / TSV / CSV corpora and query files through a column mapping
  trec      TREC qrels, run files, SGML document collections
  topics    TREC topics: XML, classic SGML, TSV
  cast      CAsT 2019–2022 and iKAT 2023–2025 topic files of any year, by path
  importer  `import_collection`: any of the above (or the SciFact zip) -> a checked dataset folder

Kept import-light: this package imports nothing until a module of it is asked for.
"""

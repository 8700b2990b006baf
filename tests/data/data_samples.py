"""Small inline files shared by the data-format tests: BEIR rows, TREC topics, TREC SGML documents."""

CORPUS = ('{"_id": "d1", "title": "Sorting", "text": "Parallel sorting algorithms."}\n'
          '{"_id": "d2", "title": "", "text": "Garbage collection in Lisp."}\n'
          '{"_id": "d3", "title": "Hashing", "text": "Open addressing.", "metadata": {}}\n')
QUERIES = ('{"_id": "q1", "text": "parallel sort"}\n{"_id": "q2", "text": "lisp gc"}\n'
           '{"_id": "q3", "text": "hash tables"}\n')

XML = """<?xml version="1.0"?>
<topics>
  <topic number="201" type="single">
    <query>raspberry pi</query>
    <description>What is a raspberry pi?</description>
  </topic>
  <topic number="202">
    <query>uss carl vinson</query>
  </topic>
</topics>
"""

SGML = """<top>
<num> Number: 051
<title> Topic:  Airbus Subsidies

<desc> Description:
Document will discuss government assistance to Airbus.
<narr> Narrative:
A relevant document ...
</top>

<top>
<num> Number: 052
<title> Topic: South African Sanctions
<desc> Description: sanctions against South Africa.
</top>
"""

DOCS = """<DOC>
<DOCNO> FT911-1 </DOCNO>
<HEADLINE>Markets &amp; money</HEADLINE>
<TEXT>
Shares rose <B>sharply</B> today.
</TEXT>
</DOC>
<DOC>
<DOCNO>FT911-2</DOCNO>
Plain body without a TEXT element.
</DOC>
"""

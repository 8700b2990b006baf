"""Text handling shared by indexes, taggers and trainers: tokenisers, stemming, CJK ranges, name lexicons."""

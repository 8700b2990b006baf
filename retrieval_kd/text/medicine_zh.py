"""Chinese medicine-name lexicon: dosage forms, salt prefixes, shortened names (`aliases`) and aspect words."""

from __future__ import annotations

import re

# Colloquial wording → the database's attribute name, so a question's aspect can be searched like the records
# are written ('副作用' asks for '不良反应'). A small hand-written lexicon of the 9 attributes (domain knowledge).
ASPECT_WORDS = {
    "副作用": "不良反应", "不良反应": "不良反应", "怎么吃": "用法用量", "怎么用": "用法用量", "用量": "用法用量",
    "吃几": "用法用量", "一次吃": "用法用量", "一起吃": "药物相互作用", "联合": "药物相互作用", "同时吃": "药物相互作用",
    "同服": "药物相互作用", "怀孕": "孕妇禁忌", "孕妇": "孕妇禁忌", "孕期": "孕妇禁忌", "孩子": "儿童禁忌", "小孩": "儿童禁忌",
    "儿童": "儿童禁忌", "宝宝": "儿童禁忌", "禁忌": "禁忌症", "注意": "注意事项", "保存": "存储方式", "存放": "存储方式",
    "什么药": "适应症", "治疗": "适应症", "作用": "适应症", "有用": "适应症", "效果": "适应症",
}


def aliases(name: str, min_len: int = 2) -> set[str]:
    """Shortened forms a user may say for a database medicine name: without a leading brand number, an acid-salt
    or route prefix, a parenthesised suffix, the dosage form, a cation ('阿托伐他汀钙片' → '阿托伐他汀')."""
    heads = {name, _TAIL.sub("", name)}
    heads |= {_LEAD.sub("", h) for h in heads}
    heads |= {h[len(p):] for h in heads for p in SALT_PREFIXES if h.startswith(p)}
    out = set(heads)
    for h in heads:
        for f in ALIAS_FORMS:
            if h.endswith(f):
                core = h[: -len(f)]
                out.add(core)
                if core.endswith(CATIONS) and len(core) >= 4:
                    out.add(core[:-1])
    return {a for a in out if len(a) >= min_len}


# Dosage-form suffixes stripped to find a shortened mention ("奥美拉唑" for "奥美拉唑肠溶胶囊").
FORMS = ("缓释片", "肠溶片", "分散片", "咀嚼片", "控释片", "肠溶胶囊", "软胶囊", "胶囊", "颗粒", "滴丸", "口服液", "注射液",
         "软膏", "乳膏", "糖浆", "片", "丸")


# Salt / route prefixes and cation suffixes that people drop when they name a medicine ("丁螺环酮" for
# "盐酸丁螺环酮片", "华法林" for "华法林钠片", "皮炎平" for "999皮炎平").
SALT_PREFIXES = ("注射用", "葡萄糖酸", "甲磺酸", "富马酸", "马来酸", "枸橼酸", "酒石酸", "琥珀酸", "苯磺酸", "氢溴酸", "苯甲酸",
                 "盐酸", "硫酸", "醋酸", "硝酸")


CATIONS = ("钙", "钠", "钾")


ALIAS_FORMS = FORMS + ("注射液", "气雾剂", "滴眼液", "滴鼻液", "滴剂", "乳膏", "凝胶", "栓", "散", "膏")


_LEAD = re.compile(r"^[0-9A-Za-z]+(?=[\u4e00-\u9fff]{2})")


_TAIL = re.compile(r"[(（][^)）]*[)）]$")

"""DNA, genetic and biometric data: the plan reserves DNA to the police, so no source may send it.

Two rules, in this one place, that every intake path (JSON, JSON lines, CSV) meets
through the models:

* **keys** (:data:`DNA_KEY`): a field *named* like DNA or biometric data anywhere in the
  input is refused with the legal reason (``reject_dna_keys``, a ``mode="wrap"``
  validator of submissions and reports);
* **text** (:func:`dna_content`): every human-text field (``schemas/scalars.py``: ``Line``
  and ``FreeText``) is screened for DNA-class *content*: STR loci with or without allele
  values (``D8S1179 13/14``), Y-STR and mtDNA, haplotypes, DNA comparisons and kinship
  results in Chinese and English (``DNA 比对``, ``亲子鉴定``, ``paternity index``), genetic
  test results, raw nucleotide sequences, fingerprint minutiae, face and iris templates,
  and base64-encoded biometric records.

The message names the kind of content found, never the text itself. What is *not* DNA:
a birth weight (``3.2kg``), a room or ward (``D8``, ``3-12``), a date (``13/14`` is no
date, but ``12/11`` is), a phone number, a hereditary illness (``遗传病``) or a bare
mention that the police may take a sample. ``tests/unit/schemas/test_dna.py`` holds the
corpus of true and false positives.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

# -- keys ------------------------------------------------------------------------------------------
DNA_KEY = re.compile(r"dna|genetic|biometric|fingerprint|iris|face_?print|voiceprint", re.I)
DNA_MESSAGE = "DNA and biometric data may only be collected by the police (field '{path}'); do not send it"


def find_dna_keys(data: Any, prefix: str = "") -> list[str]:
    """Paths of keys anywhere in raw input that look like DNA/biometric data (lists by index)."""
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(key, str) and DNA_KEY.search(key):
                found.append(path)
            found.extend(find_dna_keys(value, path))
    elif isinstance(data, list | tuple):
        for i, item in enumerate(data):
            found.extend(find_dna_keys(item, f"{prefix}.{i}" if prefix else str(i)))
    return found


# Short keys already found clean. Every report repeats the same few dozen field names, so
# the regex runs once per name instead of once per key and report (this check runs on every
# intake and every routed report). Bounded, because keys come from the sender.
_CLEAN_KEYS: set[str] = set()
_CLEAN_KEYS_MAX = 4096
_CLEAN_KEY_MAX_LEN = 64
_CONTAINERS = (dict, list, tuple)


def _is_dna_key(key: object) -> bool:
    if not isinstance(key, str) or key in _CLEAN_KEYS:
        return False
    if DNA_KEY.search(key):
        return True
    if len(key) <= _CLEAN_KEY_MAX_LEN and len(_CLEAN_KEYS) < _CLEAN_KEYS_MAX:
        _CLEAN_KEYS.add(key)
    return False


def has_dna_keys(data: Any) -> bool:
    """Whether :func:`find_dna_keys` would find anything, without building a single path."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            # One C-level set test per object: its keys are usually all known clean. Only an
            # object with a new (or non-string) key has its keys looked at one by one.
            if not _CLEAN_KEYS.issuperset(item) and any(_is_dna_key(key) for key in item):
                return True
            stack.extend([value for value in item.values() if isinstance(value, _CONTAINERS)])
        elif isinstance(item, list | tuple):
            stack.extend([value for value in item if isinstance(value, _CONTAINERS)])
    return False


def reject_dna_keys(data: Any, validate: Callable[[Any], Any]) -> Any:
    """Body of the ``mode="wrap"`` validators of submissions and reports: ``validate(data)``, refusing
    DNA keys with the legal reason.

    Every model of a submission or report forbids keys it does not declare, and none declares
    one named like DNA (``tests/unit/schemas/test_registry.py`` holds both true of every model),
    so input with a DNA key never validates: the keys are looked at only when validation fails.
    Walking every valid report's keys first was ~15% of parsing it, on every intake and in the
    router. The refusal is the same as when the walk came first: this one error, whatever else
    is wrong with the input.
    """
    try:
        return validate(data)
    except ValidationError:
        if has_dna_keys(data):  # the paths are built only for the error message
            raise ValueError(DNA_MESSAGE.format(path=find_dna_keys(data)[0])) from None
        raise


# -- text ------------------------------------------------------------------------------------------
DNA_TEXT_MESSAGE = (
    "DNA, genetic and biometric data may only be collected by the police (the anti-trafficking plan "
    "reserves the DNA of trafficked children, their parents and suspected victims to the police); "
    "this text holds {kind}: remove it and report what happened in words"
)

_NOT_LATIN = r"(?<![A-Za-z0-9])"  # a word edge that also holds next to Chinese characters
_NOT_LATIN_AFTER = r"(?![A-Za-z0-9])"
# One allele (13, 9.3, 29.2, X, Y) and a genotype, two of them: 13/14, 13,14, 13-14, X,Y.
_ALLELE = r"(?:[1-9]\d?(?:\.[1-3])?|[XY])"
_GENOTYPE = rf"{_ALLELE}\s*[/,，、\-]\s*{_ALLELE}"
# Loci that cannot be anything else: D<chromosome>S<number>, DYS/DXS markers, Y-GATA-H4.
_STRONG_LOCUS = r"(?i:D(?:[1-9]|1\d|2[0-2])S\d{2,4}|DYS\d{2,3}(?:[a-c]|I{1,2})?|DXS\d{3,5}|Y-?GATA-?H4)"
# Loci whose names could be an acronym or a room (TH01): only with a genotype after them.
_WEAK_LOCUS = r"(?i:vWA|TH0?1|TPOX|CSF1PO|FGA|Penta\s?[DE]|SE33|AMEL(?:ogenin)?)"
_DNA = r"(?:DNA|dna|Dna|脱氧核糖核酸)"
_DNA_RESULT_ZH = (
    r"(?:采集|采样|采血|提取|比对|比中|对比|鉴定|检测|检验|分型|图谱|型别|谱带|数据|数据库|入库|样本|样品|档案|"
    r"信息|结果|报告|特征|序列)"
)
_DNA_RESULT_EN = (
    r"(?:profiles?|match(?:es|ed|ing)?|comparisons?|compared|typing|types?|analys[ie]s|results?|reports?|"
    r"samples?|swabs?|database|records?|sequences?|tests?|testing|fingerprints?|markers?|loci|evidence)"
)

# (kind named in the refusal, pattern); searched in this order, first hit wins.
_RULES: tuple[tuple[str, str], ...] = (
    ("an STR profile (locus names)", rf"{_NOT_LATIN}{_STRONG_LOCUS}{_NOT_LATIN_AFTER}"),
    (
        "an STR profile (locus and alleles)",
        rf"{_NOT_LATIN}{_WEAK_LOCUS}\s*[:：=]?\s*{_GENOTYPE}{_NOT_LATIN_AFTER}",
    ),
    (
        "a Y-STR or mitochondrial DNA result",
        rf"{_NOT_LATIN}(?:Y-?STR|mt-?DNA|mitochondrial\s+DNA|线粒体\s*DNA){_NOT_LATIN_AFTER}",
    ),
    (
        "a haplotype or genotype",
        r"(?i:haplo(?:type|group)s?|genotyp(?:e|es|ed|ing)|alleles?)|单倍型|单倍群|基因型|等位基因",
    ),
    ("an STR profile", rf"{_NOT_LATIN}STR\s*(?:分型|图谱|profile|typing|loci|locus|markers?){_NOT_LATIN_AFTER}"),
    ("a DNA comparison or result", rf"{_NOT_LATIN}{_DNA}\s*(?:的)?\s*{_DNA_RESULT_ZH}"),
    ("a DNA comparison or result", rf"{_NOT_LATIN}{_DNA}[\s-]*{_DNA_RESULT_EN}{_NOT_LATIN_AFTER}"),
    ("a DNA comparison or result", rf"(?:比对|比中|鉴定|检测|采集|提取|送检)(?:了)?\s*{_DNA}{_NOT_LATIN_AFTER}"),
    (
        "a DNA comparison or result",
        r"(?i:\b(?:collected|took|taken|extracted|obtained|compared)\s+(?:a\s+|the\s+|his\s+|her\s+|their\s+)?DNA\b)",
    ),
    (
        "a kinship (paternity) result",
        r"亲子鉴定|亲权鉴定|亲缘鉴定|亲子关系概率|亲权指数|亲权概率|亲缘关系鉴定|血缘鉴定|采血入库|血样入库",
    ),
    (
        "a kinship (paternity) result",
        r"(?i:paternity\s+(?:test|index|probability|testing)|probability\s+of\s+paternity"
        r"|kinship\s+(?:test|analysis|index)|(?<![A-Za-z])CPI\s*[=:：]\s*\d)",
    ),
    (
        "a genetic test result",
        r"基因\s*(?:的)?\s*(?:比对|比中|鉴定|检测|检验|分型|图谱|数据|数据库|入库|测序|样本|样品|序列|信息|结果|报告|特征|档案)"
        r"|(?i:genetic\s+(?:test|profile|data|testing|analysis|sample|match))",
    ),
    ("a nucleotide sequence", r"(?<![A-Za-z])[ACGT]{24,}(?![A-Za-z])"),
    (
        "a fingerprint template",
        r"(?i:minutiae|fingerprint\s+(?:template|record|image|data|scan|minutiae))"
        r"|指纹\s*(?:特征|模板|数据|图像|采集|比对|细节点)|细节特征点",
    ),
    (
        "a face or iris template",
        r"(?i:face\s*(?:template|embedding|vector|print|encoding)s?|iris\s*(?:code|template|scan)s?"
        r"|facial\s+(?:template|embedding|recognition\s+data))"
        # Not 人脸比对: "the face did not match the ID card photo" is the identity check the plan asks
        # hospitals for at admission (a realistic corpus report was refused for it), not a template.
        r"|人脸\s*(?:特征|模板|数据|识别数据)|面部特征值|虹膜\s*(?:特征|模板|数据|码)|声纹\s*(?:特征|模板|数据)",
    ),
    ("a biometric record standard", r"(?i:ISO/?\s*IEC\s*19794|ISO\s*19794|ANSI[\s/-]*(?:INCITS\s*)?378|WSQ\s+image)"),
)
_COMPILED = tuple((kind, re.compile(pattern)) for kind, pattern in _RULES)
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{64,}={0,2}")
# Magic numbers of ISO/IEC 19794 records: finger minutiae, finger image, face, iris.
_BIOMETRIC_MAGIC = (b"FMR\x00", b"FIR\x00", b"FAC\x00", b"IIR\x00")
BASE64_LIMIT = 256  # a base64 run this long is binary data in a text field: a template or a file


# Every rule above needs one of these (lower-cased) pieces: a cheap search over the folded text
# decides whether the rules run at all. Measured on the bundled examples: ~1-5 us per
# text field instead of ~60 us for the rules on an 85-character narrative.
_TRIGGERS = (
    "dna dys dxs gata str vwa th01 th1 tpox csf1po fga penta se33 amel mitochond haplo genotyp allel "
    "paternity kinship cpi genetic minutiae fingerprint face facial iris 19794 ansi wsq "
    "脱氧 线粒体 单倍 基因 等位 亲子 亲权 亲缘 血缘 采血 血样 指纹 细节特征 人脸 面部 虹膜 声纹"
).split()
_TRIGGER_WORDS = re.compile("|".join(map(re.escape, _TRIGGERS)) + r"|d\d")
# Apart from the words: a run of 24 bases or 64 base64 characters. Each alternative that starts
# with a repeat made re try it at every position, and keeps re from scanning for the words' first
# characters: one pattern with all of them took 2.5 us per text field of the bundled examples,
# these two 1.1 us (most fields are shorter than 24 characters and skip the second).
_TRIGGER_RUNS = re.compile(r"[acgt]{24}|[a-z0-9+/]{64}")
_RUN_MIN = 24


def triggered(folded: str) -> bool:
    """Whether lower-cased ``folded`` holds a trigger, so that the rules have to run on it."""
    if _TRIGGER_WORDS.search(folded):
        return True
    return len(folded) >= _RUN_MIN and _TRIGGER_RUNS.search(folded) is not None


_FULL_WIDTH = re.compile("[\uff01-\uff5e\u3000]")


def dna_content(text: str) -> str | None:
    """The kind of DNA-class content in ``text`` (for the refusal), or None."""
    if _FULL_WIDTH.search(text):
        text = unicodedata.normalize("NFKC", text)  # full-width ＤＮＡ and １３ read as DNA and 13
    if not triggered(text.lower()):
        return None
    for kind, pattern in _COMPILED:
        if pattern.search(text):
            return kind
    for run in _BASE64_RUN.findall(text):
        if len(run) >= BASE64_LIMIT:
            return "encoded binary data (a biometric template or a file)"
        try:
            head = base64.b64decode(run[: len(run) // 4 * 4], validate=True)[:4]
        except (binascii.Error, ValueError):
            continue
        if head in _BIOMETRIC_MAGIC:
            return "a biometric template (ISO/IEC 19794 record)"
    return None


def screen_text(value: str) -> str:
    """Validator of every text field: refuses DNA-class content with the legal reason."""
    kind = dna_content(value)
    if kind is not None:
        raise ValueError(DNA_TEXT_MESSAGE.format(kind=kind))
    return value

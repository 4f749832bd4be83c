"""Checks of the Rasa NLU training data in nlu/ and the held-out test set in tests/nlu/.

Runs without Rasa: parses the YAML, counts intents, validates entity annotations, regexes, lookups and synonyms, and
looks for near-duplicate examples with rapidfuzz. If jieba is installed, also checks that every annotated entity starts
and ends on a jieba token boundary once nlu/jieba/userdict.txt is loaded (Rasa warns about misaligned entities).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import yaml
from rapidfuzz import fuzz, process

ROOT = Path(__file__).resolve().parents[1]
NLU_DIR = ROOT / "nlu"
INTENT_DIR = NLU_DIR / "intents"
ENTITY_DIR = NLU_DIR / "entities"
USERDICT = NLU_DIR / "jieba" / "userdict.txt"
LEXICON = NLU_DIR / "lexicon.yml"
TEST_FILE = ROOT / "tests" / "nlu" / "test_messages.yml"

SERVICE_INTENTS = {
    "eldercare",
    "property",
    "certificate",
    "legal_aid",
    "neighbor_dispute",
    "environment",
    "facility_repair",
    "social_assistance",
}
CONVERSATIONAL_INTENTS = {
    "greet",
    "goodbye",
    "thank",
    "affirm",
    "deny",
    "check_status",
    "feedback",
    "human_handoff",
    "bot_challenge",
    "out_of_scope",
}
# Life safety: the numbers first (nlu/components/emergency.py also sets it from its keyword net).
SAFETY_INTENTS = {"emergency"}
ALL_INTENTS = SERVICE_INTENTS | CONVERSATIONAL_INTENTS | SAFETY_INTENTS
ENTITIES = {"community", "compound", "building", "room", "phone", "person", "time", "urgency"}
# entity values that are numbers/codes are covered by regexes, not by the jieba dictionary
REGEX_ENTITIES = {"building", "room", "phone"}

# regexes that are intent features only (RegexFeaturizer); never an entity label
FEATURE_REGEXES = {
    "status_done",
    "status_progress",
    "my_request",
    "greet_title",
    "greet_bare",
    "bare_no",
    "bare_yes",
    "wants_person",
}

MIN_TRAIN = {
    **{i: 60 for i in SERVICE_INTENTS},
    **{i: 20 for i in CONVERSATIONAL_INTENTS},
    **{i: 80 for i in SAFETY_INTENTS},
}
MIN_TEST = {
    **{i: 12 for i in SERVICE_INTENTS},
    **{i: 6 for i in CONVERSATIONAL_INTENTS},
    **{i: 12 for i in SAFETY_INTENTS},
}
MIN_TEST_TOTAL = 180
TRAIN_DUP_RATIO = 90.0
TEST_DUP_RATIO = 85.0

# [text](label) or [text](label:value) or [text]{"entity": "label", ...}
ANNOTATION = re.compile(
    r"\[(?P<text>[^\[\]]+)\](?:\((?P<label>[^():]+)(?::(?P<value>[^()]+))?\)|(?P<json>\{[^{}]*\}))"
)


@dataclass(frozen=True)
class Entity:
    text: str
    label: str
    start: int
    end: int


@dataclass(frozen=True)
class Example:
    intent: str
    raw: str
    text: str
    entities: tuple[Entity, ...]
    source: str


def parse_example(raw: str, intent: str, source: str) -> Example:
    out: list[str] = []
    entities: list[Entity] = []
    pos = 0
    length = 0
    for m in ANNOTATION.finditer(raw):
        before = raw[pos : m.start()]
        out.append(before)
        length += len(before)
        label = m.group("label")
        if label is None:
            label = yaml.safe_load(m.group("json"))["entity"]
        text = m.group("text")
        entities.append(Entity(text, label.strip(), length, length + len(text)))
        out.append(text)
        length += len(text)
        pos = m.end()
    out.append(raw[pos:])
    return Example(intent, raw, "".join(out), tuple(entities), source)


def examples_block(block: str) -> list[str]:
    items = []
    for line in block.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        assert stripped.startswith("- "), f"example line must start with '- ': {line!r}"
        items.append(stripped[2:].strip())
    return items


def load_yaml(path: Path) -> dict:
    with path.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    assert isinstance(data, dict), f"{path} is not a mapping"
    return data


def load_examples(paths: list[Path]) -> list[Example]:
    result = []
    for path in paths:
        for item in load_yaml(path).get("nlu", []):
            if "intent" in item:
                for raw in examples_block(item["examples"]):
                    result.append(parse_example(raw, item["intent"], path.name))
    return result


@cache
def train_examples() -> tuple[Example, ...]:
    return tuple(load_examples(sorted(INTENT_DIR.glob("*.yml"))))


@cache
def held_out_examples() -> tuple[Example, ...]:
    return tuple(load_examples([TEST_FILE]))


@cache
def entity_items() -> tuple[dict, ...]:
    items: list[dict] = []
    for path in sorted(ENTITY_DIR.glob("*.yml")):
        items.extend(load_yaml(path).get("nlu", []))
    return tuple(items)


def norm(text: str) -> str:
    return re.sub(r"\s+", "", text).lower()


def near_duplicates(a: list[str], b: list[str] | None, cutoff: float) -> list[tuple[str, str, float]]:
    """Pairs (x, y, score) with fuzz.ratio >= cutoff; within `a` if b is None, else between a and b."""
    hits = []
    for i, x in enumerate(a):
        choices = a[i + 1 :] if b is None else b
        for y, score, _ in process.extract(x, choices, scorer=fuzz.ratio, score_cutoff=cutoff, limit=None):
            hits.append((x, y, score))
    return hits


# ---------------------------------------------------------------- files and format


def all_data_files() -> list[Path]:
    return [*sorted(INTENT_DIR.glob("*.yml")), *sorted(ENTITY_DIR.glob("*.yml")), LEXICON, TEST_FILE]


@pytest.mark.parametrize("path", all_data_files(), ids=lambda p: p.name)
def test_yaml_parses_with_version_31(path: Path) -> None:
    data = load_yaml(path)
    assert str(data.get("version")) == "3.1"
    assert isinstance(data.get("nlu"), list) and data["nlu"]
    assert set(data) <= {"version", "nlu"}
    for item in data["nlu"]:
        kinds = {"intent", "regex", "lookup", "synonym"} & set(item)
        assert len(kinds) == 1, (
            f"{path.name}: item must have exactly one of intent/regex/lookup/synonym: {item}"
        )
        assert isinstance(item.get("examples"), str), f"{path.name}: examples must be a block string"
        assert examples_block(item["examples"])


@pytest.mark.parametrize("path", sorted(INTENT_DIR.glob("*.yml")), ids=lambda p: p.name)
def test_one_intent_per_file_with_scope_comment(path: Path) -> None:
    data = load_yaml(path)
    intents = [item["intent"] for item in data["nlu"]]
    assert intents == [path.stem]
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("#") and "NOT here" in path.read_text(encoding="utf-8"), "scope comment missing"


def test_all_intents_present_and_nothing_else() -> None:
    names = {ex.intent for ex in train_examples()}
    assert names == ALL_INTENTS
    assert {ex.intent for ex in held_out_examples()} == ALL_INTENTS


def test_training_counts_per_intent() -> None:
    counts = Counter(ex.intent for ex in train_examples())
    low = {i: counts[i] for i, n in MIN_TRAIN.items() if counts[i] < n}
    assert not low, f"too few training examples: {low}"


def test_test_counts_per_intent() -> None:
    counts = Counter(ex.intent for ex in held_out_examples())
    assert sum(counts.values()) >= MIN_TEST_TOTAL
    low = {i: counts[i] for i, n in MIN_TEST.items() if counts[i] < n}
    assert not low, f"too few test messages: {low}"


# ---------------------------------------------------------------- entities


@pytest.mark.parametrize("which", ["training", "test"])
def test_entity_labels_and_markup(which: str) -> None:
    examples = train_examples() if which == "training" else held_out_examples()
    for ex in examples:
        for ent in ex.entities:
            assert ent.label in ENTITIES, f"unknown entity label {ent.label!r} in {ex.raw!r}"
            assert ent.text == ent.text.strip() and ent.text, f"entity with spaces at the edge in {ex.raw!r}"
            assert ex.text[ent.start : ent.end] == ent.text
        # leftover markup means a broken annotation
        assert not re.search(r"\]\(|\[[^\]]*$", ex.text), f"broken annotation in {ex.raw!r}"


def test_every_entity_label_is_annotated() -> None:
    counts = Counter(ent.label for ex in train_examples() for ent in ex.entities)
    missing = ENTITIES - set(counts)
    assert not missing, f"entities never annotated in training: {missing}"
    assert all(counts[e] >= 5 for e in ENTITIES), counts


def test_regexes_compile_and_match_annotations() -> None:
    regexes: dict[str, list[re.Pattern[str]]] = {}
    for item in entity_items():
        if "regex" in item:
            assert item["regex"] in ENTITIES | FEATURE_REGEXES
            regexes[item["regex"]] = [re.compile(p) for p in examples_block(item["examples"])]
    assert {"phone", "room"} <= set(regexes)
    for ex in (*train_examples(), *held_out_examples()):
        for ent in ex.entities:
            if ent.label == "phone":
                assert any(p.fullmatch(ent.text) for p in regexes["phone"]), ent.text
    assert regexes["phone"][0].search("电话13971234567")
    assert not regexes["phone"][0].fullmatch("12345678901")


# (regex name, text, should any of its patterns match); case-insensitive like RegexFeaturizer(case_sensitive: false)
FEATURE_REGEX_CASES = [
    ("status_done", "我申请的低保批下来了冇", True),
    ("status_done", "居住证明办好了没", True),
    ("status_done", "派人了没有", True),
    ("status_done", "社区能开吗", False),
    ("status_done", "出生证明丢了 能补办吗", False),
    ("status_done", "好了没事了", False),
    ("status_done", "两项补贴申请 街道审完了没", True),
    ("status_done", "无犯罪证明 出来了吗", True),
    ("status_done", "证明什么时候能出来", False),
    ("status_done", "证明能去拿了吗", True),
    ("status_done", "有没有派人", True),
    ("status_progress", "公租房申请有消息了吗", True),
    ("status_progress", "到哪一步了", True),
    ("status_progress", "冇人来过 还说办结了", False),
    ("status_progress", "公租房申请 排到第几号了", True),
    ("my_request", "我报的路灯修了冇", True),
    ("my_request", "不是我报的", False),
    ("greet_title", "叔叔好", True),
    ("greet_title", "网格员姐姐好", True),
    ("greet_title", "好", False),
    ("greet_title", "非常好", False),
    ("greet_title", "师傅好 电梯又坏了", False),
    ("greet_title", "大伙好", True),
    ("greet_bare", "下午好啊", True),
    ("greet_bare", "妳好", True),
    ("greet_bare", "早上好 我家电梯坏了", False),
    ("bare_no", "没得", True),
    ("bare_no", "拒绝", True),
    ("bare_no", "没这回事", True),
    ("bare_no", "没得错", False),
    ("bare_no", "不错", False),
    ("bare_yes", "没得错", True),
    ("bare_yes", "嗯嗯", True),
    ("bare_yes", "好 下午来也行", False),
    ("wants_person", "不要机器人 要真人", True),
    ("wants_person", "麻烦叫个管事的来", True),
    ("wants_person", "talk to a person", True),
    ("wants_person", "你是真人吗", False),
]


@pytest.mark.parametrize(("name", "text", "hit"), FEATURE_REGEX_CASES)
def test_feature_regexes(name: str, text: str, hit: bool) -> None:
    items = [item for item in entity_items() if item.get("regex") == name]
    assert len(items) == 1
    assert name not in ENTITIES
    patterns = [re.compile(p, re.IGNORECASE) for p in examples_block(items[0]["examples"])]
    assert any(p.search(text) for p in patterns) is hit


# The domain lexicon's lookups are intent features (RegexFeaturizer), one per category they point to.
LEXICON_LISTS = {
    "lex_facility": "facility_repair",
    "lex_environment": "environment",
    "lex_property": "property",
    "lex_neighbor": "neighbor_dispute",
    "lex_legal": "legal_aid",
    "lex_certificate": "certificate",
    "lex_eldercare": "eldercare",
    "lex_social": "social_assistance",
    "lex_chitchat": "out_of_scope",
    "lex_thank": "thank",
    "lex_goodbye": "goodbye",
    "lex_feedback": "feedback",
}


def lexicon() -> dict[str, list[str]]:
    items = load_yaml(LEXICON)["nlu"]
    assert all("lookup" in item for item in items)
    return {item["lookup"]: examples_block(item["examples"]) for item in items}


def test_lexicon_lists_one_category_each() -> None:
    lists = lexicon()
    assert set(lists) == set(LEXICON_LISTS)
    assert not set(lists) & (ENTITIES | FEATURE_REGEXES)
    assert set(LEXICON_LISTS.values()) <= ALL_INTENTS
    owner: dict[str, str] = {}
    for name, words in lists.items():
        assert len(words) >= 20, f"{name}: a lexicon list this short adds little"
        for word in words:
            # word boundaries are off: a one-character entry would match inside unrelated words
            assert len(word) >= 2, f"{name}: {word!r} is too short"
            assert word == word.lower() and word == word.strip(), f"{name}: {word!r}"
            assert word not in owner, f"{word!r} is in both {owner[word]} and {name}"
            owner[word] = name


def test_lexicon_words_point_to_their_category_in_training() -> None:
    """A lexicon word that the training data uses 4 times or more occurs in its own category in at least
    30 % of them: a word that belongs to another category under the scope rules would teach the model the
    wrong thing."""
    by_word: dict[tuple[str, str], Counter[str]] = {}
    lists = lexicon()
    for ex in train_examples():
        text = ex.text.lower()
        for name, words in lists.items():
            for word in words:
                if word in text:
                    by_word.setdefault((name, word), Counter())[ex.intent] += 1
    wrong = {
        f"{name}:{word}": dict(counts)
        for (name, word), counts in by_word.items()
        if counts.total() >= 4 and counts[LEXICON_LISTS[name]] < 0.3 * counts.total()
    }
    assert not wrong, f"lexicon words used mostly by another category: {wrong}"


def test_lookups_and_synonyms() -> None:
    lookups = {
        item["lookup"]: examples_block(item["examples"]) for item in entity_items() if "lookup" in item
    }
    assert set(lookups) >= {"community", "compound"}
    assert set(lookups) <= ENTITIES
    assert set(lookups["community"]) == {"安居社区", "锦江社区", "丹水池社区"}
    assert len(lookups["compound"]) == 9
    seen: set[str] = set()
    for item in entity_items():
        if "synonym" in item:
            for value in examples_block(item["examples"]):
                assert value not in seen, f"synonym text {value!r} listed twice"
                assert value != item["synonym"]
                seen.add(value)


# ---------------------------------------------------------------- duplicates


def test_no_exact_duplicates_or_conflicts() -> None:
    by_text: dict[str, set[str]] = {}
    for ex in train_examples():
        by_text.setdefault(norm(ex.text), set()).add(ex.intent)
    dup = Counter(norm(ex.text) for ex in train_examples())
    assert not [t for t, n in dup.items() if n > 1], "exact duplicates in training"
    assert not [t for t, i in by_text.items() if len(i) > 1], "same text under two intents"
    test_dup = Counter(norm(ex.text) for ex in held_out_examples())
    assert not [t for t, n in test_dup.items() if n > 1], "exact duplicates in test set"


def test_no_near_duplicates_in_training() -> None:
    texts = [norm(ex.text) for ex in train_examples()]
    hits = near_duplicates(texts, None, TRAIN_DUP_RATIO)
    assert not hits, "near-duplicate training examples:\n" + "\n".join(
        f"{s:.0f}  {a} | {b}" for a, b, s in hits
    )


def test_no_near_duplicates_in_test_set() -> None:
    texts = [norm(ex.text) for ex in held_out_examples()]
    hits = near_duplicates(texts, None, TRAIN_DUP_RATIO)
    assert not hits, "near-duplicate test messages:\n" + "\n".join(f"{s:.0f}  {a} | {b}" for a, b, s in hits)


def test_test_set_is_held_out() -> None:
    train = [norm(ex.text) for ex in train_examples()]
    test = [norm(ex.text) for ex in held_out_examples()]
    hits = near_duplicates(test, train, TEST_DUP_RATIO)
    assert not hits, "test messages too close to training:\n" + "\n".join(
        f"{s:.0f}  {a} | {b}" for a, b, s in hits
    )


# ---------------------------------------------------------------- realism mix


def test_realism_mix() -> None:
    service = [ex for ex in train_examples() if ex.intent in SERVICE_INTENTS]
    texts = [ex.text for ex in service]
    short = sum(len(norm(t)) <= 4 for t in texts)
    long = sum(len(norm(t)) >= 30 for t in texts)
    latin = sum(bool(re.search(r"[A-Za-z]{2,}", t)) for t in texts)
    traditional = sum(bool(re.search(r"[們壞媽開證遺產請樓區沒齡幫裡這個麼]", t)) for t in texts)
    wuhan = sum(bool(re.search(r"冇|么样|么事|爹爹|婆婆|伢|蛮|搞么", t)) for t in texts)
    annotated = sum(bool(ex.entities) for ex in service)
    assert short >= 30 and long >= 60 and latin >= 5 and traditional >= 8 and wuhan >= 80
    assert annotated >= 0.2 * len(service)
    for intent in SERVICE_INTENTS:
        assert any(ex.entities for ex in service if ex.intent == intent)


# ---------------------------------------------------------------- jieba dictionary


def userdict_words() -> dict[str, tuple[int, str]]:
    words: dict[str, tuple[int, str]] = {}
    for n, line in enumerate(USERDICT.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(" ")
        assert len(parts) == 3, f"userdict line {n} must be 'word freq tag': {line!r}"
        word, freq, tag = parts
        assert word and freq.isdigit() and re.fullmatch(r"[a-z]+", tag), f"bad userdict line {n}: {line!r}"
        assert word not in words, f"userdict word {word!r} listed twice"
        words[word] = (int(freq), tag)
    return words


def test_userdict_covers_entity_values_and_domain_words() -> None:
    words = userdict_words()
    required: set[str] = set()
    for item in entity_items():
        if "lookup" in item:
            required.update(examples_block(item["examples"]))
        if "synonym" in item:
            required.add(item["synonym"])
            required.update(examples_block(item["examples"]))
    for ex in (*train_examples(), *held_out_examples()):
        required.update(ent.text for ent in ex.entities if ent.label not in REGEX_ENTITIES)
    required.update(
        [
            "低保",
            "网格员",
            "助餐",
            "物业费",
            "业委会",
            "高龄津贴",
            "居住证明",
            "无犯罪记录证明",
            "法律援助",
            "人民调解",
            "井盖",
            "油烟",
            "夜间施工",
        ]
    )
    missing = sorted(w for w in required if w not in words)
    assert not missing, f"missing from userdict.txt: {missing}"


def test_entities_align_with_jieba_tokens() -> None:
    jieba = pytest.importorskip("jieba")
    jieba.setLogLevel(60)
    tok = jieba.Tokenizer()
    tok.load_userdict(str(USERDICT))
    bad = []
    for ex in (*train_examples(), *held_out_examples()):
        if not ex.entities:
            continue
        starts = set()
        ends = set()
        for _word, start, end in tok.tokenize(ex.text):
            starts.add(start)
            ends.add(end)
        for ent in ex.entities:
            if ent.start not in starts or ent.end not in ends:
                tokens = "/".join(w for w, _, _ in tok.tokenize(ex.text))
                bad.append(f"{ent.label}:{ent.text}  in  {tokens}")
    assert not bad, "entities not aligned with jieba tokens:\n" + "\n".join(bad)

"""Rasa 3.6 graph component: normalise Traditional Chinese to Simplified before tokenizing.

Residents write in both scripts (繁體 from Hong Kong / Taiwan relatives, older phones, IMEs set
to Traditional). The training data is Simplified, so without this step 電梯壞了 and 电梯坏了 share
no jieba token and no character n-gram. The component rewrites the message ``text`` in place with
OpenCC (``t2s`` by default) and must therefore come BEFORE the tokenizer in ``config.yml``::

    pipeline:
      - name: nlu.components.opencc_normalizer.TraditionalToSimplified
      - name: JiebaTokenizer
        ...

Offsets: entity annotations are character offsets into ``text``. OpenCC's t2s conversion is
character-for-character for almost everything; if a phrase rule changes the length, the component
falls back to per-character conversion so offsets stay valid (and leaves the text alone if even
that would change the length).

It also maps full-width ASCII letters/digits (１３８ / ＡＢＣ, common from Chinese IMEs) to
half-width, 1:1, so phone numbers and room numbers look the same to regexes and featurizers.
Chinese punctuation is left alone.

This file runs inside the Rasa (Python 3.10) environment only: it imports nothing from the app.
Keep the logic inside the class: Rasa fingerprints the class source for its training cache.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import (
    ENTITIES,
    ENTITY_ATTRIBUTE_END,
    ENTITY_ATTRIBUTE_START,
    ENTITY_ATTRIBUTE_VALUE,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

logger = logging.getLogger(__name__)

# Message property carrying the text as the user typed it, added to the parse output only when
# the normaliser changed something (``/model/parse`` then returns both).
ORIGINAL_TEXT = "text_original"


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False
)
class TraditionalToSimplified(GraphComponent):
    """Rewrites ``message.text`` from Traditional to Simplified Chinese (OpenCC)."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {
            # OpenCC conversion config: t2s, tw2s, hk2s, tw2sp (tw2sp also swaps vocabulary).
            "converter": "t2s",
            # Map full-width ASCII letters and digits (Ｕ+FF10..FF5A) to half-width.
            "fullwidth_to_halfwidth": True,
            # Add text_original to the parse output when the text was changed.
            "expose_original_text": True,
        }

    @staticmethod
    def required_packages() -> List[Text]:
        return ["opencc"]

    @staticmethod
    def supported_languages() -> Optional[List[Text]]:
        return ["zh"]

    def __init__(self, config: Dict[Text, Any]) -> None:
        self._config = {**self.get_default_config(), **config}
        import opencc  # opencc (C++ binding) or opencc-python-reimplemented; same API

        name = str(self._config["converter"])
        try:
            self._converter = opencc.OpenCC(name)
        except Exception:  # older bindings want the file name
            self._converter = opencc.OpenCC(f"{name}.json")
        self._halfwidth = bool(self._config["fullwidth_to_halfwidth"])
        self._expose = bool(self._config["expose_original_text"])

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> TraditionalToSimplified:
        return cls(config)

    # --- conversion -------------------------------------------------------------------------

    def normalize(self, text: Text) -> Text:
        """Returns ``text`` converted, guaranteed to have the same length."""
        if not text:
            return text
        if self._halfwidth:
            text = "".join(
                chr(ord(c) - 0xFEE0)
                if ("０" <= c <= "９" or "Ａ" <= c <= "Ｚ" or "ａ" <= c <= "ｚ")
                else c
                for c in text
            )
        if text.isascii():
            return text
        converted = self._converter.convert(text)
        if len(converted) == len(text):
            return converted
        # A phrase rule changed the length: convert char by char to keep entity offsets valid.
        chars = []
        for c in text:
            cc = self._converter.convert(c)
            chars.append(cc if len(cc) == 1 else c)
        converted = "".join(chars)
        return converted if len(converted) == len(text) else text

    def _normalize_message(self, message: Message, training: bool) -> None:
        text = message.get(TEXT)
        if not isinstance(text, str) or not text:
            return
        new = self.normalize(text)
        if new == text:
            return
        for entity in message.get(ENTITIES) or []:
            start = entity.get(ENTITY_ATTRIBUTE_START)
            end = entity.get(ENTITY_ATTRIBUTE_END)
            # An annotation whose value is just the span (no synonym) follows the conversion.
            if (
                isinstance(start, int)
                and isinstance(end, int)
                and entity.get(ENTITY_ATTRIBUTE_VALUE) == text[start:end]
            ):
                entity[ENTITY_ATTRIBUTE_VALUE] = new[start:end]
        message.set(TEXT, new)
        if not training and self._expose:
            message.set(ORIGINAL_TEXT, text, add_to_output=True)

    # --- graph API --------------------------------------------------------------------------

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Normalises examples, and adds Simplified variants of synonyms/lookups/regexes."""
        changed = 0
        for example in training_data.training_examples:
            before = example.get(TEXT)
            self._normalize_message(example, training=True)
            changed += int(example.get(TEXT) != before)

        for key, value in list(training_data.entity_synonyms.items()):
            simplified = self.normalize(key)
            if simplified != key:
                training_data.entity_synonyms.setdefault(simplified, value)

        for table in training_data.lookup_tables:
            elements = table.get("elements")
            if isinstance(elements, list):
                extra = [self.normalize(e) for e in elements if isinstance(e, str)]
                table["elements"] = list(dict.fromkeys([*elements, *extra]))

        for regex in training_data.regex_features:
            pattern = regex.get("pattern")
            if isinstance(pattern, str):
                regex["pattern"] = self.normalize(pattern)

        if changed:
            logger.info(f"{self.__class__.__name__}: normalised {changed} training examples")
        return training_data

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            self._normalize_message(message, training=False)
        return messages

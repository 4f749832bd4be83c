"""Rasa 3.6 graph component: the life-safety layer of the NLU pipeline.

It runs LAST in ``config.yml`` (after DIETClassifier and FallbackClassifier; the OpenCC normaliser has
turned the text into Simplified long before), on every message that goes through NLU, in a form or not:

* the keyword net (``nlu/emergency_net.py``) finds a danger to life: the intent becomes
  ``emergency`` with confidence 1.0 (whatever the classifier said, nlu_fallback included) and an entity
  ``emergency_kind`` (fire, gas, medical, violence, missing, self_harm; ``unknown`` for a bare 救命,
  ``multiple`` for kinds that need different numbers) is added: it fills the slot that picks the first
  reply (domain.yml ``utter_emergency``);
* the classifier said ``emergency`` (it learnt emergencies from nlu/intents/emergency.yml too) and the net
  found a danger phrase that a guard word of an ordinary request silenced (检查的时候发现漏气): the
  classifier is believed, with the kind of that phrase (``unknown`` without one: every number);
* the classifier said ``emergency`` and the net found no danger phrase at all (天然气灶打不着火, 孩子发烧了去哪个
  医院, 孩子的书包不见了: measured on tests/emergency/cases.yml, the classifier alone calls such near misses
  emergencies with confidence 1.0): its next intent is taken instead, or nlu_fallback when that one is below
  the fallback threshold.

The parse output carries ``emergency``: what the net saw and what the classifier had said, for tests and logs.
Button payloads (``/intent``) skip NLU and so this component: they are never free text.

Runs inside the Rasa (Python 3.10) environment only and imports nothing from the app.
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
    ENTITY_ATTRIBUTE_CONFIDENCE,
    ENTITY_ATTRIBUTE_END,
    ENTITY_ATTRIBUTE_START,
    ENTITY_ATTRIBUTE_TYPE,
    ENTITY_ATTRIBUTE_VALUE,
    EXTRACTOR,
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message

from nlu.emergency_net import UNKNOWN, EmergencyNet

logger = logging.getLogger(__name__)

EMERGENCY_INTENT = "emergency"
KIND_ENTITY = "emergency_kind"
OUTPUT_KEY = "emergency"


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False
)
class EmergencyOverride(GraphComponent):
    """Overrides the intent to ``emergency`` when the keyword net sees a danger to life."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {
            # The classifier's `emergency` with no danger phrase in the text gives way to its next intent.
            "demote_unsupported": True,
            # ... or to nlu_fallback when that intent is less sure than this (FallbackClassifier's threshold).
            "fallback_threshold": 0.6,
        }

    @staticmethod
    def supported_languages() -> Optional[List[Text]]:
        return ["zh"]

    def __init__(self, config: Dict[Text, Any]) -> None:
        self._config = {**self.get_default_config(), **config}
        self._net = EmergencyNet()

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> EmergencyOverride:
        return cls(config)

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            self._process(message)
        return messages

    def _process(self, message: Message) -> None:
        text = message.get(TEXT)
        if not isinstance(text, str) or not text.strip():
            return
        predicted = (message.get(INTENT) or {}).get(INTENT_NAME_KEY)
        verdict = self._net.check(text)
        if verdict is not None:
            first = verdict.hits[0]
            start = text.find(first.text)
            span = (start, start + len(first.text)) if start >= 0 else (0, len(text))
            self._set_emergency(message, verdict.kind, span)
            logger.info(f"emergency ({verdict.kind}): {verdict.matched}")
        elif predicted == EMERGENCY_INTENT:
            silenced = self._net.hits(text)
            if self._config["demote_unsupported"] and not silenced:
                self._demote(message, float(self._config["fallback_threshold"]))
            else:
                kinds = sorted({hit.kind for hit in silenced}) or [UNKNOWN]
                self._set_emergency(message, self._net.primary(kinds), (0, len(text)))
        message.set(
            OUTPUT_KEY,
            {
                "kind": verdict.kind if verdict else None,
                "kinds": list(verdict.kinds) if verdict else [],
                "matched": verdict.matched if verdict else [],
                "classifier_intent": predicted,
            },
            add_to_output=True,
        )

    @staticmethod
    def _set_emergency(message: Message, kind: str, span: Any) -> None:
        intent = {INTENT_NAME_KEY: EMERGENCY_INTENT, PREDICTED_CONFIDENCE_KEY: 1.0}
        message.set(INTENT, intent, add_to_output=True)
        ranking = [
            r
            for r in message.get(INTENT_RANKING_KEY) or []
            if r.get(INTENT_NAME_KEY) != EMERGENCY_INTENT
        ]
        message.set(INTENT_RANKING_KEY, [dict(intent), *ranking], add_to_output=True)
        entities = [
            e for e in message.get(ENTITIES) or [] if e.get(ENTITY_ATTRIBUTE_TYPE) != KIND_ENTITY
        ]
        entities.append(
            {
                ENTITY_ATTRIBUTE_TYPE: KIND_ENTITY,
                ENTITY_ATTRIBUTE_VALUE: kind,
                ENTITY_ATTRIBUTE_START: span[0],
                ENTITY_ATTRIBUTE_END: span[1],
                ENTITY_ATTRIBUTE_CONFIDENCE: 1.0,
                EXTRACTOR: "EmergencyOverride",
            }
        )
        message.set(ENTITIES, entities, add_to_output=True)

    @staticmethod
    def _demote(message: Message, threshold: float) -> None:
        ranking = [
            r
            for r in message.get(INTENT_RANKING_KEY) or []
            if r.get(INTENT_NAME_KEY) not in (EMERGENCY_INTENT, "nlu_fallback")
        ]
        best = dict(ranking[0]) if ranking else {}
        if float(best.get(PREDICTED_CONFIDENCE_KEY) or 0.0) < threshold:
            best = {INTENT_NAME_KEY: "nlu_fallback", PREDICTED_CONFIDENCE_KEY: threshold}
            ranking = [dict(best), *ranking]
        message.set(INTENT, best, add_to_output=True)
        message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)

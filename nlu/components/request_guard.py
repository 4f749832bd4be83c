"""Rasa 3.6 graph component: a message that carries a request is a request.

Residents often introduce themselves before they say what is wrong ("我叫王秀英 今年78了 电话138… 住在安居苑5栋302
我家厨房水管爆了"). The name, the age (78 looks like the goodbye "88") and the phone pull the classifier towards
goodbye, greet or thank, or under the fallback threshold, and the request was answered with a goodbye. Here, after
FallbackClassifier and before the life-safety layer: when a long message was read as small talk or fell back, and
the first other intent of the ranking is a service intent the classifier gave some weight, that intent is taken.
Short small talk ("谢谢 电梯修好了") and a clear out-of-scope message are left alone; emergencies stay the business of
nlu/components/emergency.py, which runs after this one on every message.

The parse output carries ``request_guard`` (the intent the classifier had) when the intent was changed.
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
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message

logger = logging.getLogger(__name__)

OUTPUT_KEY = "request_guard"


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False
)
class RequestGuard(GraphComponent):
    """Takes the service intent of a long message the classifier read as small talk or could not place."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {
            # The ticket categories (domain.yml).
            "service_intents": [
                "eldercare",
                "property",
                "certificate",
                "legal_aid",
                "neighbor_dispute",
                "environment",
                "facility_repair",
                "social_assistance",
            ],
            # What a request may have been mistaken for.
            "small_talk_intents": ["nlu_fallback", "greet", "goodbye", "thank"],
            # Skipped while looking for the first other intent: decided by the emergency component.
            "skipped_intents": ["emergency"],
            # Letters and digits: a self-introduction with a request is long; "谢谢 电梯修好了" is not.
            "min_chars": 12,
            # The weight the classifier must have given the service intent.
            "min_confidence": 0.2,
        }

    @staticmethod
    def supported_languages() -> Optional[List[Text]]:
        return ["zh"]

    def __init__(self, config: Dict[Text, Any]) -> None:
        self._config = {**self.get_default_config(), **config}

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> RequestGuard:
        return cls(config)

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            self._process(message)
        return messages

    def _process(self, message: Message) -> None:
        text = message.get(TEXT)
        if not isinstance(text, str):
            return
        if sum(ch.isalnum() for ch in text) < int(self._config["min_chars"]):
            return
        small_talk = set(self._config["small_talk_intents"])
        predicted = (message.get(INTENT) or {}).get(INTENT_NAME_KEY)
        if predicted not in small_talk:
            return
        ranking = list(message.get(INTENT_RANKING_KEY) or [])
        skipped = small_talk | set(self._config["skipped_intents"])
        first = next((r for r in ranking if r.get(INTENT_NAME_KEY) not in skipped), None)
        if first is None or first.get(INTENT_NAME_KEY) not in self._config["service_intents"]:
            return
        if float(first.get(PREDICTED_CONFIDENCE_KEY) or 0.0) < float(self._config["min_confidence"]):
            return
        message.set(INTENT, dict(first), add_to_output=True)
        message.set(
            INTENT_RANKING_KEY,
            [dict(first), *(r for r in ranking if r is not first)],
            add_to_output=True,
        )
        message.set(OUTPUT_KEY, {"classifier": predicted}, add_to_output=True)
        logger.debug("request guard: %s -> %s", predicted, first.get(INTENT_NAME_KEY))

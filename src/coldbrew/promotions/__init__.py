"""Promotions and ads: campaigns, predicted click-through, slot planning and copy."""

from coldbrew.promotions.copywriting import (
    LANGUAGES,
    ChatCompletionCopywriter,
    Copywriter,
    ProductFacts,
    TemplateCopywriter,
)
from coldbrew.promotions.ctr import (
    CALIBRATION_FILE,
    CTR_FEATURES,
    CTRCalibrator,
    calibrate_ctr,
    ctr_features,
    holdout_requests,
    sample_pairs,
)
from coldbrew.promotions.ledger import ImpressionLedger, InMemoryLedger, SQLiteLedger
from coldbrew.promotions.planner import Placement, PromotionPlanner, user_interests
from coldbrew.promotions.promotion import (
    CAP_PERIODS,
    Promotion,
    load_promotions,
    promotion_from_dict,
    promotions_from_json,
)

__all__ = [
    "CALIBRATION_FILE",
    "CAP_PERIODS",
    "CTR_FEATURES",
    "LANGUAGES",
    "CTRCalibrator",
    "ChatCompletionCopywriter",
    "Copywriter",
    "ImpressionLedger",
    "InMemoryLedger",
    "Placement",
    "ProductFacts",
    "SQLiteLedger",
    "Promotion",
    "PromotionPlanner",
    "TemplateCopywriter",
    "calibrate_ctr",
    "ctr_features",
    "holdout_requests",
    "load_promotions",
    "promotion_from_dict",
    "promotions_from_json",
    "sample_pairs",
    "user_interests",
]

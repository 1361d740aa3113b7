"""Engagement analytics: retention, repeat purchases, activity, conversion and churn risk."""

from coldbrew.analytics.churn import (
    FEATURES,
    ChurnConfig,
    ChurnFeatures,
    ChurnModel,
    churn_features,
    churn_labels,
    evaluate_churn,
)
from coldbrew.analytics.engagement import (
    PURCHASE_EVENTS,
    active_users,
    activity,
    new_user_conversion,
    repeat_purchase_rate,
    retention,
)

__all__ = [
    "FEATURES",
    "PURCHASE_EVENTS",
    "ChurnConfig",
    "ChurnFeatures",
    "ChurnModel",
    "active_users",
    "activity",
    "churn_features",
    "churn_labels",
    "evaluate_churn",
    "new_user_conversion",
    "repeat_purchase_rate",
    "retention",
]

"""The data layer: PreferenceSet, Annotations, loaders per format, validation and quarantine."""

from prefaudit.data.preference_set import Annotations, PreferenceSet, SourceInfo

__all__ = ["Annotations", "PreferenceSet", "SourceInfo"]

"""The default QA configuration a dataset starts with: five task categories, five analysis
dimensions and three assessment scales.

These are **ours**, written for EmoVerse's B-A-S data; they are not the exact lists of
EEmo-Logic (arXiv 2602.01173), whose paper names five dimensions and five categories
without this wording. A dataset's admin can rename, describe, restrict or add entries
(``docs/qa.md``). Plain data, no Django: the generation stage reads it as well.
"""

from __future__ import annotations

MULTIPLE_CHOICE = "multiple_choice"
YES_NO = "yes_no"
OPEN = "open"
QUESTION_TYPES: tuple[str, ...] = (MULTIPLE_CHOICE, YES_NO, OPEN)

# (key, name, description, allowed question types)
DEFAULT_CATEGORIES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    (
        "perception",
        "Emotion perception",
        "Which emotion the image evokes, or whether it evokes a given one.",
        (MULTIPLE_CHOICE, YES_NO),
    ),
    (
        "attribution",
        "Cause attribution",
        "Which element of the image (background, attribute, subject) evokes the emotion, and how.",
        (MULTIPLE_CHOICE, YES_NO, OPEN),
    ),
    (
        "intensity",
        "Intensity and polarity",
        "How strong the evoked emotion is, and whether it is positive or negative.",
        (MULTIPLE_CHOICE, YES_NO),
    ),
    (
        "counterfactual",
        "Counterfactual change",
        "How the evoked emotion would change if an element of the image changed or were removed.",
        (MULTIPLE_CHOICE, YES_NO, OPEN),
    ),
    (
        "reasoning",
        "Open reasoning",
        "A free explanation of why the image evokes what it does, grounded in what is visible.",
        (OPEN,),
    ),
)

DEFAULT_DIMENSIONS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("scene", "Scene and background", "The place, setting and background of the image.", QUESTION_TYPES),
    ("subject", "Salient subject", "The main objects, people or animals and what they do.", QUESTION_TYPES),
    ("atmosphere", "Atmosphere", "Light, colour, weather, texture: the atmospheric attributes.", QUESTION_TYPES),
    ("expression", "Human expression", "Faces, gestures and body language of the people shown.", QUESTION_TYPES),
    (
        "holistic",
        "Holistic impression",
        "The image as a whole: composition, style and the overall emotion.",
        QUESTION_TYPES,
    ),
)

# (key, name, kind, min, max, step, anchors [(value, label)])
DEFAULT_SCALES: tuple[tuple[str, str, str, float, float, float, tuple[tuple[float, str], ...]], ...] = (
    (
        "intensity",
        "Intensity of the evoked emotion",
        "intensity",
        0,
        10,
        1,
        ((0, "not at all"), (5, "moderate"), (10, "extreme")),
    ),
    ("valence", "Valence", "valence", 1, 9, 1, ((1, "very negative"), (5, "neutral"), (9, "very positive"))),
    ("arousal", "Arousal", "arousal", 1, 9, 1, ((1, "calm"), (5, "moderate"), (9, "excited"))),
)

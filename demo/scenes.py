"""What the demo's annotators say about scikit-image's bundled photographs.

Hand-written in the shape the pipeline produces: two VLM annotators who sometimes
disagree on the label, the pipeline's grounded triplets (hand-set boxes; masks
are computed from the pixels in :mod:`demo.services`) and a critic's verdicts.
Boxes are absolute pixels XYXY in the file's frame; ``None`` means the whole image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.vocabulary import EMOTIONS


@dataclass(frozen=True)
class Segment:
    """How the demo computes an element's mask inside its box (see ``demo.services.segment_in_box``).

    ``hints``: Lab channels and sides of the Otsu threshold to use, e.g. ``(("L", ">"),)``;
    empty lets the demo pick the channel that best separates the box centre from its rim.
    ``many``: keep every compact blob (coins), not only the largest one.
    """

    hints: tuple[tuple[str, str], ...] = ()
    many: bool = False


@dataclass(frozen=True)
class Grounded:
    phrase: str
    box: tuple[int, int, int, int] | None = None  # None: the whole image
    segment: Segment | None = None  # None: no mask; a whole-image background gets the rest of the image


@dataclass(frozen=True)
class SceneTriplet:
    background: Grounded
    attribute: str
    subject: Grounded


@dataclass(frozen=True)
class Answer:
    """One VLM annotator's answer: phrase triplets, a distribution and a rationale."""

    triplets: tuple[tuple[str, str, str], ...]
    distribution: dict[str, float]
    rationale: str


@dataclass(frozen=True)
class CriticNote:
    label_verdict: str
    label_reasoning: str
    reasoning: str
    doubts: dict[tuple[int, str], tuple[str, str]] = field(default_factory=dict)  # (triplet, role) -> (verdict, why)
    suggested_label: str | None = None


@dataclass(frozen=True)
class Scene:
    file: str  # in the skimage.data package folder
    triplets: tuple[SceneTriplet, ...]
    answers: dict[str, Answer]
    rationale: str  # the pipeline's merged attribution
    critic: CriticNote


def dist(**main: float) -> dict[str, float]:
    """A distribution over the 8 emotions: the given ones, the rest shared evenly."""
    rest = [e for e in EMOTIONS if e not in main]
    share = (1.0 - sum(main.values())) / len(rest)
    return {e: round(main.get(e, share), 6) for e in EMOTIONS}


SCENES: tuple[Scene, ...] = (
    Scene(
        file="astronaut.png",
        triplets=(
            SceneTriplet(Grounded("studio backdrop with the American flag"), "bright, proud, ceremonial",
                         Grounded("smiling astronaut in an orange flight suit", (20, 15, 365, 512), Segment())),
            SceneTriplet(Grounded("dark display stand", (355, 0, 512, 300)), "gleaming, poised",
                         Grounded("model space shuttle", (355, 0, 470, 290), Segment())),
        ),
        answers={
            "gpt-4o": Answer((("flag-draped studio", "proud, bright", "smiling astronaut"),
                              ("studio shelf", "gleaming", "space shuttle model")),
                             dist(excitement=0.52, awe=0.3, contentment=0.1),
                             "The astronaut's broad smile and the shuttle behind her convey the thrill of an upcoming mission."),
            "gemini-2.5-pro": Answer((("studio with American flag", "ceremonial, confident", "astronaut in orange suit"),),
                                     dist(awe=0.48, excitement=0.3, contentment=0.14),
                                     "An official astronaut portrait evokes admiration for space exploration."),
        },
        rationale="A proud, smiling astronaut framed by the flag and a shuttle model evokes excitement and awe at space flight.",
        critic=CriticNote("doubtful", "Excitement and awe are nearly tied; the portrait is posed rather than eventful.",
                          "Both triplets are visible. The second annotator missed the shuttle model. The label is close between "
                          "excitement and awe, so a person should decide."),
    ),
    Scene(
        file="chelsea.png",
        triplets=(
            SceneTriplet(Grounded("soft, blurred living room"), "warm, calm, intimate",
                         Grounded("tabby cat with wide green eyes", (0, 0, 400, 300), Segment())),
        ),
        answers={
            "gpt-4o": Answer((("blurred home interior", "warm, calm", "tabby cat"),),
                             dist(contentment=0.58, amusement=0.24),
                             "A relaxed tabby cat at close range feels cosy and content."),
            "gemini-2.5-pro": Answer((("living room", "curious, playful", "cat with green eyes"),),
                                     dist(amusement=0.46, contentment=0.36),
                                     "The cat's wide-eyed, curious stare is endearing and a little comic."),
        },
        rationale="A close, warm portrait of a tabby cat reads as content; its wide eyes add a playful note.",
        critic=CriticNote("doubtful", "The annotators split between contentment and amusement; the calm fur and soft light "
                          "favour contentment.", "Subject and background are right. The label depends on whether the stare "
                          "reads as calm or comic."),
    ),
    Scene(
        file="coffee.png",
        triplets=(
            SceneTriplet(Grounded("worn wooden café table"), "warm, quiet, inviting",
                         Grounded("espresso in a white cup", (170, 15, 420, 280), Segment((("L", ">"), ("b", ">"))))),
            SceneTriplet(Grounded("worn wooden café table"), "glossy, deep red",
                         Grounded("red saucer with a silver spoon", (75, 60, 480, 390))),
        ),
        answers={
            "gpt-4o": Answer((("wooden table", "warm, inviting", "cup of espresso"),),
                             dist(contentment=0.74, amusement=0.06),
                             "A fresh espresso on a warm wooden table suggests a quiet, pleasant moment."),
            "gemini-2.5-pro": Answer((("rustic café table", "cosy, warm", "espresso cup on red saucer"),),
                                     dist(contentment=0.7, excitement=0.08),
                                     "Warm tones and a carefully served espresso convey comfort."),
        },
        rationale="Warm wood, rich crema and a carefully set cup evoke quiet contentment.",
        critic=CriticNote("ok", "Both annotators and the image agree on contentment.",
                          "Every element is visible and grounded; the label is well supported."),
    ),
    Scene(
        file="rocket.jpg",
        triplets=(
            SceneTriplet(Grounded("launch pad at dusk under a deep blue sky"), "tense, expectant",
                         Grounded("rocket on the launch pad", (300, 125, 365, 410), Segment())),
            SceneTriplet(Grounded("floodlit launch complex", (0, 280, 640, 427)), "glittering",
                         Grounded("steel lightning towers", (555, 0, 640, 427))),
        ),
        answers={
            "gpt-4o": Answer((("launch site at dusk", "expectant", "rocket"),
                              ("floodlights", "glittering", "launch towers")),
                             dist(excitement=0.6, awe=0.28),
                             "Minutes before launch, the lit rocket promises an exciting lift-off."),
            "gemini-2.5-pro": Answer((("twilight sky", "majestic, still", "rocket on launch pad"),),
                                     dist(awe=0.55, excitement=0.3, fear=0.05),
                                     "The lone rocket standing against the vast evening sky inspires awe."),
        },
        rationale="A rocket waiting on a floodlit pad at dusk carries the anticipation of launch, with a sense of awe.",
        critic=CriticNote("doubtful", "Excitement (anticipation) and awe (scale) are both defensible.",
                          "The rocket and towers are grounded. The label is contested between the two annotators."),
    ),
    Scene(
        file="hubble_deep_field.jpg",
        triplets=(
            SceneTriplet(Grounded("black depths of space"), "vast, silent, infinite",
                         Grounded("glowing spiral galaxy", (100, 375, 145, 425), Segment())),
            SceneTriplet(Grounded("black depths of space"), "ancient, distant",
                         Grounded("bright elliptical galaxy", (700, 445, 755, 500), Segment())),
        ),
        answers={
            "gpt-4o": Answer((("deep space", "vast, infinite", "spiral galaxy"),),
                             dist(awe=0.8, fear=0.04),
                             "Thousands of galaxies in one small patch of sky evoke overwhelming awe."),
            "gemini-2.5-pro": Answer((("dark cosmos", "endless, cold", "distant galaxies"),),
                                     dist(awe=0.56, fear=0.22, sadness=0.06),
                                     "The scale of the universe is wondrous but also makes us feel small and alone."),
        },
        rationale="Countless distant galaxies against the dark evoke awe at the scale of the universe.",
        critic=CriticNote("ok", "Awe is the dominant reading for both annotators.",
                          "The grounded galaxies are two of the brightest objects; the background is the whole field."),
    ),
    Scene(
        file="motorcycle_left.png",
        triplets=(
            SceneTriplet(Grounded("cluttered garage with metal shelves"), "gleaming, ready to ride",
                         Grounded("red motorcycle", (90, 75, 690, 450), Segment())),
        ),
        answers={
            "gpt-4o": Answer((("garage", "gleaming, powerful", "red motorcycle"),),
                             dist(excitement=0.55, contentment=0.2),
                             "A polished red motorcycle promises speed and the open road."),
            "gemini-2.5-pro": Answer((("home workshop", "nostalgic, well kept", "vintage motorbike"),),
                                     dist(contentment=0.45, excitement=0.35),
                                     "A lovingly kept vintage bike in a home garage feels nostalgic and satisfying."),
        },
        rationale="A shining red motorcycle parked in a garage suggests the excitement of a ride.",
        critic=CriticNote("ok", "Excitement is supported by the bike's polish and colour.",
                          "The subject's mask covers the red bodywork but misses the wheels and engine.",
                          {(0, "subject"): ("doubtful", "The mask covers only the red tank and fenders; wheels, seat and "
                                                        "engine are part of the motorcycle.")}),
    ),
    Scene(
        file="camera.png",
        triplets=(
            SceneTriplet(Grounded("open field under a pale sky"), "cold, solitary, grey",
                         Grounded("man in a dark coat behind a camera", (0, 60, 340, 512), Segment())),
        ),
        answers={
            "gpt-4o": Answer((("empty field", "cold, solitary", "man with a camera"),),
                             dist(sadness=0.46, contentment=0.2),
                             "A lone figure in a dark coat on a grey, empty field feels melancholic."),
            "gemini-2.5-pro": Answer((("campus lawn", "focused, calm", "photographer"),),
                                     dist(contentment=0.38, sadness=0.24, awe=0.12),
                                     "The photographer is calmly absorbed in his work on a quiet day."),
        },
        rationale="A solitary man in a dark coat on a grey, empty field evokes a quiet melancholy.",
        critic=CriticNote("doubtful", "The man looks focused rather than sad; the sadness comes from the monochrome and the "
                          "empty field only.", "Elements are right; the label may be over-read from the lack of colour.",
                          {(0, "attribute"): ("doubtful", "'cold' is not visible; the light is soft and even.")}),
    ),
    Scene(
        file="coins.png",
        triplets=(
            SceneTriplet(Grounded("dark velvet display"), "antique, precious, orderly",
                         Grounded("rows of ancient silver coins", (5, 5, 380, 298), Segment((("L", ">"),), many=True))),
        ),
        answers={
            "gpt-4o": Answer((("dark display", "antique, orderly", "ancient coins"),),
                             dist(awe=0.38, contentment=0.36),
                             "Carefully arranged ancient coins invite admiration for history."),
            "gemini-2.5-pro": Answer((("museum case", "precious, rare", "silver coins"),),
                                     dist(contentment=0.5, excitement=0.16),
                                     "An orderly collection of treasures is pleasing to look at."),
        },
        rationale="Rows of ancient silver coins on a dark cloth evoke quiet admiration and contentment.",
        critic=CriticNote("ok", "Contentment and awe are close; either is plausible.",
                          "The coins are grounded by one mask; the background is the display cloth.",
                          {(0, "subject"): ("doubtful", "The mask misses the three coins at the top left, where the cloth "
                                                        "is lighter.")}),
    ),
    Scene(
        file="moon.png",
        triplets=(
            SceneTriplet(Grounded("grey lunar surface"), "barren, desolate",
                         Grounded("lone bright crater", (95, 60, 150, 112), Segment())),
        ),
        answers={
            "gpt-4o": Answer((("lunar plain", "barren, lifeless", "crater"),),
                             dist(sadness=0.4, awe=0.34),
                             "The empty, grey surface feels lifeless and lonely."),
            "gemini-2.5-pro": Answer((("moon surface", "ancient, vast", "impact crater"),),
                                     dist(awe=0.6, fear=0.14),
                                     "A close view of the Moon's ancient craters is awe-inspiring."),
        },
        rationale="A barren grey lunar surface with a single bright crater evokes awe tinged with desolation.",
        critic=CriticNote("doubtful", "Sadness versus awe: the annotators disagree and the image is abstract.",
                          "The crater is grounded; the label needs a person."),
    ),
    Scene(
        file="horse.png",
        triplets=(
            SceneTriplet(Grounded("blank white ground"), "stark, elegant",
                         Grounded("black horse silhouette", (15, 8, 390, 315), Segment())),
        ),
        answers={
            "gpt-4o": Answer((("white background", "elegant, calm", "horse silhouette"),),
                             dist(contentment=0.46, awe=0.28),
                             "A calm, elegant horse in profile is pleasant and peaceful."),
            "gemini-2.5-pro": Answer((("plain backdrop", "graceful, strong", "standing horse"),),
                                     dist(awe=0.42, contentment=0.36),
                                     "The horse's strong, graceful outline inspires admiration."),
        },
        rationale="The graceful silhouette of a standing horse is calm and quietly admirable.",
        critic=CriticNote("ok", "Contentment is a fair reading of a calm pose; awe is close.",
                          "The silhouette is cleanly grounded."),
    ),
    Scene(
        file="retina.jpg",
        triplets=(
            SceneTriplet(Grounded("dark field of view"), "clinical, veined, glowing",
                         Grounded("retina with branching blood vessels", (0, 0, 1411, 1411), Segment())),
        ),
        answers={
            "gpt-4o": Answer((("black surround", "clinical, raw", "veined retina"),),
                             dist(disgust=0.34, fear=0.3, awe=0.12),
                             "A close-up of the inside of an eye with exposed blood vessels is unsettling."),
            "gemini-2.5-pro": Answer((("dark frame", "intricate, luminous", "retina"),),
                                     dist(awe=0.44, fear=0.18, disgust=0.14),
                                     "The intricate network of vessels is a striking view of the body's inner structure."),
        },
        rationale="The glowing, intricate network of vessels is striking, though the exposed inside of an eye "
                  "unsettles some viewers.",
        critic=CriticNote("doubtful", "Awe leads fear and disgust only narrowly; the image holds no threat, but a "
                          "medical close-up is unsettling to many.", "The subject is grounded. The label should be "
                          "checked by a person.", {(0, "attribute"): ("ok", "Clinical and veined are both visible.")}),
    ),
)

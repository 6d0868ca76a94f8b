"""Topic-structured synthetic text: item titles, genres and descriptions, vectorised.

Each of the 19 MovieLens-100K genres is a topic with its own vocabulary; every item gets a
primary genre and a *theme* (a fixed subset of its genre's words plus a few invented names),
so items sharing a theme share words and phrases and TF-IDF similarity has real structure.
Invented names (syllable combinations) give a vocabulary that grows with the corpus, as real
text does, so TF-IDF with ``ngram_range=(1, 3)`` has real work at 50,000+ documents.

Everything is drawn from the caller's ``numpy.random.Generator``: same seed, same text.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

#: The 19 ML-100K genres, in ``u.genre`` order (index = flag column in ``u.item``).
GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip

# How often each genre is tagged in ML-100K's u.item (items per genre); "unknown" is reserved
# for items with no genre, so it is never drawn.
_GENRE_WEIGHTS = np.array(
    [0, 251, 135, 42, 122, 505, 109, 50, 725, 22, 24, 92, 56, 61, 247, 101, 251, 71, 27],
    dtype=np.float64,
)
_GENRES_PER_ITEM = (0.55, 0.30, 0.15)  # P(1), P(2), P(3) genres

_TOPIC_WORDS = {
    "unknown": "archive reel footage print silent restored lost rare early short",
    "Action": "explosion chase agent mission gun fight rescue hostage bomb squad commando "
    "heist escape sniper helicopter convoy showdown vengeance mercenary assault",
    "Adventure": "treasure jungle expedition island map quest voyage ship pirate temple "
    "desert mountain explorer relic caravan river ancient lost kingdom journey",
    "Animation": "cartoon animated talking animals toys colourful magical puppet drawn "
    "musical critters forest friends adventure little dragon princess village",
    "Children's": "kids school puppy holiday family summer camp birthday friendship "
    "orphan grandparents toy playground lesson parents siblings pet farm",
    "Comedy": "hilarious wedding roommates mishap prank slacker misfit bachelor party "
    "awkward blunder farce office boss neighbours road trip disaster comic",
    "Crime": "detective mob heist police gangster robbery corrupt cop murder case "
    "informant cartel smuggler prison syndicate hitman bank fraud court",
    "Documentary": "footage interviews history portrait archival filmmaker investigation "
    "nature wildlife music tour society politics science war survivors record",
    "Drama": "family grief marriage struggle illness father mother son daughter love "
    "loss memory redemption betrayal ambition poverty small town secret",
    "Fantasy": "wizard sorcerer dragon kingdom spell enchanted sword prophecy elves "
    "castle curse magic realm quest throne oracle beast",
    "Film-Noir": "femme fatale private eye shadows alibi double cross nightclub "
    "blackmail insurance rain city detective doomed confession",
    "Horror": "haunted ghost demon possessed killer slasher cabin blood curse vampire "
    "zombie creature nightmare cemetery ritual asylum terror",
    "Musical": "singer dancer broadway stage songs chorus audition band show musical "
    "orchestra rehearsal star romance spotlight ballroom",
    "Mystery": "clue puzzle disappearance inspector suspect manor inheritance secret "
    "riddle witness butler poison letter stranger unsolved",
    "Romance": "love affair wedding heart couple lovers passion kiss engagement "
    "letters summer romance paris longing reunion bride",
    "Sci-Fi": "space alien planet robot spaceship galaxy future time travel android "
    "colony starship laboratory mutant cyborg orbit experiment",
    "Thriller": "conspiracy stalker hostage assassin paranoia spy killer chase danger "
    "kidnapping witness deadly trap obsession terror secret",
    "War": "soldiers battle army platoon invasion resistance general front trenches "
    "bomber navy submarine prisoner camp veterans occupation",
    "Western": "cowboy sheriff outlaw ranch frontier gunslinger saloon cattle posse "
    "bounty desert town railroad horse duel marshal",
}
TOPIC_WORDS = tuple(tuple(_TOPIC_WORDS[g].split()) for g in GENRES)

GENERAL_WORDS = tuple(
    """story life world young man woman city night year years friends past future truth
    power dream secret journey home road town country war time people team plan world
    discover discovers learn learns fall falls meet meets hidden dark strange old unlikely
    brilliant reluctant ambitious troubled charming lonely dangerous determined legendary
    face faces fight fights save saves return returns escape escapes chance choice fate
    danger freedom stranger leader hero heroine rival partner brother sister stranger
    mysterious powerful desperate unexpected forbidden final greatest true wild""".split()
)

# English stop words (all in sklearn's list), so stop_words='english' has words to remove.
STOP_WORDS = tuple(
    "the a an of and in to with his her their on for from who as by after into when "
    "but is must".split()
)

_SYLLABLES = tuple(
    "ka ri mo ten sa vel dor an is ul mar ve lo thi ben qua zor el na dru fen gal ho "
    "ix jor ke lum ny or pra sil tor ur vax wen yar zed bri cal".split()
)
_THEMES_PER_GENRE = 12
_THEME_WORDS = 12
_THEME_NAMES = 3

# Word-slot categories of a description and their probabilities.
_P_STOP, _P_THEME, _P_SECONDARY, _P_GENERAL = 0.22, 0.34, 0.12, 0.20  # rest: names


def name_pool(size: int) -> np.ndarray:
    """``size`` distinct invented names (object array), the same for every call.

    Names are 2-, then 3-, then 4-syllable combinations, enumerated in a fixed order.
    """
    s = np.array(_SYLLABLES, dtype=object)
    n = len(s)
    out: list[np.ndarray] = []
    total = 0
    length = 2
    while total < size:
        k = min(size - total, n**length)
        idx = np.arange(k)
        word = np.full(k, "", dtype=object)
        for _ in range(length):
            word = word + s[idx % n]
            idx //= n
        out.append(word)
        total += k
        length += 1
    return np.concatenate(out) if out else np.empty(0, dtype=object)


def _zipf_index(rng: np.random.Generator, n: int, size: int, a: float = 1.0) -> np.ndarray:
    """Indices in ``[0, n)`` with P(i) proportional to (i + 1) ** -a."""
    cdf = np.cumsum(np.arange(1, n + 1, dtype=np.float64) ** -a)
    cdf /= cdf[-1]
    return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), n - 1)


def draw_genres(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Genres for ``n`` items, 1-3 each, drawn by Gumbel-top-k on ML-100K's frequencies.

    Returns
    -------
    flags : (n, 19) bool matrix, columns in :data:`GENRES` order
    primary, secondary : genre index of the first and second draw (the first if only one)
    """
    logw = np.log(np.where(_GENRE_WEIGHTS > 0, _GENRE_WEIGHTS, 1.0))
    keys = logw + rng.gumbel(size=(n, len(GENRES)))
    keys[:, _GENRE_WEIGHTS == 0] = -np.inf
    order = np.argsort(-keys, axis=1, kind="stable")
    k = 1 + np.searchsorted(np.cumsum(_GENRES_PER_ITEM), rng.random(n), side="right")
    k = np.minimum(k, len(_GENRES_PER_ITEM))
    flags = np.zeros((n, len(GENRES)), dtype=bool)
    rows = np.arange(n)
    for j in range(len(_GENRES_PER_ITEM)):
        pick = k > j
        flags[rows[pick], order[pick, j]] = True
    # the primary (first-drawn) genre leads the theme
    return flags, order[:, 0], np.where(k > 1, order[:, 1], order[:, 0])


def genre_strings(flags: np.ndarray) -> list[str]:
    """``"Action|Comedy"`` strings from a flag matrix (``"unknown"`` for an empty row)."""
    names = np.array(GENRES, dtype=object)
    out = []
    for row in flags:
        picked = names[row]
        out.append("|".join(picked) if len(picked) else "unknown")
    return out


class TextModel:
    """The vocabulary and themes shared by titles and descriptions of one corpus.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the theme definitions.
    n_names : int
        Size of the invented-name pool; grows the vocabulary with the corpus.
    """

    def __init__(self, rng: np.random.Generator, n_names: int):
        names = name_pool(max(n_names, _THEMES_PER_GENRE * _THEME_NAMES * len(GENRES)))
        self.vocab = np.concatenate(
            [
                np.array(STOP_WORDS, dtype=object),
                np.array(GENERAL_WORDS, dtype=object),
                *[np.array(t, dtype=object) for t in TOPIC_WORDS],
                names,
            ]
        )
        self.off_general = len(STOP_WORDS)
        sizes = [len(t) for t in TOPIC_WORDS]
        self.topic_off = (
            self.off_general + len(GENERAL_WORDS) + np.concatenate([[0], np.cumsum(sizes)[:-1]])
        )
        self.topic_len = np.array(sizes)
        self.off_names = int(self.topic_off[-1] + sizes[-1])
        self.n_names = len(names)
        # theme t of genre g is row g * _THEMES_PER_GENRE + t: genre words plus a few names
        genre = np.repeat(np.arange(len(GENRES)), _THEMES_PER_GENRE)
        pick = rng.random((len(genre), _THEME_WORDS)) * self.topic_len[genre][:, None]
        words = self.topic_off[genre][:, None] + pick.astype(np.int64)
        names = _zipf_index(rng, self.n_names, len(genre) * _THEME_NAMES, a=0.6)
        self.themes = np.hstack([words, self.off_names + names.reshape(len(genre), -1)])
        # variants: plain, Capitalised, ending a sentence, both
        cap = np.array([w[:1].upper() + w[1:] for w in self.vocab], dtype=object)
        self.variants = np.stack([self.vocab, cap, self.vocab + ".", cap + "."])

    def assign_themes(self, rng: np.random.Generator, primary: np.ndarray) -> np.ndarray:
        """A theme row per item, within its primary genre."""
        return primary * _THEMES_PER_GENRE + rng.integers(0, _THEMES_PER_GENRE, len(primary))

    def _words(self, rng, theme, secondary, lengths, p_name_boost=0.0) -> np.ndarray:
        """Vocabulary indices for every word slot of every document, concatenated."""
        doc = np.repeat(np.arange(len(lengths)), lengths)
        total = int(lengths.sum())
        u = rng.random(total)
        cuts = np.cumsum([_P_STOP, _P_THEME, _P_SECONDARY, _P_GENERAL - p_name_boost])
        cat = np.searchsorted(cuts, u, side="right")
        idx = np.empty(total, dtype=np.int64)
        m = cat == 0
        idx[m] = rng.integers(0, len(STOP_WORDS), int(m.sum()))
        m = cat == 1
        th = self.themes[theme[doc[m]]]
        idx[m] = th[np.arange(len(th)), rng.integers(0, th.shape[1], len(th))]
        m = cat == 2
        g = secondary[doc[m]]
        idx[m] = self.topic_off[g] + (rng.random(int(m.sum())) * self.topic_len[g]).astype(np.int64)
        m = cat == 3
        idx[m] = self.off_general + _zipf_index(rng, len(GENERAL_WORDS), int(m.sum()), a=0.8)
        m = cat == 4
        idx[m] = self.off_names + _zipf_index(rng, self.n_names, int(m.sum()), a=0.7)
        return idx

    def descriptions(
        self,
        rng: np.random.Generator,
        theme: np.ndarray,
        secondary: np.ndarray,
        n_words: tuple[int, int],
    ) -> list[str]:
        """One description per item: ``n_words[0]..n_words[1]`` words in short sentences."""
        n = len(theme)
        lengths = rng.integers(n_words[0], n_words[1] + 1, n)
        idx = self._words(rng, theme, secondary, lengths)
        ends = np.cumsum(lengths)
        starts = ends - lengths
        # a sentence ends after ~1 word in 10, and always at the end of a document
        stop = rng.random(len(idx)) < 0.1
        stop[ends - 1] = True
        if len(idx) == 0:
            return [""] * n
        cap = np.empty_like(stop)
        cap[1:] = stop[:-1]
        cap[starts] = True  # also sets cap[0] when there is a word
        words = self.variants[cap.astype(np.int64) + 2 * stop.astype(np.int64), idx].tolist()
        return [" ".join(words[s:e]) for s, e in zip(starts.tolist(), ends.tolist(), strict=True)]

    def titles(self, rng: np.random.Generator, theme: np.ndarray) -> list[str]:
        """One to four capitalised words per item, from its theme and the name pool."""
        n = len(theme)
        lengths = rng.integers(1, 5, n)
        doc = np.repeat(np.arange(n), lengths)
        th = self.themes[theme[doc]]
        idx = th[np.arange(len(th)), rng.integers(0, th.shape[1], len(th))]
        words = self.variants[1, idx].tolist()
        ends = np.cumsum(lengths)
        starts = ends - lengths
        return [" ".join(words[s:e]) for s, e in zip(starts.tolist(), ends.tolist(), strict=True)]


def synthetic_documents(
    n_docs: int, seed: int = 0, n_words: tuple[int, int] = (60, 240)
) -> pd.DataFrame:
    """Product-style documents in the retail ``sample-data.csv`` schema (``id, description``).

    Each description is ``"Name words - sentences..."`` from the same topic-structured text
    model as the synthetic items; ``n_words`` bounds the words after the dash (the real file
    has 47-472 words, median 137). Ids run 1..n_docs.

    Raises
    ------
    ValueError
        ``n_docs`` < 0 or a bad ``n_words`` range.
    """
    if isinstance(n_docs, bool) or not isinstance(n_docs, numbers.Integral) or n_docs < 0:
        raise ValueError(f"n_docs must be an int >= 0, got {n_docs!r}")
    lo, hi = n_words
    if not (1 <= lo <= hi):
        raise ValueError(f"n_words must be (lo, hi) with 1 <= lo <= hi, got {n_words!r}")
    rng = np.random.Generator(np.random.PCG64(seed))
    model = TextModel(rng, n_names=max(64, n_docs))
    _, primary, secondary = draw_genres(rng, n_docs)
    theme = model.assign_themes(rng, primary)
    names = model.titles(rng, theme)
    body = model.descriptions(rng, theme, secondary, (lo, hi))
    text = [f"{a} - {b}" for a, b in zip(names, body, strict=True)]
    return pd.DataFrame({"id": np.arange(1, n_docs + 1, dtype=np.int64), "description": text})

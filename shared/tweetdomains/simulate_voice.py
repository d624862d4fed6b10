"""The voice around a synthetic tweet's topic: mentions, openers, closers, hashtags, emoji, links.

Used by :mod:`tweetdomains.simulate`; drawn independently of the labels.
"""

from __future__ import annotations

import random

HANDLES = ("sunnydaze", "quietfox", "milo_writes", "grettaplays", "the_real_jb", "nightowl", "kara_reads")

# The voice around a tweet's topic: who it mentions, how it opens and closes, its hashtags,
# emoji and links. Drawn independently of the labels, so label co-occurrence is the themes'
# alone, and with rates near the real files' (about 19% of tweets with an emoji, 57% with a
# hashtag, 70% with a mention, 60% with a link, median length about 160 characters).
_SYLLABLES = (
    "ka",
    "lo",
    "mi",
    "ra",
    "ven",
    "tor",
    "el",
    "sa",
    "dan",
    "ju",
    "fi",
    "no",
    "bel",
    "ash",
    "ri",
    "zo",
    "mar",
    "len",
    "tes",
    "qui",
    "bo",
    "ny",
    "ca",
    "dre",
    "wyn",
    "ster",
    "lux",
    "pip",
    "rho",
    "gal",
    "fen",
    "ori",
    "max",
    "lee",
    "tia",
    "cor",
    "vin",
    "hal",
    "sky",
    "moe",
)
_OPENERS = (
    "ok so",
    "honestly",
    "not gonna lie,",
    "breaking:",
    "wow.",
    "update:",
    "PSA:",
    "y'all,",
    "hot take:",
    "so apparently",
    "can we talk about how",
    "reminder that",
    "just saw this:",
    "listen,",
    "fun fact:",
    "omg",
    "lowkey",
    "highkey",
    "real talk:",
    "wait,",
    "friendly reminder:",
    "today in news:",
    "me:",
    "thread:",
    "quick thought:",
    "unpopular opinion:",
    "no way",
    "imagine",
    "confirmed:",
    "heads up,",
    "big news!",
    "finally!",
    "yesterday",
    "this morning",
    "tonight",
    "fyi",
    "ngl",
    "in case you missed it:",
    "for the record,",
    "plot twist:",
)
_CLOSERS = (
    "what do you think?",
    "thoughts?",
    "can't wait",
    "so proud",
    "no words",
    "unreal",
    "love this",
    "this is huge",
    "mark your calendars",
    "who's with me?",
    "just saying",
    "we're so back",
    "not ready",
    "calling it now",
    "more soon",
    "stay tuned",
    "again??",
    "iconic",
    "respect",
    "big mood",
    "day {n} of waiting",
    "{n} hours later and still thinking about it",
    "{n}/10 would recommend",
    "at {h}:{mm} and wide awake",
    "round {n}",
    "year {n} of being a fan",
    "{n}% sure this is real",
    "rt if you agree",
    "link below",
    "retweet this",
    "be honest",
    "here we go",
    "say less",
    "the timeline is wild today",
    "sources say more on {d}",
    "see you {d}",
    "back on {d}",
    "only {n} days to go",
    "part {n}",
    "{n} people asked me about this already",
)
_COMMENTS = (
    "I was not expecting that at all.",
    "This made my whole week.",
    "Still processing this one.",
    "My group chat is going crazy right now.",
    "Everyone at work is talking about it.",
    "Been waiting for this since last year.",
    "Somebody please explain what just happened.",
    "Saw it with my own eyes and still can't believe it.",
    "The replies on this are something else.",
    "Not sure how I feel about it yet.",
    "Best thing I've seen all day.",
    "My mom just texted me about it.",
    "Called it months ago and nobody listened.",
    "Honestly the details matter more than the headline.",
    "Adding this to my list of reasons to stay up late.",
    "The comments section is a whole different story.",
    "Took a screenshot because this will be deleted.",
    "Can't stop thinking about the ending.",
    "This is why I love this app.",
    "Worth every minute of waiting.",
    "Can we get a part two please.",
    "I need everyone to see this.",
    "Sharing for the people in the back.",
    "Low key the news of the year.",
    "The internet never disappoints.",
    "My neighbour would not stop talking about it this morning.",
    "Trying to stay calm but it is not working.",
    "Wrote a whole thread about it last night.",
    "There is so much more to this story.",
    "Coffee in one hand, phone in the other, refreshing nonstop.",
    "I've watched the clip about twenty times now.",
    "Nobody is talking about the best part.",
    "Feels like the whole city showed up.",
    "Good luck finding tickets now.",
    "Bookmarking this for later.",
    "Hard to argue with the numbers.",
    "The vibes were immaculate.",
    "Tell me I'm not the only one.",
    "That quote is going straight on my wall.",
    "Still laughing at the second half.",
)
_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "the weekend")
_TAG_WORDS = (
    "Live",
    "News",
    "Fans",
    "Today",
    "Love",
    "Trending",
    "Update",
    "Nation",
    "Life",
    "Vibes",
    "Squad",
    "Weekend",
    "Night",
    "Moment",
    "Goals",
    "Forever",
    "Hype",
    "Talk",
    "World",
    "Daily",
)
EXTRA_EMOJI = ("😂", "🔥", "❤️", "😭", "👀", "🙌", "✨", "🤔", "👏", "💯", "😍", "🙏")


def _handle(rng: random.Random) -> str:
    name = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3)))
    roll = rng.random()
    if roll < 0.35:
        name += str(rng.randint(1, 999))
    elif roll < 0.5:
        name = name[: len(name) // 2] + "_" + name[len(name) // 2 :]
    return name


def _hashtag(theme_tags: tuple[str, ...], values: dict[str, str], rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.45 and theme_tags:
        return rng.choice(theme_tags)
    if roll < 0.75 and values:
        name = rng.choice(sorted(values.values()))
        return "#" + "".join(
            part[:1].upper() + part[1:] for part in name.replace("&", "and").split() if part.isalnum()
        )
    return (
        "#"
        + rng.choice(_TAG_WORDS)
        + rng.choice(_TAG_WORDS)
        + (str(rng.randint(20, 26)) if rng.random() < 0.3 else "")
    )


def _closer(rng: random.Random) -> str:
    return rng.choice(_CLOSERS).format(
        n=rng.randint(2, 99), h=rng.randint(1, 12), mm=f"{rng.randint(0, 59):02d}", d=rng.choice(_DAYS)
    )


def voice(
    text: str, rng: random.Random, theme_tags: tuple[str, ...] = (), values: dict[str, str] | None = None
) -> str:
    """``text`` as somebody would post it: opener, closer, mentions, hashtags, emoji, link."""
    values = values or {}
    if rng.random() < 0.35:
        text = f"{rng.choice(_OPENERS)} {text}"
    if rng.random() < 0.45:
        text = f"{text}, {_closer(rng)}"
    if rng.random() < 0.55:
        text += " " + " ".join(rng.sample(_COMMENTS, rng.choice((1, 1, 2))))
    if rng.random() < 0.25:
        text += f" with @{_handle(rng)}"
    if rng.random() < 0.55:
        text += " " + " ".join(
            _hashtag(theme_tags, values, rng) for _ in range(rng.choice((1, 1, 1, 2, 2, 3)))
        )
    if rng.random() < 0.55:
        text = " ".join(f"@{_handle(rng)}" for _ in range(rng.choice((1, 1, 1, 2, 3)))) + " " + text
    if rng.random() < 0.58:
        text += " https://t.co/" + "".join(rng.choice(URL_CHARS) for _ in range(10))
    return text


URL_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

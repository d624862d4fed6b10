"""A deterministic synthetic tweet stream, for demos, tests and load tests.

Each tweet comes from one of a score of themes (a musician, a politician, a sports team, a
brand, a TV show, a video game ...) or, now and then, two themes at once. A theme carries the
labels the X API gives such a tweet: a musician's tweet is also ``Person`` and
``Music Genre``, a brand's ``Brand``, ``Brand Category`` and ``Brand Vertical``. Its words
are drawn from the theme, so a small model learns the labels in a minute. About one tweet in
nine has no annotations and one in twelve is not in English, so the collector's filters get
exercised. Entity names are invented.

``SyntheticTweets(seed).records()`` yields :class:`Record` objects; ``stream_messages(seed)``
yields the same tweets as X API v2 sampled-stream messages (with retweets whose full text is
only in ``includes``), so ``codecs.parse_payload`` turns message *i* back into record *i*.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tweetdomains import taxonomy
from tweetdomains.records import Record

_EPOCH = datetime(2022, 6, 1, tzinfo=UTC)
_ID_BASE = 1_530_000_000_000_000_000


@dataclass(frozen=True)
class _Theme:
    """Slots (entity pools), the labels as (domain, slot) pairs, and text templates."""

    name: str
    slots: dict[str, tuple[str, ...]]
    annotations: tuple[tuple[str, str], ...]
    templates: tuple[str, ...]
    hashtags: tuple[str, ...]
    emoji: tuple[str, ...]
    weight: float = 1.0
    # (domain, slot, probability, marker word): a label added with the marker in the text
    optional: tuple[tuple[str, str, float, str], ...] = ()


_THEMES: tuple[_Theme, ...] = (
    _Theme(
        "musician",
        {
            "artist": ("Mara Quillon", "Dex Arlow", "Juno Vale", "Kit Marrow", "Sola Brenn", "Ivo Castell"),
            "genre": ("Synthpop", "Indie rock", "Hip hop", "R&B", "K-pop", "Country"),
            "song": ("Neon Tides", "Paper Hearts", "Slow Orbit", "Golden Static", "Wildfire Radio"),
        },
        (("Musician", "artist"), ("Person", "artist"), ("Music Genre", "genre")),
        (
            "{artist}'s new single {song} is on repeat, that chorus and those vocals 🎶",
            "just got tickets to see {artist} on tour, the setlist better have {song}",
            "{artist} live in concert tonight, the band sounded incredible and the crowd sang every lyric",
            "the new {artist} album drops friday, {song} already streaming everywhere",
            "{genre} playlist is not complete without {artist} and {song}",
        ),
        ("#NewMusic", "#NowPlaying", "#tour"),
        ("🎶", "🎧", "🎤", "🎸"),
        weight=1.4,
        optional=(("Music Album", "song", 0.2, "album"),),
    ),
    _Theme(
        "politician",
        {
            "politician": (
                "Senator Hal Brenner",
                "Gov. Alicia Moravec",
                "Rep. Tomas Okafor",
                "Mayor Lena Strand",
            ),
            "body": ("the Senate", "the State Assembly", "City Council", "the Supreme Court"),
        },
        (("Politician", "politician"), ("Person", "politician")),
        (
            "{politician} says the new bill will pass the vote next week, campaign promises kept?",
            "{politician} unveils a policy plan on healthcare and taxes ahead of the election",
            "watching the debate, {politician} dodged every question on the budget",
            "{politician} calls on voters to turn out for the election, polls open at 7am",
            "press conference: {politician} announces a veto of the housing legislation",
        ),
        ("#Election2022", "#vote", "#politics"),
        ("🗳️", "🏛️", "📢"),
        weight=1.3,
        optional=(("Political Body", "body", 0.35, "congress"),),
    ),
    _Theme(
        "sports_team",
        {
            "team": ("Harborview Falcons", "Redmoor United", "Cascade City FC", "Iron Valley Rams"),
            "sport": ("Soccer", "Basketball", "American football", "Hockey"),
            "league": ("Premier Coastal League", "National Hoops Association", "Frontier Football League"),
        },
        (("Sports Team", "team"), ("Sport", "sport")),
        (
            "what a match! {team} score a late goal and win it at home ⚽",
            "{team} clinch a playoff spot, the coach deserves credit for this season",
            "{team} lineup announced for tonight's game, kickoff at 8",
            "heartbreaking loss for {team}, the defense collapsed in the second half",
            "{team} fans, the stadium was electric tonight, huge win on the road next",
        ),
        ("#GameDay", "#matchday", "#playoffs"),
        ("⚽", "🏀", "🏈", "🏒", "🏆"),
        weight=1.2,
        optional=(("Sports League", "league", 0.4, "league"),),
    ),
    _Theme(
        "athlete",
        {
            "athlete": ("Rafa Dunmore", "Keiko Albright", "Marcus Otieno", "Elsa Varga"),
            "sport": ("Tennis", "Athletics", "Basketball", "Golf"),
        },
        (("Athlete", "athlete"), ("Person", "athlete"), ("Sport", "sport")),
        (
            "{athlete} breaks the record again, fastest time of the season 🏅",
            "{athlete} into the final after a straight-sets win, what a serve",
            "injury update: {athlete} expected back for the championship",
            "{athlete} signs a new contract, training camp starts monday",
        ),
        ("#Olympics", "#GOAT", "#championship"),
        ("🏅", "🎾", "🏃", "⛳"),
    ),
    _Theme(
        "brand",
        {
            "brand": ("Zentrix", "Lumora", "Brightcart", "Nordhaven Coffee", "Velocar Motors"),
            "category": ("Retail", "Coffee shops", "Automotive", "Consumer electronics"),
            "vertical": ("Retail", "Food & Drink", "Automotive", "Technology"),
        },
        (("Brand", "brand"), ("Brand Category", "category"), ("Brand Vertical", "vertical")),
        (
            "{brand} just launched a new product line, prices start at $49 in store",
            "customer service at {brand} fixed my order in five minutes, great experience",
            "{brand} announces a summer sale, 30% off for members this weekend only",
            "is anyone else having trouble with the {brand} app checkout today?",
            "{brand} shares jump after a strong quarter, the company beats revenue forecasts",
        ),
        ("#deal", "#sale", "#shopping"),
        ("🛒", "☕", "🚗", "💳"),
        weight=1.4,
    ),
    _Theme(
        "tv_show",
        {
            "show": ("Midnight Harbor", "The Glass Kingdom", "Copper Street", "Northbound"),
        },
        (("TV Shows", "show"),),
        (
            "the {show} season finale had me screaming, that plot twist 😱",
            "binge watching {show} all weekend, episode 6 is the best one",
            "{show} renewed for another season!! the cast deserves it",
            "anyone streaming {show} tonight? new episode drops at 9",
        ),
        ("#TVTime", "#SeasonFinale", "#bingewatch"),
        ("📺", "😱", "🍿"),
        weight=1.2,
    ),
    _Theme(
        "video_game",
        {
            "game": ("Starforge Legends", "Hollow Circuit", "Rift Runners", "Kingdom of Ash"),
            "publisher": ("Nightjar Studios", "Polygon Forge"),
        },
        (("Video Game", "game"),),
        (
            "finally beat the final boss in {game}, that gameplay was brutal 🎮",
            "{game} patch notes are out, the new level and ranked mode look great",
            "speedrun of {game} tonight on stream, come hang out",
            "the {game} trailer looks amazing, pre-order on console and pc now",
        ),
        ("#gaming", "#gamer", "#speedrun"),
        ("🎮", "🕹️", "👾"),
        weight=1.1,
        optional=(("Video Game Publisher", "publisher", 0.3, "studio"),),
    ),
    _Theme(
        "movie",
        {
            "movie": ("The Last Lighthouse", "Crimson Meridian", "Echoes of Tomorrow", "Paper Moon Heist"),
            "genre": ("Science fiction", "Thriller", "Comedy", "Horror"),
        },
        (("Movie", "movie"), ("Movie Genre", "genre")),
        (
            "just saw {movie} in the cinema, best film of the year 🎬",
            "the {movie} trailer dropped and the director did it again",
            "{movie} tops the box office on opening weekend",
            "{movie} was a masterpiece, the soundtrack and cinematography were unreal",
        ),
        ("#movies", "#film", "#cinema"),
        ("🎬", "🍿", "🎥"),
    ),
    _Theme(
        "actor",
        {
            "actor": ("Oliver Tamsin", "Priya Castellanos", "Noah Kettering", "Greta Lindqvist"),
        },
        (("Actor", "actor"), ("Person", "actor")),
        (
            "{actor} was robbed at the awards, that performance deserved an oscar",
            "{actor} cast as the lead in a new role, the casting is perfect",
            "red carpet look from {actor} tonight 🔥 hollywood royalty",
            "interview with {actor} about the new role and life on set",
        ),
        ("#RedCarpet", "#casting"),
        ("🎭", "✨", "🔥"),
    ),
    _Theme(
        "holiday",
        {"holiday": ("Christmas", "Halloween", "Thanksgiving", "New Year's Eve", "Valentine's Day")},
        (("Holiday", "holiday"),),
        (
            "happy {holiday} everyone! celebrating with family and way too much food",
            "{holiday} decorations are up already, festive season is here 🎄",
            "counting down the days to {holiday}, gifts wrapped and ready",
        ),
        ("#holidays", "#festive"),
        ("🎄", "🎃", "🎉", "❤️"),
        weight=0.7,
    ),
    _Theme(
        "technology",
        {
            "tech": ("Artificial intelligence", "Cloud computing", "Cybersecurity", "Robotics"),
            "brand": ("Zentrix", "Quantia Labs"),
        },
        (("Technology", "tech"), ("Unified Twitter Taxonomy", "tech")),
        (
            "new research on {tech}: the model runs on a laptop and the software is open source",
            "{tech} startups raised record funding this year, developers in demand",
            "great keynote on {tech} today, the future of computing is here 🤖",
            "patched a nasty bug in our {tech} pipeline, engineers never sleep",
        ),
        ("#tech", "#AI", "#developers"),
        ("🤖", "💻", "⚙️"),
    ),
    _Theme(
        "crypto",
        {"coin": ("Bitcoin cryptocurrency", "Ethereum cryptocurrency", "Solara token")},
        (("Digital Assets & Crypto", "coin"), ("Unified Twitter Taxonomy", "coin")),
        (
            "{coin} price pumping again, blockchain bulls are back 🚀",
            "is now a good time to buy {coin}? wallets and exchanges are busy",
            "{coin} crashes 12% overnight, hodl or sell?",
        ),
        ("#crypto", "#blockchain", "#HODL"),
        ("🚀", "📈", "📉"),
        weight=0.8,
    ),
    _Theme(
        "food",
        {"dish": ("Ramen", "Tacos", "Sourdough bread", "Vegan desserts", "Brunch")},
        (("Food", "dish"), ("Interests and Hobbies Category", "dish")),
        (
            "made homemade {dish} today and the recipe turned out delicious 😋",
            "best {dish} in town, this restaurant never misses",
            "cooking {dish} for the first time, wish me luck in the kitchen",
        ),
        ("#foodie", "#recipe", "#yum"),
        ("😋", "🍜", "🌮", "🍞"),
        weight=0.8,
    ),
    _Theme(
        "news_story",
        {
            "story": (
                "Harbor Bridge collapse",
                "Northern wildfires",
                "Transit strike 2022",
                "Data breach inquiry",
            )
        },
        (("Ongoing News Story", "story"),),
        (
            "breaking: update on the {story}, officials report new details this morning",
            "live coverage of the {story} continues, evacuation orders expanded",
            "the {story} investigation widens, more reports expected tonight",
        ),
        ("#BreakingNews", "#update"),
        ("🚨", "📰"),
    ),
    _Theme(
        "journalist",
        {"journalist": ("Dana Whitcombe", "Rafael Osei", "Miriam Kolb")},
        (("Journalist", "journalist"), ("Person", "journalist")),
        (
            "{journalist} reports: sources confirm the newsroom story ahead of tonight's broadcast",
            "must-read column by {journalist} on press freedom and reporting",
            "{journalist} interviews the minister on the evening news",
        ),
        ("#journalism", "#news"),
        ("📰", "🎙️"),
        weight=0.7,
    ),
    _Theme(
        "travel",
        {"city": ("Lisbon", "Kyoto", "Cape Town", "Vancouver", "Marrakesh")},
        (("Cities", "city"), ("Travel", "city")),
        (
            "landed in {city}! the flight was long but this view from the hotel 😍",
            "travel tips for {city}: best neighborhoods, food markets and beaches",
            "road trip to {city} this weekend, passport and suitcase ready ✈️",
        ),
        ("#travel", "#wanderlust", "#vacation"),
        ("✈️", "🌍", "😍", "🏖️"),
        weight=0.8,
    ),
    _Theme(
        "book",
        {
            "book": ("The Salt Archive", "Winter of Small Gods", "A Map of Quiet Places"),
            "genre": ("Fantasy", "Mystery", "Literary fiction"),
        },
        (("Book", "book"), ("Book Genre", "genre")),
        (
            "finished reading {book} last night, the last chapter destroyed me 📚",
            "{book} is this month's book club pick, the author signs copies friday",
            "currently reading {book}, 200 pages in and the novel keeps getting better",
        ),
        ("#amreading", "#bookclub", "#booktwitter"),
        ("📚", "📖"),
        weight=0.6,
    ),
    _Theme(
        "fitness",
        {"exercise": ("Yoga", "Running", "Weightlifting", "Cycling", "Pilates")},
        (("Exercise & fitness", "exercise"), ("Interests and Hobbies Vertical", "exercise")),
        (
            "morning {exercise} session done, workout streak at 30 days 💪",
            "{exercise} tips for beginners: warm up, stretch and stay hydrated at the gym",
            "new personal best in {exercise} today, the training is paying off",
        ),
        ("#fitness", "#workout", "#gym"),
        ("💪", "🏋️", "🧘", "🚴"),
        weight=0.7,
    ),
)

# Pairs of themes that meet in one tweet, with a joining template.
_MIXES: tuple[tuple[str, str, str], ...] = (
    ("musician", "sports_team", "{artist} performs at halftime of the {team} game tonight 🎤⚽"),
    ("brand", "sports_team", "{brand} signs a sponsorship deal with {team}, new jerseys next season"),
    ("actor", "tv_show", "{actor} joins the cast of {show} for the new season"),
    ("actor", "movie", "{actor} stars in {movie}, the trailer is finally out"),
    ("politician", "news_story", "{politician} visits the site of the {story}, promises federal aid"),
    ("brand", "technology", "{brand} bets big on {tech} with a new research lab"),
    ("musician", "holiday", "{artist} drops a {holiday} song and it's already on every playlist"),
    ("video_game", "brand", "{game} collab with {brand} announced, limited edition console bundle"),
)

_CHATTER = (
    "good morning everyone, coffee first then we talk ☕",
    "can't sleep again, who else is up right now",
    "why is monday always like this",
    "lol same",
    "so tired today, need a nap",
    "thank you all for the kind messages today ❤️",
    "it's raining again, staying in with a blanket",
    "does anyone know a good plumber around here?",
    "that's it, that's the tweet",
    "feeling grateful today 🙏",
)

_FOREIGN = (
    ("es", "¡Qué increíble {entity}! me encanta, ¿alguien más lo vio?"),
    ("es", "hoy todo el mundo habla de {entity}, qué locura"),
    ("fr", "Incroyable {entity}, j'adore vraiment, quelle soirée"),
    ("de", "Wahnsinn, {entity} ist heute einfach großartig"),
    ("pt", "Que incrível {entity}, estou sem palavras"),
    ("ja", "{entity}最高!今日は本当に楽しかった"),
)

_HANDLES = ("sunnydaze", "quietfox", "milo_writes", "grettaplays", "the_real_jb", "nightowl", "kara_reads")

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
_EXTRA_EMOJI = ("😂", "🔥", "❤️", "😭", "👀", "🙌", "✨", "🤔", "👏", "💯", "😍", "🙏")


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


def _voice(
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
        text += " https://t.co/" + "".join(rng.choice(_URL_CHARS) for _ in range(10))
    return text


_URL_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


@dataclass(frozen=True)
class _Tweet:
    record: Record
    annotations: tuple[tuple[str, str], ...]  # (canonical domain, entity name), in order
    author: str


def _theme_map() -> dict[str, _Theme]:
    return {theme.name: theme for theme in _THEMES}


class SyntheticTweets:
    """A deterministic, endless synthetic tweet stream: the same seed, the same tweets."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._themes = _theme_map()

    def records(self) -> Iterator[Record]:
        """Endless :class:`Record` objects with unique ids."""
        for tweet in self._tweets():
            yield tweet.record

    def _tweets(self) -> Iterator[_Tweet]:
        rng = random.Random(self.seed)
        id_base = _ID_BASE + (self.seed % 1_000_000) * 1_000_000_000
        when = _EPOCH
        weights = [theme.weight for theme in _THEMES]
        index = 0
        while True:
            index += 1
            when += timedelta(milliseconds=rng.randint(200, 4000))
            roll = rng.random()
            annotations: list[tuple[str, str]] = []
            lang: str | None = "en"
            if roll < 0.11:
                text = _voice(rng.choice(_CHATTER), rng)
            elif roll < 0.12:
                text, lang = rng.choice(("🔥🔥🔥", "😂😂", "👀", "❤️❤️❤️")), "und"
            elif roll < 0.20:
                theme = rng.choices(_THEMES, weights)[0]
                values = self._fill(theme, rng)
                lang, template = rng.choice(_FOREIGN)
                text = _voice(
                    template.format(entity=values[theme.annotations[0][1]]), rng, theme.hashtags, values
                )
                annotations = [(domain, values[slot]) for domain, slot in theme.annotations]
            elif roll < 0.30:
                first, second, template = rng.choice(_MIXES)
                values = {}
                for name in (first, second):
                    theme = self._themes[name]
                    # a slot both themes name (e.g. "brand") keeps the first theme's value
                    filled = {k: values.get(k, v) for k, v in self._fill(theme, rng).items()}
                    values.update(filled)
                    annotations += [(domain, filled[slot]) for domain, slot in theme.annotations]
                text = _voice(template.format(**values), rng, (), values)
            else:
                theme = rng.choices(_THEMES, weights)[0]
                values = self._fill(theme, rng)
                text = rng.choice(theme.templates).format(**values)
                annotations = [(domain, values[slot]) for domain, slot in theme.annotations]
                for domain, slot, probability, marker in theme.optional:
                    if rng.random() < probability:
                        text += f" ({marker}: {values[slot]})"
                        annotations.append((domain, values[slot]))
                text = _voice(self._decorate(text, theme, rng), rng, theme.hashtags, values)
            yield self._make(str(id_base + index), text, lang, when, annotations, rng)

    @staticmethod
    def _fill(theme: _Theme, rng: random.Random) -> dict[str, str]:
        return {slot: rng.choice(choices) for slot, choices in theme.slots.items()}

    @staticmethod
    def _decorate(text: str, theme: _Theme, rng: random.Random) -> str:
        if rng.random() < 0.06:
            text += " " + rng.choice(theme.emoji + _EXTRA_EMOJI)
        return text

    @staticmethod
    def _make(
        tweet_id: str,
        text: str,
        lang: str | None,
        when: datetime,
        annotations: list[tuple[str, str]],
        rng: random.Random,
    ) -> _Tweet:
        unique = tuple(dict.fromkeys(annotations))
        domains = tuple(sorted({domain for domain, _ in unique}))
        record = Record(
            text=text,
            domains=domains,
            domain_ids=tuple(taxonomy.id_for(d) or "" for d in domains),
            entities=tuple(dict.fromkeys(entity for _, entity in unique)),
            id=tweet_id,
            lang=lang,
            created_at=when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
        )
        return _Tweet(record, unique, rng.choice(_HANDLES))


def generate(n: int, seed: int = 0) -> list[Record]:
    """The first ``n`` records of ``SyntheticTweets(seed)``."""
    stream = SyntheticTweets(seed).records()
    return [next(stream) for _ in range(n)]


def _entity_id(name: str) -> str:
    # A stable id per entity name (not hash(): that changes between processes).
    value = 0
    for byte in name.encode("utf-8"):
        value = (value * 131 + byte) % 10**15
    return str(10**15 + value)


def _api_annotations(pairs: tuple[tuple[str, str], ...], rng: random.Random) -> list[dict[str, Any]]:
    out = []
    for domain, entity in pairs:
        domain_id = taxonomy.id_for(domain) or "0"
        name = domain
        if domain_id == "46" and rng.random() < 0.3:
            name = "Business Taxonomy"  # the API's older name for Brand Category
        out.append(
            {
                "domain": {
                    "id": domain_id,
                    "name": name,
                    "description": taxonomy.description_for(domain_id) or "",
                },
                "entity": {"id": _entity_id(entity), "name": entity},
            }
        )
    return out


def _user(handle: str) -> dict[str, str]:
    return {"id": _entity_id("@" + handle), "name": handle.replace("_", " ").title(), "username": handle}


def stream_messages(seed: int = 0, retweet_rate: float = 0.15) -> Iterator[dict[str, Any]]:
    """Endless X API v2 sampled-stream messages for the tweets of ``SyntheticTweets(seed)``.

    Message *i* carries record *i*: as a plain tweet, or (``retweet_rate`` of them) as a
    retweet whose own text is cut to ``RT @user: ...…`` and whose full text is the referenced
    tweet in ``includes.tweets``. Some retweets carry no annotations of their own, as in the
    real stream, so readers must borrow the original's.
    """
    rng = random.Random(f"stream-{seed}")
    for tweet in SyntheticTweets(seed)._tweets():
        record = tweet.record
        data: dict[str, Any] = {
            "id": record.id,
            "text": record.text,
            "lang": record.lang,
            "created_at": record.created_at,
            "author_id": _user(tweet.author)["id"],
            "edit_history_tweet_ids": [record.id],
        }
        annotations = _api_annotations(tweet.annotations, rng)
        includes: dict[str, Any] = {"users": [_user(tweet.author)]}
        if rng.random() < retweet_rate:
            original_author = rng.choice(_HANDLES)
            original_id = str(int(record.id or "0") + 500_000_000)
            original = {
                "id": original_id,
                "text": record.text,
                "lang": record.lang,
                "author_id": _user(original_author)["id"],
                "edit_history_tweet_ids": [original_id],
            }
            if annotations:
                original["context_annotations"] = annotations
            full = f"RT @{original_author}: {record.text}"
            data["text"] = full if len(full) <= 140 else full[:139] + "…"  # as the API cuts retweets
            data["referenced_tweets"] = [{"type": "retweeted", "id": original_id}]
            includes["tweets"] = [original]
            includes["users"].append(_user(original_author))
            if annotations and rng.random() < 0.7:
                data["context_annotations"] = annotations
        elif annotations:
            data["context_annotations"] = annotations
        yield {"data": data, "includes": includes}

"""The synthetic stream's themes: entity pools, the labels X gives each theme, text templates.

Data for :mod:`tweetdomains.simulate`; the entity names are invented.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Theme:
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


THEMES: tuple[Theme, ...] = (
    Theme(
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
    Theme(
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
    Theme(
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
    Theme(
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
    Theme(
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
    Theme(
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
    Theme(
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
    Theme(
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
    Theme(
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
    Theme(
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
    Theme(
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
    Theme(
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
    Theme(
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
    Theme(
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
    Theme(
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
    Theme(
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
    Theme(
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
    Theme(
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
MIXES: tuple[tuple[str, str, str], ...] = (
    ("musician", "sports_team", "{artist} performs at halftime of the {team} game tonight 🎤⚽"),
    ("brand", "sports_team", "{brand} signs a sponsorship deal with {team}, new jerseys next season"),
    ("actor", "tv_show", "{actor} joins the cast of {show} for the new season"),
    ("actor", "movie", "{actor} stars in {movie}, the trailer is finally out"),
    ("politician", "news_story", "{politician} visits the site of the {story}, promises federal aid"),
    ("brand", "technology", "{brand} bets big on {tech} with a new research lab"),
    ("musician", "holiday", "{artist} drops a {holiday} song and it's already on every playlist"),
    ("video_game", "brand", "{game} collab with {brand} announced, limited edition console bundle"),
)

CHATTER = (
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

FOREIGN = (
    ("es", "¡Qué increíble {entity}! me encanta, ¿alguien más lo vio?"),
    ("es", "hoy todo el mundo habla de {entity}, qué locura"),
    ("fr", "Incroyable {entity}, j'adore vraiment, quelle soirée"),
    ("de", "Wahnsinn, {entity} ist heute einfach großartig"),
    ("pt", "Que incrível {entity}, estou sem palavras"),
    ("ja", "{entity}最高!今日は本当に楽しかった"),
)

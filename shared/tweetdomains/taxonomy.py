# ruff: noqa: E501  (the table keeps each API description on one line)
"""The X/Twitter context-annotation domain taxonomy, as a table of facts.

The 89 domains of the API's published list (``domain_id, name, description``, the names the
API actually sent, e.g. "Politician" rather than the list's "Politicians") and the other
names the API used for the same ids over time (id 46 was also sent as "Business Taxonomy").
Generated once from the project's reference copy of ``domains.csv`` and
``domain_name_variants.csv``; edit by hand when the API renames a domain.

Names are matched ignoring case and runs of whitespace (the API once sent
"Video Game Personality " with a trailing space). Names the table does not know are kept
as they are: a new domain in the stream is a new label, never a dropped one.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Final


@dataclass(frozen=True, slots=True)
class Domain:
    """One context-annotation domain: its API id, canonical name and description."""

    id: str
    name: str
    description: str


# (id, canonical name, description); description is "" where the API gives none.
_DOMAIN_TABLE: Final[tuple[tuple[str, str, str], ...]] = (
    ("3", "TV Shows", "Television shows from around the world"),
    ("4", "TV Episodes", "Television show episodes"),
    ("6", "Sports Event", ""),
    ("10", "Person", "Named people in the world like Nelson Mandela"),
    ("11", "Sport", "Types of sports, like soccer and basketball"),
    ("12", "Sports Team", "A sports team organization, like Arsenal and the Boston Celtics"),
    ("13", "Place", "Named places in the world, like Fenway Park"),
    ("22", "TV Genres", ""),
    ("23", "TV Channels", "Television Channels"),
    ("26", "Sports League", ""),
    ("27", "American Football Game", ""),
    ("28", "NFL Football Game", ""),
    ("29", "Events [Entity Service]", "Entity Service related Events domain"),
    (
        "30",
        "Entities [Entity Service]",
        "Entity Service top level domain, every item that is in Entity Service should be in this domain",
    ),
    ("31", "Community", ""),
    ("35", "Politician", "Politicians in the world, like Joe Biden"),
    ("38", "Political Race", ""),
    ("39", "Basketball Game", "Sports Event specific to Basketball games"),
    (
        "40",
        "Sports Series",
        "A grouping of sports events or series, for example 2014 pre-season, a tournament, or round",
    ),
    ("43", "Soccer Match", "Sports Event specific to Soccer matches"),
    ("44", "Baseball Game", ""),
    ("45", "Brand Vertical", "Top level entities that describe a Brands industry"),
    ("46", "Brand Category", "Categories within Brand Verticals that narrow down the scope of Brands"),
    ("47", "Brand", "Brands and Companies"),
    ("48", "Product", "Products created by Brands.  Examples: Ford Explorer, Apple iPhone."),
    (
        "49",
        "Product Version",
        "The specific model or version of a product.  Examples: Audi A8, Ben & Jerry's Chocolate Chip Ice Cream",
    ),
    ("54", "Musician", "A musician in the world, like Adele or Bob Dylan"),
    ("55", "Music Genre", "A category for a musical style, like Pop, Rock, or Rap"),
    ("56", "Actor", "An actor or actress in the world, like Kate Winslet or Leonardo DiCaprio"),
    (
        "58",
        "Entertainment Personality",
        "An entertainment personality in the world, like Anderson Cooper or Miranda Sings",
    ),
    ("60", "Athlete", "An athlete in the world, like Serena Williams or Lionel Messi"),
    (
        "65",
        "Interests and Hobbies Vertical",
        "Top level interests and hobbies groupings, like Food or Travel",
    ),
    (
        "66",
        "Interests and Hobbies Category",
        "A grouping of interests and hobbies entities, like Novelty Food or Destinations",
    ),
    (
        "67",
        "Interests and Hobbies",
        "Interests, opinions, and behaviors of individuals, groups, or cultures; like Speciality Cooking or Theme Parks",
    ),
    ("68", "Hockey Game", "Sports Event specific to Hockey games"),
    ("69", "News Vertical", "News Categories like Entertainment or Technology"),
    ("71", "Video Game", "A video game like Overwatch"),
    ("78", "Video Game Publisher", "A Video Game Publisher like 'Activision'"),
    ("79", "Video Game Hardware", "Video Game Hardware"),
    ("83", "Cricket Match", "Sports Event specific to Cricket matches"),
    ("84", "Book", 'A book, like "To Kill a Mockingbird"'),
    ("85", "Book Genre", "A genre for books, like Fiction"),
    ("86", "Movie", "A film like Rogue One: A Star Wars Story"),
    ("87", "Movie Genre", "A movie genre like Action"),
    ("88", "Political Body", "A section of a government, like The Supreme Court"),
    ("89", "Music Album", "A music album like The Dark Side of the Moon"),
    ("90", "Radio Station", "A radio station like Z-100"),
    ("91", "Podcast", 'A podcast like "Serial"'),
    ("92", "Sports Personality", "A Sports Personality like 'Skip Bayless'"),
    ("93", "Coach", "A Coach like 'Bill Belichick'"),
    ("94", "Journalist", "A journalist like 'Anderson Cooper'"),
    ("95", "TV Channel [Entity Service]", ""),
    (
        "109",
        "Reoccurring Trends",
        "Twitter generated Trends that occur on a daily, weekly, monthly, or yearly basis such as Monday motivation.",
    ),
    ("110", "Viral Accounts", ""),
    ("114", "Concert", "Music fesitvals and concerts, like Lollapalooza or a Marian Hill Concert"),
    ("115", "Video Game Conference", "Video game conferences, like E3"),
    ("116", "Video Game Tournament", "Video game tournament, like Evolution"),
    ("117", "Movie Festival", ""),
    ("118", "Award Show", "Award shows, like the Oscars, Grammys, or VMAs"),
    ("119", "Holiday", "Holidays like Christmas or Halloween"),
    ("120", "Digital Creator", "Influencers who create content on digital platforms"),
    (
        "122",
        "Fictional Character",
        "A person or other being in a narrative work of art, like Tom Sawyer or Jon Snow",
    ),
    ("123", "Ongoing News Story", "Ongoing News Stories like 'Brexit'"),
    ("130", "Multimedia Franchise", "Franchises which span multiple forms of media like 'Harry Potter'"),
    ("131", "Unified Twitter Taxonomy", "A taxonomy of user interests."),
    ("132", "Song", ""),
    ("136", "Video Game Personality", ""),
    ("137", "eSports Team", ""),
    ("138", "Esports Player", "An electronic sports player like Optic Scump"),
    ("139", "Fan Community", "A viral fan community like 'Lovatics' (fans of Demi Lovato)"),
    ("149", "Esports League", ""),
    ("152", "Food", "Topics about food, like Donuts or Brunch"),
    ("155", "Weather", ""),
    ("156", "Cities", "Cities around the world"),
    ("157", "Colleges & Universities", "Colleges & universities around the world"),
    ("158", "Points of Interest", "Places of interest, like the Eiffel Tower or a coffee shop"),
    ("159", "States", "States, provinces, or prefectures, like California or Fukushima Prefecture"),
    ("160", "Countries", ""),
    ("162", "Exercise & fitness", "for types of exercises& fitness and moves, e.g., yoga, crunches, squats"),
    (
        "163",
        "Travel",
        "for travel in specific places and types of travels, e.g., Venezuela travel, Spain travel, road trips",
    ),
    ("164", "Fields of study", "for all fields of study, e.g., futurology, microbiology"),
    ("165", "Technology", "for individual and types of technology, e.g., food technology, 3D printing"),
    ("166", "Stocks", "for individual and types of stocks, e.g., $TRX, $QQQ"),
    ("167", "Animals", ""),
    ("171", "Local News", "For local-level news entities"),
    ("172", "Global TV Show", "For global/conceptual TV shows without localization."),
    ("173", "Product Taxonomy", "A product taxonomy for labeling categories of products."),
    ("174", "Digital Assets & Crypto", "For cryptocurrency entities"),
    ("175", "Emergency Events", ""),
)
# Earlier or alternative names -> domain id (the canonical name comes from _DOMAIN_TABLE).
_VARIANTS: Final[dict[str, str]] = {
    "Sports Events": "6",
    "Events": "29",
    "Politicians": "35",
    "Business Taxonomy": "46",
    "Video Game Personality ": "136",
    "eSports Player": "138",
    "Google Product Taxonomy": "173",
}


DOMAINS: Final[tuple[Domain, ...]] = tuple(Domain(i, n, d) for i, n, d in _DOMAIN_TABLE)
"""Every known domain, in id order."""

_BY_ID: Final = MappingProxyType({d.id: d for d in DOMAINS})


def _key(name: str) -> str:
    return " ".join(name.split()).casefold()


_ID_BY_KEY: Final = MappingProxyType(
    {**{_key(name): i for name, i in _VARIANTS.items()}, **{_key(d.name): d.id for d in DOMAINS}}
)


def name_for(domain_id: str | int) -> str | None:
    """The canonical name of ``domain_id`` (``"46"`` -> ``"Brand Category"``), or None if unknown."""
    domain = _BY_ID.get(str(domain_id).strip())
    return domain.name if domain else None


def id_for(name: str) -> str | None:
    """The domain id for a canonical or earlier name (``"Business Taxonomy"`` -> ``"46"``),
    ignoring case and extra whitespace; None if the name is unknown."""
    return _ID_BY_KEY.get(_key(name))


def canonical_name(name: str) -> str:
    """The canonical name for ``name`` (``"Business Taxonomy"`` -> ``"Brand Category"``).

    Unknown names come back unchanged apart from trimmed surrounding whitespace, so a domain
    the table has never seen is kept as its own label.
    """
    domain_id = id_for(name)
    if domain_id is None:
        return name.strip()
    return _BY_ID[domain_id].name


def description_for(domain_id: str | int) -> str | None:
    """The API's description of ``domain_id`` ("" where it gives none), or None if unknown."""
    domain = _BY_ID.get(str(domain_id).strip())
    return domain.description if domain else None


def is_known(name: str) -> bool:
    """Whether ``name`` is a canonical or earlier name of a known domain."""
    return id_for(name) is not None


DOMAIN_NAMES: Final[tuple[str, ...]] = tuple(d.name for d in DOMAINS)
"""The canonical names of :data:`DOMAINS`, in id order."""

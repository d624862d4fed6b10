"""The taxonomy table: lookups, renamed domains, and agreement with the reference CSV files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tweetdomains import taxonomy


def test_table_has_89_domains_with_unique_ids_and_names() -> None:
    assert len(taxonomy.DOMAINS) == 89
    assert len({d.id for d in taxonomy.DOMAINS}) == 89
    assert len(set(taxonomy.DOMAIN_NAMES)) == 89
    assert tuple(d.name for d in taxonomy.DOMAINS) == taxonomy.DOMAIN_NAMES


def test_name_and_id_lookups() -> None:
    assert taxonomy.name_for("46") == "Brand Category"
    assert taxonomy.name_for(10) == "Person"
    assert taxonomy.name_for("9999") is None
    assert taxonomy.id_for("Musician") == "54"
    assert taxonomy.id_for("No Such Domain") is None
    assert taxonomy.description_for("10") == "Named people in the world like Nelson Mandela"
    assert taxonomy.description_for("6") == ""


def test_renamed_domains_map_to_the_canonical_name() -> None:
    assert taxonomy.id_for("Business Taxonomy") == "46"
    assert taxonomy.canonical_name("Business Taxonomy") == "Brand Category"
    assert taxonomy.canonical_name("Politicians") == "Politician"
    assert taxonomy.canonical_name("Google Product Taxonomy") == "Product Taxonomy"
    assert taxonomy.canonical_name("Sports Events") == "Sports Event"
    assert taxonomy.canonical_name("eSports Player") == "Esports Player"


def test_matching_ignores_case_and_extra_whitespace() -> None:
    assert taxonomy.canonical_name("Video Game Personality ") == "Video Game Personality"
    assert taxonomy.canonical_name("brand  category") == "Brand Category"
    assert taxonomy.canonical_name("Esports Team") == "eSports Team"
    assert taxonomy.is_known("tv shows")


def test_unknown_names_are_kept() -> None:
    assert taxonomy.canonical_name("Brand New Domain") == "Brand New Domain"
    assert taxonomy.canonical_name("  Brand New Domain ") == "Brand New Domain"
    assert not taxonomy.is_known("Brand New Domain")
    assert taxonomy.canonical_name("Film, TV & Video") == "Film, TV & Video"


def test_table_matches_domains_csv(shared_data: Path) -> None:
    with open(shared_data / "domains.csv", encoding="utf-8", newline="") as handle:
        rows = [(r["domain_id"], r["domain_name"], r["description"]) for r in csv.DictReader(handle)]
    assert [(d.id, d.name, d.description) for d in taxonomy.DOMAINS] == rows


def test_every_recorded_variant_is_known(shared_data: Path) -> None:
    with open(shared_data / "domain_name_variants.csv", encoding="utf-8", newline="") as handle:
        variants = [(r["domain_id"], r["name"]) for r in csv.DictReader(handle)]
    assert len(variants) == 160
    for domain_id, name in variants:
        assert taxonomy.id_for(name) == domain_id, name
        assert taxonomy.canonical_name(name) == taxonomy.name_for(domain_id)


def test_dataset_labels_are_canonical_names(shared_data: Path) -> None:
    names: set[str] = set()
    with open(shared_data / "context_annotations.jsonl", encoding="utf-8") as handle:
        for line in handle:
            names.update(json.loads(line)["domains"])
    assert len(names) == 81
    assert {taxonomy.canonical_name(n) for n in names} == names
    assert names <= set(taxonomy.DOMAIN_NAMES)

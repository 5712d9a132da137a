"""Rule sets from YAML files: every *.yaml in the given folders (the package's own rules/ by default)."""

from __future__ import annotations

from pathlib import Path

import yaml

from tcr_subsidy.domain.rules import RuleBook, RuleSet, parse_rule_set

DEFAULT_RULES_DIR = Path(__file__).resolve().parents[1] / "rules"


def read_rule_sets(*directories: Path) -> list[RuleSet]:
    found: list[RuleSet] = []
    for directory in directories:
        for path in sorted(Path(directory).glob("*.yaml")):
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
            found.append(parse_rule_set(raw, where=path.name))
    return found


def load_rule_book(*directories: Path) -> RuleBook:
    return RuleBook(read_rule_sets(*directories))


def default_rule_book() -> RuleBook:
    return load_rule_book(DEFAULT_RULES_DIR)

"""The MijnLoket pack: the shipped catalog reproduces the seed; tier decision, warnings, CLI and embedding."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from engine.bundle import load_bundle
from engine.compiler import compile_bundle
from engine.errors import UsageError

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "definitions" / "standard" / "mijnloket"


@pytest.fixture(scope="module")
def compiled(registry: Any) -> Any:
    return compile_bundle(load_bundle(SHIPPED), registry)


@pytest.fixture(scope="module")
def catalog(compiled: Any) -> Any:
    return compiled.get("ProductCatalog", "mijnloket")


def invoke(*args: str) -> Any:
    from engine.cli import cli
    from engine.registry import load_registry

    for name, command in load_registry().commands.items():
        if name not in cli.commands:
            cli.add_command(command, name)
    return CliRunner().invoke(cli, list(args))


SEED = {
    "Start": ["MijnLoket - Documenten", "MijnLoket - Verlofkaart", "MijnLoket - Persoonsgegevens inzien",
              "MijnLoket - Verzekeringen vergelijken"],
    "Plus": ["MijnLoket - Declaraties", "MijnLoket - Persoonsgegevens wijzigen", "MijnLoket - Verlofaanvragen",
             "MijnLoket - Verlofkalender", "MijnLoket - Salaris berekenen"],
    "Pro": ["MijnLoket - Assistent", "MijnLoket - Preboarding", "MijnLoket - Assistent bedrijfsregelingen",
            "Management Self Service"],
}


def test_catalog_reproduces_the_seed(catalog: Any) -> None:
    assert [t.label for t in catalog.tiers] == ["Start", "Plus", "Pro"]
    assert catalog.tiers[0].includes == ("Salarisgrafiek", "Loonstroken", "Jaaropgaven")
    by_tier = {label: [p.label for p in catalog.products if catalog.tier_label(p.tier) == label]
               for label in SEED}
    assert by_tier == SEED
    supporting = [i.label for i in catalog.items if i.kind == "supporting"]
    assert supporting == ["Workflow editor", "Dossiervorming Qwoater Lite of Extended", "Preboarding",
                          "Verlofregistratie", "Verlofregeling"]
    assert catalog.requires_addendum
    assert "addendum ondertekend" in catalog.addendum
    assert [r.label for r in catalog.rights] == ["Raadplegen MijnLoket e-mailadres"]
    assert catalog.rights[0].grantable_to == ("ak-gebruiker", "werkgevergebruiker")
    seed = (ROOT.parent / "shared" / "seeds" / "004_76ae5c069c3b97db.txt")
    if seed.exists():
        text = seed.read_text(encoding="utf-8")
        for label in [p.label for p in catalog.products] + supporting[:1] + ["Raadplegen MijnLoket e-mailadres"]:
            assert label in text, label


def test_compiles_into_a_core_table_and_rule_set(compiled: Any) -> None:
    table = compiled.get("DecisionTable", "mijnloket-tier")
    assert table.hit_policy == "PRIORITY"
    assert table.decide({"products": ["verlofaanvragen"]}).outputs == {"tier": "Plus"}
    ruleset = compiled.get("RuleSet", "mijnloket-rules")
    assert "tier-changed" in [r.id for r in ruleset.rules]
    assert "verlofaanvragen-needs-verlofregeling" in [r.id for r in ruleset.rules]


@pytest.mark.parametrize(("products", "tier"), [
    ([], "Start"),
    (["documenten", "verlofkaart", "persoonsgegevens_inzien", "verzekeringen_vergelijken"], "Start"),
    (["verlofaanvragen"], "Plus"),
    (["verlofaanvragen", "preboarding"], "Pro"),
    (["documenten", "management_self_service"], "Pro"),
    (["salaris_berekenen", "verlofkaart"], "Plus"),
    (["verlofregistratie", "workflow_editor"], "Start"),  # supporting products do not change the tier
])
def test_tier_is_the_highest_demanded(catalog: Any, products: list[str], tier: str) -> None:
    assert catalog.decide_tier(products) == tier


@pytest.mark.parametrize(("name", "product_id"), [
    ("verlofaanvragen", "verlofaanvragen"),
    ("MijnLoket - Verlofaanvragen", "verlofaanvragen"),
    ("mijnloket - verlofaanvragen", "verlofaanvragen"),
    ("Verlofaanvragen", "verlofaanvragen"),
    ("  Persoonsgegevens   wijzigen ", "persoonsgegevens_wijzigen"),
    ("management self service", "management_self_service"),
    ("MijnLoket - Preboarding", "preboarding"),
    ("Preboarding", "preboarding"),  # an id beats a label: the supporting product is preboarding_module
    ("preboarding_module", "preboarding_module"),
    ("Dossiervorming Qwoater Extended", "dossiervorming_qwoater_extended"),
])
def test_product_names(catalog: Any, name: str, product_id: str) -> None:
    assert catalog.resolve(name).id == product_id


def test_unknown_product_is_a_usage_error_with_a_hint(catalog: Any) -> None:
    with pytest.raises(UsageError) as info:
        catalog.resolve("Verlofaanvraag")
    assert "did you mean" in info.value.hint


def test_warnings_for_missing_supporting_products(catalog: Any) -> None:
    answer = catalog.tier(["MijnLoket - Declaraties", "Workflow editor"])
    assert answer.tier == "Plus"
    assert [(w["product"], w["supporting"]) for w in answer.warnings] == [("declaraties", "dossiervorming")]
    assert "Dossiervorming Qwoater Lite of Extended" in answer.warnings[0]["message"]
    assert catalog.tier(["Declaraties", "Workflow editor", "Dossiervorming Qwoater Lite"]).warnings == []


def test_without_addendum_mijnloket_cannot_be_activated(catalog: Any) -> None:
    answer = catalog.tier(["Verlofaanvragen"], addendum_signed=False)
    assert answer.tier is None and answer.activatable is False and answer.would_be == "Plus"
    assert "kan niet worden geactiveerd" in answer.explain[0]
    assert answer.warnings[0]["code"] == "addendum_required"


def test_employer_records_activations_and_tier_changes(catalog: Any) -> None:
    from plugins.mijnloket.catalog import Employer

    records: list[dict[str, Any]] = []
    employer = Employer(catalog, employer_id="werkgever-1", recorder=records.append)
    try:
        first = employer.activate("MijnLoket - Verlofaanvragen", actor="consultant")
        assert (first["tier_before"], first["tier_after"]) == ("Start", "Plus")
        second = employer.activate("MijnLoket - Preboarding", actor="consultant")
        assert second["events"][0]["to"] == "Pro"
        third = employer.activate("Documenten")
        assert third["events"] == []
        assert employer.tier == "Pro"
        assert [(r["product"], r["tier_after"], r["actor"]) for r in records] == [
            ("verlofaanvragen", "Plus", "consultant"), ("preboarding", "Pro", "consultant"),
            ("documenten", "Pro", "system")]
        assert all(r["at"] for r in records)
    finally:
        employer.close()


def test_cli_tier_json() -> None:
    result = invoke("tier", str(SHIPPED), "--product", "MijnLoket - Verlofaanvragen", "--product", "preboarding",
                    "--addendum-signed", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["tier"] == "Pro"
    assert set(data) >= {"tier", "explain", "warnings"}
    assert [e["to"] for e in data["events"]] == ["Plus", "Pro"]
    assert any("Verlofregistratie" in w["message"] for w in data["warnings"])


def test_cli_tier_without_addendum() -> None:
    result = invoke("tier", str(SHIPPED), "--product", "Documenten", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["tier"] is None and data["activatable"] is False
    assert "kan niet worden geactiveerd" in data["explain"][0]


def test_cli_tier_unknown_product_exits_2_with_hint() -> None:
    result = invoke("tier", str(SHIPPED), "--product", "Verlofkalendr", "--addendum-signed")
    assert result.exit_code == 2
    assert "unknown product 'Verlofkalendr'" in result.output
    assert "did you mean 'MijnLoket - Verlofkalender' (verlofkalender)?" in result.output


def test_cli_decide() -> None:
    result = invoke("decide", str(SHIPPED), "mijnloket-tier", "--input", "products=verlofaanvragen",
                    "--input", "products=preboarding", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["outputs"] == {"tier": "Pro"}
    assert data["matched"] == ["verlofaanvragen", "preboarding"]
    assert data["explain"]["hit_policy"] == "PRIORITY"
    assert invoke("decide", str(SHIPPED), "nope").exit_code == 2

"""The MijnLoket pack: the shipped catalog reproduces the seed; tier decision, warnings, CLI and embedding."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from regelwerk.bundle import load_bundle
from regelwerk.compiler import compile_bundle
from regelwerk.errors import InvalidData, TransitionNotAllowed, UsageError
from regelwerk.permissions.policies import UnsafeAllowAll

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "definitions" / "standard" / "mijnloket"


@pytest.fixture(scope="module")
def compiled(registry: Any) -> Any:
    return compile_bundle(load_bundle(SHIPPED), registry)


@pytest.fixture(scope="module")
def catalog(compiled: Any) -> Any:
    return compiled.get("ProductCatalog", "mijnloket")


def invoke(*args: str) -> Any:
    from regelwerk.cli import cli
    from regelwerk.registry import load_registry

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


@pytest.fixture
def products(compiled: Any, registry: Any, sqlite_url: str) -> Iterator[Any]:
    from regelwerk.runtime import Engine
    from regelwerk.store import open_store
    from regelwerk_packs.mijnloket.products import EmployerProducts

    clock = {"now": datetime(2027, 2, 1, 9, 0, tzinfo=UTC)}
    store = open_store(sqlite_url, registry)
    engine = Engine(compiled, store=store, registry=registry, clock=lambda: clock["now"],
                    permissions=UnsafeAllowAll())  # the catalog's own checks are under test here
    yield EmployerProducts(engine)
    engine.close()
    store.close()


def test_compiles_into_an_employer_workflow(compiled: Any) -> None:
    from regelwerk.workflows.model import workflow_from_dict, workflow_to_dict

    workflow = compiled.get("Workflow", "mijnloket-employer")
    assert [(s.id, s.label) for s in workflow.states] == [
        ("not_activated", "Niet geactiveerd"), ("start", "Start"), ("plus", "Plus"), ("pro", "Pro")]
    assert workflow.initial == "not_activated"
    assert set(workflow.events) == {"sign_addendum", "activate", "deactivate"}
    # guards come from the table's rows: the Pro rows are exactly the seed's Pro products
    to_pro = next(t for t in workflow.transitions if t.event == "activate" and t.dest == "pro")
    assert to_pro.sources == ("start", "plus")
    assert to_pro.guard_source["args"][2] == ["assistent", "preboarding", "assistent_bedrijfsregelingen",
                                              "management_self_service"]
    assert compiled.get("ProductCatalog", "mijnloket").workflow == "mijnloket-employer"
    # a stored definition version reloads (guards over registered functions)
    from regelwerk.registry import load_registry

    again = workflow_from_dict(workflow_to_dict(workflow), load_registry().function_table())
    assert workflow_to_dict(again) == workflow_to_dict(workflow)


def test_employer_history_is_the_audit_trail(products: Any) -> None:
    werkgever = products.employer("werkgever-1")
    assert werkgever.tier is None and werkgever.history() == []
    with pytest.raises(TransitionNotAllowed) as refused:
        werkgever.activate("MijnLoket - Verlofaanvragen", actor="consultant")
    assert refused.value.state == "not_activated"
    assert "Er dient eerst een addendum ondertekend te worden voordat MijnLoket geactiveerd kan worden" \
        in refused.value.reasons[0]
    assert werkgever.activate("Verlofregistratie", actor="consultant").tier_after is None  # supporting: allowed
    werkgever.sign_addendum(actor="consultant")
    first = werkgever.activate("MijnLoket - Verlofaanvragen", actor="consultant")
    assert (first.tier_before, first.tier_after, first.tier_changed) == ("Start", "Plus", True)
    assert [(w["product"], w["supporting"]) for w in first.warnings] == [("verlofaanvragen", "verlofregeling")]
    second = werkgever.activate("preboarding", actor="consultant")
    assert (second.tier_before, second.tier_after) == ("Plus", "Pro")
    third = werkgever.activate("Documenten")
    assert not third.tier_changed and werkgever.tier == "Pro"
    assert werkgever.active == ["verlofregistratie", "verlofaanvragen", "preboarding", "documenten"]
    rows = [(h.event, h.from_state, h.to_state, h.actor, (h.explain.get("input") or {}).get("product"))
            for h in werkgever.history()]
    assert rows == [
        ("$start", "", "not_activated", "consultant", None),
        ("activate", "not_activated", "not_activated", "consultant", "verlofregistratie"),
        ("sign_addendum", "not_activated", "start", "consultant", None),
        ("activate", "start", "plus", "consultant", "verlofaanvragen"),
        ("activate", "plus", "pro", "consultant", "preboarding"),
        ("activate", "pro", "pro", "system", "documenten"),
    ]
    assert all(h.at == datetime(2027, 2, 1, 9, 0, tzinfo=UTC) for h in werkgever.history())
    assert [(c.product, c.tier_before, c.tier_after) for c in products.tier_changes()] == [
        ("verlofaanvragen", "Start", "Plus"), ("preboarding", "Plus", "Pro")]
    audit = [a for a in products.engine.audit(werkgever.instance_id) if a.action == "mijnloket.activate"]
    assert audit[1].detail["decision"] == {"table": "mijnloket-tier", "tier": "Plus", "matched": ["verlofaanvragen"]}
    assert audit[1].detail["events"][0]["to"] == "Plus"
    # open warnings live on the instance: Verlofregeling and the Preboarding module are missing
    assert {(w["product"], w["supporting"]) for w in werkgever.warnings} == {
        ("verlofaanvragen", "verlofregeling"), ("preboarding", "preboarding_module"), ("documenten", "dossiervorming")}
    werkgever.activate("Verlofregeling")
    assert ("verlofaanvragen", "verlofregeling") not in {(w["product"], w["supporting"]) for w in werkgever.warnings}


def test_deactivating_goes_back_to_what_the_rest_demands(products: Any) -> None:
    werkgever = products.employer("werkgever-2")
    werkgever.sign_addendum()
    werkgever.activate("Verlofaanvragen")
    werkgever.activate("Preboarding")
    down = werkgever.deactivate("Preboarding", actor="consultant")
    assert (down.tier_before, down.tier_after, down.change) == ("Pro", "Plus", "deactivate")
    assert werkgever.deactivate("Verlofaanvragen").tier_after == "Start"
    with pytest.raises(UsageError, match="is not active"):
        werkgever.deactivate("Verlofaanvragen")
    assert [(c.change, c.tier_before, c.tier_after) for c in products.tier_changes()] == [
        ("activate", "Start", "Plus"), ("activate", "Plus", "Pro"), ("deactivate", "Pro", "Plus"),
        ("deactivate", "Plus", "Start")]


def test_employer_refusals_are_typed(products: Any) -> None:
    werkgever = products.employer("werkgever-3")
    with pytest.raises(UsageError) as unknown:
        werkgever.activate("Verlofaanvraag")
    assert "did you mean 'MijnLoket - Verlofaanvragen'" in unknown.value.hint
    assert werkgever.history() == []  # nothing was started for a usage error
    werkgever.sign_addendum()
    with pytest.raises(TransitionNotAllowed):
        werkgever.sign_addendum()  # once
    # a raw fire with a name that is not an id is refused by the workflow's data schema
    with pytest.raises(InvalidData):
        products.engine.fire(werkgever.instance_id, "activate", "x", {"product": "Verlofaanvragen"})
    assert werkgever.tier == "Start"


def test_instance_id_is_derived_from_the_employer(products: Any) -> None:
    catalog = products.catalog()
    assert products.instance_id("123", catalog) == "mijnloket-employer:123"
    long = products.instance_id("x" * 80, catalog)
    assert len(long) <= 64 and long == products.instance_id("x" * 80, catalog)


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


def test_an_instance_someone_else_started_under_an_employers_id_is_not_taken_for_it(products: Any) -> None:
    """The employer's instance id is derived (``<workflow>:<employer>``), so anyone who may start some workflow can
    start one under it first: the pack does not take another workflow's instance, or another employer's, for the
    employer's (its changes would land there); it says so (``IdInUse``) and leaves that instance alone."""
    from regelwerk.errors import IdInUse

    catalog = products.catalog()
    products.engine.start(catalog.workflow, {"employer": "someone-else"}, "x",
                          products.instance_id("werkgever-5", catalog))
    with pytest.raises(IdInUse, match="werkgever-5"):
        products.employer("werkgever-5").sign_addendum()
    planted = products.engine.get(products.instance_id("werkgever-5", catalog))
    assert (planted.version, planted.data["employer"]) == (1, "someone-else")
    products.employer("werkgever-6").sign_addendum()  # its own instance, started on first use
    assert products.tier("werkgever-6", catalog.name) == "Start"

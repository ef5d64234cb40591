"""The MijnLoket pack's section of the configuration report: variants (tiers) and products."""

from __future__ import annotations

from typing import TYPE_CHECKING

from regelwerk.registry import Registry, ReportSectionSpec

if TYPE_CHECKING:
    from regelwerk.report.page import ReportPage

__all__ = ["GLOSSARY", "register"]

GLOSSARY = {"tiers": "variant", "products": "product", "items": "product", "needs": "de benodigde producten",
            "includes": "wat altijd inbegrepen is", "purpose": "het doel", "variants": "de varianten",
            "requires_addendum": "addendum vereist", "addendum": "de addendumtekst", "where": "waar te activeren",
            "grantable_to": "aan wie toe te kennen"}


def _unprefixed(label: str, prefix: str) -> str:
    return label[len(prefix):].strip() if prefix and label.startswith(prefix) and len(label) > len(prefix) else label


def catalogs(page: ReportPage) -> str:
    """Each product catalog: per variant what it always includes and which products require it."""
    from regelwerk.report.page import esc

    parts = []
    for name, catalog in page.of_kind("ProductCatalog").items():
        rows = []
        for tier in catalog.tiers:
            products = [i for i in catalog.products if i.tier == tier.id]
            prefix = catalog.label_prefix
            rows.append((f"<b>{esc(tier.label)}</b>",
                         "".join(f'<span class="chip">{esc(i)}</span>' for i in tier.includes) or "—",
                         "".join(f'<span class="chip">{esc(_unprefixed(p.label, prefix))}</span>'
                                 for p in products) or "—"))
        body = page.table(["Variant", "Altijd inbegrepen", "Producten die deze variant vereisen"], rows)
        supporting = [i for i in catalog.items if i.kind == "supporting"]
        if supporting:
            srows = []
            for item in supporting:
                needed_by = [p.label for p in catalog.products if item.id in p.needs]
                variants = [catalog.item(v).label for v in item.variants]
                srows.append((esc(item.label), esc(item.purpose) or "—", esc(", ".join(variants)) or "—",
                              esc(", ".join(needed_by)) or "—"))
            body += "<p class=\"meta\"><b>Aanvullende (ondersteunende) producten</b></p>"
            body += page.table(["Product", "Doel", "Varianten", "Nodig voor"], srows)
        if catalog.rights:
            body += page.table(["Recht", "Omschrijving", "Toe te kennen aan"], [
                (esc(r.label), esc(r.description), esc(", ".join(page.words.label(g) for g in r.grantable_to)))
                for r in catalog.rights])
        if catalog.requires_addendum:
            body += f'<p class="note"><b>Addendum vereist.</b> {esc(catalog.addendum)}</p>'
        if catalog.where:
            body += f'<p class="meta">Activeren via: {esc(catalog.where)}</p>'
        parts.append(page.item("ProductCatalog", name, catalog.label, body))
    return "".join(parts)


def register(registry: Registry, plugin: str) -> None:
    """Contribute the MijnLoket section to the report."""
    registry.add_report_section(ReportSectionSpec(
        "mijnloket", plugin, "MijnLoket: varianten en producten", catalogs, ("ProductCatalog",), 70,
        glossary=GLOSSARY))

"""Reading the CRM through the real SDK: deals, pipelines, owners, properties, v4 associations."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hubspot.crm.deals import BatchReadInputSimplePublicObjectId
from hubspot.crm.deals.exceptions import NotFoundException
from hubspot.crm.owners.exceptions import NotFoundException as OwnerNotFound

from .conftest import HS, body_of


@pytest.fixture
def crm(hs: HS) -> dict[str, str]:
    return hs.fixtures({
        "owners": [{"ref": "ann", "email": "ann@seller.example", "firstName": "Ann",
                    "lastName": "Rep"},
                   {"ref": "gone", "email": "gone@seller.example", "firstName": "Old",
                    "lastName": "Rep", "archived": True}],
        "companies": [{"ref": "acme", "name": "Acme", "domain": "acme.example"}],
        "contacts": [{"ref": "c1", "firstname": "Cy", "email": "cy@acme.example",
                      "associations": {"companies": ["@acme"]}},
                     {"ref": "c2", "firstname": "Di", "email": "di@acme.example"}],
        "deals": [{"ref": "won", "dealname": "Acme", "dealstage": "closedlost",
                   "hubspot_owner_id": "@gone",
                   "associations": {"contacts": ["@c1", "@c2"], "companies": ["@acme"]}},
                  {"ref": "lonely", "dealname": "Nobody", "dealstage": "closedlost"}],
    })


def test_get_deal_with_associations_has_duplicate_company_by_type(hs: HS, crm: dict[str, str]
                                                                  ) -> None:
    deal = hs.client().crm.deals.basic_api.get_by_id(
        crm["won"], properties=["dealstage", "hubspot_owner_id"],
        associations=["contacts", "companies"])
    assert deal.properties["dealstage"] == "closedlost"
    assert deal.properties["hubspot_owner_id"] == crm["gone"]
    contacts = [(a.id, a.type) for a in deal.associations["contacts"].results]
    assert contacts == [(crm["c1"], "deal_to_contact"), (crm["c2"], "deal_to_contact")]
    companies = [(a.id, a.type) for a in deal.associations["companies"].results]
    assert companies == [(crm["acme"], "deal_to_company"),
                         (crm["acme"], "deal_to_company_unlabeled")]
    lonely = hs.client().crm.deals.basic_api.get_by_id(crm["lonely"], associations=["contacts"])
    assert lonely.associations is None


def test_object_type_ids_and_missing_deal(hs: HS, crm: dict[str, str]) -> None:
    resp = hs.raw("GET", f"/crm/v3/objects/0-3/{crm['won']}")
    assert resp.status_code == 200 and resp.json()["id"] == crm["won"]
    with pytest.raises(NotFoundException) as info:
        hs.client().crm.deals.basic_api.get_by_id("999999999")
    assert body_of(info.value)["category"] == "OBJECT_NOT_FOUND"
    resp = hs.raw("GET", "/crm/v3/objects/widgets/1")
    assert resp.status_code == 400 and "Unable to infer object type" in resp.json()["message"]


def test_list_deals_pages_with_after(seeded: HS) -> None:
    api = seeded.client()
    first = api.crm.deals.basic_api.get_page(limit=50, associations=["companies"])
    assert len(first.results) == 50 and first.paging.next.after
    everything = api.crm.deals.get_all()
    assert len(everything) == 120
    assert len({d.id for d in everything}) == 120
    resp = seeded.raw("GET", "/crm/v3/objects/deals?limit=101")
    assert resp.status_code == 400


def test_batch_read_reports_missing_ids_with_207(hs: HS, crm: dict[str, str]) -> None:
    api = hs.client()
    result = api.crm.deals.batch_api.read(
        batch_read_input_simple_public_object_id=BatchReadInputSimplePublicObjectId(
            inputs=[{"id": crm["won"]}, {"id": "424242"}], properties=["dealstage"],
            properties_with_history=[]))
    assert [r.id for r in result.results] == [crm["won"]]
    assert result.num_errors == 1
    error = result.errors[0]
    assert error.category == "OBJECT_NOT_FOUND" and error.context["ids"] == ["424242"]
    assert "DEAL" in error.message
    assert result.status == "COMPLETE" and result.started_at and result.completed_at


def test_pipelines_have_real_stage_ids_and_string_metadata(hs: HS) -> None:
    pipelines = hs.client().crm.pipelines.pipelines_api.get_all(object_type="deals").results
    default = next(p for p in pipelines if p.id == "default")
    stages = {s.id: s.metadata for s in default.stages}
    assert stages["appointmentscheduled"] == {"isClosed": "false", "probability": "0.2"}
    assert stages["closedwon"] == {"isClosed": "true", "probability": "1.0"}
    assert stages["closedlost"] == {"isClosed": "true", "probability": "0.0"}
    custom = next(p for p in pipelines if p.id != "default")
    lost = [s.id for s in custom.stages
            if s.metadata["isClosed"] == "true" and float(s.metadata["probability"]) == 0.0]
    assert lost == ["1307720556"] and lost[0].isdigit()
    on_hold = [s for s in custom.stages if s.metadata["probability"] == "0.0"]
    assert len(on_hold) == 2  # an open stage at 0 % must not count as lost
    assert default.created_at.year == 1970
    one = hs.client().crm.pipelines.pipelines_api.get_by_id(object_type="deals",
                                                             pipeline_id=custom.id)
    assert one.label == custom.label


def test_owners_active_archived_paging_and_lookup(seeded: HS) -> None:
    api = seeded.client()
    active = api.crm.owners.get_all()
    archived = api.crm.owners.get_all(archived=True)
    assert len(active) == 18 and len(archived) == 2
    assert all(o.user_id is not None for o in active)
    assert all(o.archived and o.user_id is None and o.user_id_including_inactive
               for o in archived)
    page = api.crm.owners.owners_api.get_page(limit=5)
    assert len(page.results) == 5 and page.paging.next.after
    rest = api.crm.owners.owners_api.get_page(limit=100, after=page.paging.next.after)
    assert {o.id for o in page.results}.isdisjoint({o.id for o in rest.results})
    assert len(rest.results) == 13
    assert seeded.raw("GET", "/crm/v3/owners/?limit=101").status_code == 400
    assert seeded.raw("GET", "/crm/v3/owners?limit=5").status_code == 200
    one = api.crm.owners.owners_api.get_by_id(owner_id=int(active[0].id))
    assert one.email == active[0].email
    with pytest.raises(OwnerNotFound):
        api.crm.owners.owners_api.get_by_id(owner_id=int(archived[0].id))
    found = api.crm.owners.owners_api.get_by_id(owner_id=int(archived[0].id), archived=True)
    assert found.archived is True
    by_email = api.crm.owners.owners_api.get_page(email=active[3].email)
    assert [o.id for o in by_email.results] == [active[3].id]


def test_boolean_parameters_are_validated_like_hubspot(seeded: HS) -> None:
    """`archived` reads true/false in any case (the SDK sends `True`/`False` for a bool);
    a value that is no boolean is a 400 naming it, not silently "false"."""
    def count(query: str) -> int:
        resp = seeded.raw("GET", f"/crm/v3/owners/?limit=100&{query}")
        assert resp.status_code == 200, resp.text
        return len(resp.json()["results"])

    assert count("archived=false") == count("archived=False") == count("") == 18
    assert count("archived=true") == count("archived=TRUE") == 2
    for bad in ("yes", "1", "0", "off"):
        resp = seeded.raw("GET", f"/crm/v3/owners/?archived={bad}")
        assert resp.status_code == 400, (bad, resp.text)
        body = resp.json()
        assert body["category"] == "VALIDATION_ERROR" and f"'{bad}' is not a boolean" in \
            body["message"], body
    seen = seeded.admin("GET", "queries?endpoint=owners.list")["queries"]
    assert {"archived": ["False"], "limit": ["100"]} in seen


def test_properties_and_groups(hs: HS) -> None:
    api = hs.client()
    status = api.crm.properties.core_api.get_by_name(object_type="tasks",
                                                      property_name="hs_task_status")
    assert {o.value for o in status.options} >= {"NOT_STARTED", "COMPLETED"}
    lost = api.crm.properties.core_api.get_by_name(object_type="deals",
                                                    property_name="hs_is_closed_lost")
    assert lost.type == "bool"
    deal_props = {p.name for p in api.crm.properties.core_api.get_all(object_type="deals").results}
    assert {"competitor", "contract_end_date", "hs_v2_date_entered_closedlost"} <= deal_props
    groups = api.crm.properties.groups_api.get_all(object_type="tasks").results
    assert groups and groups[0].name
    resp = hs.raw("GET", "/crm/v3/properties/0-27/followup_key")
    assert resp.status_code == 404


def test_v4_batch_read_with_the_207_quirk(hs: HS, crm: dict[str, str]) -> None:
    api = hs.client()
    result = api.crm.associations.v4.batch_api.get_page(
        from_object_type="deals", to_object_type="contacts",
        batch_input_public_fetch_associations_batch_request={
            "inputs": [{"id": crm["won"]}, {"id": crm["lonely"]}]})
    assert [r._from.id for r in result.results] == [crm["won"]]
    assert sorted(t.to_object_id for t in result.results[0].to) == sorted([crm["c1"], crm["c2"]])
    assert result.results[0].to[0].association_types[0].type_id == 3
    assert result.num_errors == 1
    error = result.errors[0]
    assert error.sub_category == "crm.associations.NO_ASSOCIATIONS_FOUND"
    assert error.context["fromObjectId"] == [crm["lonely"]]
    raw = hs.raw("POST", "/crm/v4/associations/0-3/0-2/batch/read",
                 json={"inputs": [{"id": crm["won"]}]})
    assert raw.status_code == 200
    to = raw.json()["results"][0]["to"][0]
    assert to["toObjectId"] == int(crm["acme"])  # a number on the wire
    assert sorted(t["typeId"] for t in to["associationTypes"]) == [5, 341]
    too_many = hs.raw("POST", "/crm/v4/associations/deals/contacts/batch/read",
                      json={"inputs": [{"id": str(i)} for i in range(1001)]})
    assert too_many.status_code == 400
    labels = api.crm.associations.v4.schema.definitions_api.get_all(
        from_object_type="tasks", to_object_type="deals")
    assert [label.type_id for label in labels.results] == [216]


def test_sandbox_never_imports_worker_or_connectors() -> None:
    root = Path(__file__).resolve().parents[3] / "sandbox"
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in ("worker", "connectors"), (path, name)


def test_v4_pages_per_input_past_500_links(hs: HS) -> None:
    contacts = [{"ref": f"c{i}", "firstname": f"C{i}"} for i in range(501)]
    links = {"contacts": [f"@c{i}" for i in range(501)]}
    ids = hs.fixtures({"contacts": contacts,
                       "deals": [{"ref": "big", "dealname": "Big", "associations": links}]})
    batch = hs.client().crm.associations.v4.batch_api
    first = batch.get_page(from_object_type="deals", to_object_type="contacts",
                           batch_input_public_fetch_associations_batch_request={
                               "inputs": [{"id": ids["big"]}]})
    assert len(first.results[0].to) == 500
    cursor = first.results[0].paging.next.after
    second = batch.get_page(from_object_type="deals", to_object_type="contacts",
                            batch_input_public_fetch_associations_batch_request={
                                "inputs": [{"id": ids["big"], "after": cursor}]})
    assert [t.to_object_id for t in second.results[0].to] == [ids["c500"]]
    assert second.results[0].paging is None


def test_generated_seed_shape(seeded: HS) -> None:
    deals = seeded.admin("GET", "objects/deals")["results"]
    lost = [d for d in deals if d["properties"]["hs_is_closed_lost"] == "true"]
    assert {d["properties"]["dealstage"] for d in lost} == {"closedlost", "1307720556"}
    assert sum(d["properties"]["dealstage"] == "closedlost" for d in lost) > len(lost) / 2
    for deal in lost:
        props = deal["properties"]
        assert props["closed_lost_reason"] and props["hubspot_owner_id"]
        assert props["closedate"].endswith(".000Z") and props["createdate"].endswith("Z")
        assert deal["associations"]["companies"]
    won = {d["properties"]["dealstage"] for d in deals if d["properties"]["hs_is_closed_won"]
           == "true"}
    assert won <= {"closedwon", "1307720553"}
    contacts = seeded.admin("GET", "objects/contacts")["results"]
    assert {c["properties"]["hs_email_optout"] for c in contacts} == {"true", "false"}
    assert any(d["properties"].get("competitor") for d in deals)
    assert any(d["properties"].get("contract_end_date") for d in deals)

"""The tier link's pure parts: hops in every wire format and their verification, the node platform kind,
the shovel definition, and catalog entries signed by the sending node."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from adapters.codecs import department, ministry, regional, relay
from adapters.codecs import envelope as envelopes
from adapters.codecs.envelope import EnvelopeError, Hop
from adapters.platforms import PlatformConfigError, load_platforms
from adapters.rabbit import shovel
from catalog.records import Operation, Record
from security.keys import KeyStore

PROVIDER = "11100000MB01284764"
CONSUMER = "11100000000013127D"
RESOURCE = "311140001/000101"
NOW = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)
CODECS = [ministry, regional, department, relay]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyStore]:
    return {name: KeyStore.create(tmp_path_factory.mktemp(name)) for name in ("dept", "region", "stranger")}


def rows(n: int = 5) -> list[Record]:
    return [Record(f"R{i}", i, Operation.UPSERT, {"姓名": f"张{i}", "公民身份号码": "360426********0071"})
            for i in range(1, n + 1)]


def parts(store: KeyStore, node_id: str, records: list[Record], batch_id: str = "b1") -> list[envelopes.Envelope]:
    return envelopes.seal_split(batch_id=batch_id, node_id=node_id, provider_code=PROVIDER, resource_code=RESOURCE,
                                consumer_code=CONSUMER, records=records, signer=store.active, now=NOW)


def chained(stores: dict[str, KeyStore], hop_index: int = 2) -> envelopes.Envelope:
    below = parts(stores["dept"], "dept", rows())
    above = parts(stores["region"], "region", rows()[2:], "b2")
    return envelopes.with_hops(above[0], [envelopes.as_hop(below[hop_index])])


def trusted(stores: dict[str, KeyStore]) -> dict:
    return {"dept": stores["dept"].public, "region": stores["region"].public}


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.__name__.split(".")[-1])
def test_hops_round_trip_in_every_wire_format_and_verify(codec, stores):
    envelope = chained(stores)
    back = codec.decode(codec.encode(envelope))
    assert back == envelope
    assert envelopes.verify_chain(back, trusted(stores)) == []


def test_a_hop_over_another_record_is_detected(stores):
    problems = envelopes.verify_chain(chained(stores, hop_index=3), trusted(stores))
    assert problems == ["hops[0] (dept).signed.root: the record does not hash to the root node 'dept' signed"]


def test_a_hop_of_a_node_not_trusted_here_is_detected(stores):
    problems = envelopes.verify_chain(chained(stores), {"region": stores["region"].public})
    assert len(problems) == 1 and "is not a trusted key of node 'dept'" in problems[0]


def test_a_hop_signed_with_another_nodes_key_is_detected(stores):
    envelope = chained(stores)
    hop = envelope.hops[0]
    forged_signed = parts(stores["stranger"], "dept", rows())[2].signed
    forged = envelopes.with_hops(envelope, [Hop("dept", hop.batch_id, forged_signed, hop.proof)])
    assert envelopes.verify_chain(forged, {**trusted(stores), "stranger": stores["stranger"].public})


def test_hops_go_only_with_a_one_record_envelope(stores):
    whole = envelopes.seal(batch_id="b", node_id="region", provider_code=PROVIDER, resource_code=RESOURCE,
                           consumer_code=CONSUMER, records=rows(), signer=stores["region"].active, now=NOW)
    hop = chained(stores).hops[0]
    with pytest.raises(EnvelopeError, match="^hops:"):
        envelopes.check_envelope(envelopes.Envelope(*[getattr(whole, f) for f in (
            "batch_id", "node_id", "provider_code", "resource_code", "consumer_code", "created_at", "records",
            "signed", "proof")], hops=(hop,)))


def test_a_regional_document_with_a_malformed_hop_names_the_field(stores):
    document = json.loads(regional.encode(chained(stores)))
    del document["hops"][0]["proof"]
    with pytest.raises(EnvelopeError, match=r"hops\[0\]\.proof"):
        regional.decode(json.dumps(document).encode())


def test_a_node_platform_names_its_upper_node(tmp_path: Path):
    path = tmp_path / "platforms.toml"
    path.write_text('[[platform]]\nname = "region"\nkind = "node"\nconsumer_code = "11100000000013127D"\n'
                    'upper_node = "nmg"\n', encoding="utf-8")
    [platform] = load_platforms(path, "hhht")
    assert (platform.kind, platform.upper_node, platform.queue) == ("node", "nmg", "exnode.hhht.out.region")
    assert platform.codec.CONTENT_TYPE == relay.CONTENT_TYPE
    path.write_text('[[platform]]\nname = "x"\nkind = "regional"\nconsumer_code = "11100000000013127D"\n'
                    'upper_node = "nmg"\n', encoding="utf-8")
    with pytest.raises(PlatformConfigError, match="upper_node: only a platform of kind node"):
        load_platforms(path, "hhht")


def test_a_node_platform_for_returned_data_names_its_lower_node_and_not_both(tmp_path: Path):
    path = tmp_path / "platforms.toml"
    head = '[[platform]]\nname = "down"\nkind = "node"\nconsumer_code = "11100000000013127D"\n'
    path.write_text(head + 'lower_node = "hhht"\n', encoding="utf-8")
    [platform] = load_platforms(path, "nmg")
    assert (platform.lower_node, platform.upper_node, platform.peer_node) == ("hhht", "", "hhht")
    path.write_text(head + 'lower_node = "hhht"\nupper_node = "mca"\n', encoding="utf-8")
    with pytest.raises(PlatformConfigError, match="not both"):
        load_platforms(path, "nmg")
    path.write_text(head, encoding="utf-8")
    with pytest.raises(PlatformConfigError, match="upper_node: is missing"):
        load_platforms(path, "nmg")


def test_the_shovel_moves_the_lower_queue_into_the_upper_inbound_queue_acking_after_confirm():
    value = shovel.definition(lower_vhost="t1-dept", lower_queue="exnode.d.out.region", upper_vhost="t1/region",
                              upper_queue="exnode.r.in")
    assert value["src-uri"] == "amqp:///t1-dept" and value["dest-uri"] == "amqp:///t1%2Fregion"
    assert (value["src-queue"], value["dest-queue"], value["ack-mode"]) == ("exnode.d.out.region", "exnode.r.in",
                                                                            "on-confirm")


def test_a_catalog_entry_verifies_only_with_the_senders_key(stores):
    body = relay.encode_catalog_entry({"code": RESOURCE, "version": 1}, "dept", stores["dept"].active)
    assert relay.decode_catalog_entry(body, trusted(stores)) == ("dept", {"code": RESOURCE, "version": 1})
    tampered = body.replace(b'"version": 1', b'"version": 2')
    with pytest.raises(relay.CatalogEntryError, match="signature: does not verify"):
        relay.decode_catalog_entry(tampered, trusted(stores))
    with pytest.raises(relay.CatalogEntryError, match="not a trusted key of node 'dept'"):
        relay.decode_catalog_entry(body, {"region": stores["region"].public})


def test_a_forwarded_demand_and_its_decision_verify_only_with_the_senders_key_and_not_as_each_other(stores):
    """回流: the documents a lower node forwards up and the upper node sends down are signed under their own
    contexts, so a demand cannot be replayed as a decision (or as a catalog entry)."""
    demand = {"demand_id": "XQ-1", "requester_code": CONSUMER, "resource_code": RESOURCE, "items": ["姓名"]}
    body = relay.encode_demand(demand, "region", stores["region"].active)
    assert relay.decode_demand(body, trusted(stores)) == ("region", demand)
    for decode in (relay.decode_decision, relay.decode_catalog_entry):
        with pytest.raises(relay.CatalogEntryError, match="signature: does not verify"):
            decode(body, trusted(stores))
    decision = {"demand_id": "XQ-1", "state": "APPROVED", "grant": {"items": ["姓名"]}}
    down = relay.encode_decision(decision, "dept", stores["dept"].active)
    assert relay.decode_decision(down, trusted(stores)) == ("dept", decision)
    with pytest.raises(relay.CatalogEntryError, match="signature: does not verify"):
        relay.decode_decision(down.replace(b"APPROVED", b"REJECTED"), trusted(stores))
    with pytest.raises(relay.CatalogEntryError, match="at most"):
        relay.decode_demand(b" " * (relay.MAX_DEMAND_BYTES + 1), trusted(stores))


def test_relayed_messages_at_a_node_without_peers_are_poison_naming_the_setting():
    from adapters.rabbit.inbound import Poison, decode

    with pytest.raises(Poison, match="trusts none .*exchange.peers_dir"):
        decode(relay.CONTENT_TYPE, b"")


def test_a_batch_signature_verified_once_does_not_vouch_for_another_signature_or_record(stores):
    verified: envelopes.Verified = set()
    good = parts(stores["dept"], "dept", rows())
    assert all(envelopes.verify(part, trusted(stores), verified) == [] for part in good)
    assert len(verified) == 1, "five records of one batch: one signature check"
    signed = good[0].signed
    forged_signature = envelopes.Envelope(*[getattr(good[1], f) for f in (
        "batch_id", "node_id", "provider_code", "resource_code", "consumer_code", "created_at", "records")],
        signed=type(signed)(signed.tree_size, signed.root, signed.kid, signed.algorithm, bytes(64)), proof=good[1].proof)
    assert envelopes.verify(forged_signature, trusted(stores), verified)
    other_record = envelopes.Envelope(*[getattr(good[1], f) for f in (
        "batch_id", "node_id", "provider_code", "resource_code", "consumer_code", "created_at")],
        records=(Record("R9", 9, Operation.UPSERT, {}),), signed=signed, proof=good[1].proof)
    assert envelopes.verify(other_record, trusted(stores), verified)


def test_tier_link_refuses_a_node_id_with_a_dot_as_a_usage_error(capsys):
    from node.cli import main

    code = main(["tier", "link", "--lower-vhost", "a", "--lower-node", "x.y", "--platform", "p",
                 "--upper-vhost", "b", "--upper-node", "z"])
    assert code == 2
    assert capsys.readouterr().err.strip() == "exnode: --lower-node: 'x.y' must be a non-empty name without dots"


def test_the_rpc_links_carry_requests_down_and_answers_up_acking_after_confirm():
    request, reply = shovel.rpc_links(lower_vhost="dept", lower_node="hhht", upper_vhost="region", upper_node="nmg",
                                      name="exnode-hhht-to-nmg")
    assert request[:5] == ("exnode-hhht-to-nmg-rpc", "region", "dept", "hhht", "exnode.hhht.rpc")
    assert (request[5]["src-uri"], request[5]["dest-uri"]) == ("amqp:///region", "amqp:///dept")
    assert request[5]["src-queue"] == request[5]["dest-queue"] == "exnode.hhht.rpc"
    assert reply[:5] == ("exnode-hhht-to-nmg-rpc-reply", "dept", "region", "nmg", "exnode.nmg.rpc-reply")
    assert (reply[5]["src-uri"], reply[5]["dest-uri"]) == ("amqp:///dept", "amqp:///region")
    assert request[5]["ack-mode"] == reply[5]["ack-mode"] == "on-confirm"

"""Household checks (家庭经济状况核对) over the real RabbitMQ, on both databases: one signed request per
target, answers from the reference responder (a bank) collected as they arrive, a forged answer INVALID, a
duplicate ignored, a silent target LATE at the deadline, the report with every answer's signature; and
the bad input that files nothing."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pika
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from adapters.responder import Responder, answer_for, canonical
from catalog.checks import Member, TargetState
from catalog.errors import InvalidField
from security.broker_sealing import node_key, parse_entry, public_entry, seal_message
from security.identity import Principal
from security.keys import KeyStore, public_keys_document
from tests.fault.support import AMQP, CONSUMER
from tests.integration.grpc_node import RunningNode, make_config
from tests.message_schema import assert_conforms

WANG, LI = "360426199101010071", "11010519491231002X"



def delete_rpc_topology(node_id: str, *targets: str) -> None:
    """The queues and dead-letter exchange a check's node and its targets declared on the shared broker."""
    with pika.BlockingConnection(pika.URLParameters(AMQP)) as connection:
        channel = connection.channel()
        for queue in (f"exnode.{node_id}.rpc", f"exnode.{node_id}.rpc-reply", f"exnode.{node_id}.dlq",
                      *(f"exnode.{target}.rpc" for target in targets)):
            channel.queue_delete(queue)
        channel.exchange_delete(f"exnode.{node_id}.dlx")

@pytest.fixture(params=["sqlite", "postgresql"])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[RunningNode, dict[str, str]]]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else ""
    suffix = uuid.uuid4().hex[:8]
    names = {"bank": f"bank-{suffix}", "tax": f"tax-{suffix}", "house": f"house-{suffix}", "plain": f"plain-{suffix}",
             "gone": f"gone-{suffix}"}
    node_id = f"hc{suffix}"
    config = make_config(tmp_path / "node", url)
    config = replace(config, node=replace(config.node, id=node_id), exchange=replace(config.exchange, dispatch=False))
    peers = config.path(config.exchange.peers_dir)
    peers.mkdir(parents=True)
    responder = Responder(AMQP, names["bank"], {"members": {WANG: {"存款余额": 52000.5, "理财产品": 0}}},
                          tmp_path / "bank")
    (peers / "bank.json").write_text((tmp_path / "bank" / "public-keys.json").read_text(), encoding="utf-8")
    for role in ("tax", "house", "gone"):  # trusted targets that never answer by themselves
        store = KeyStore.create(tmp_path / role)
        (peers / f"{role}.json").write_text(json.dumps(public_keys_document(store, names[role])), encoding="utf-8")
    with pika.BlockingConnection(pika.URLParameters(AMQP)) as connection:  # tax and house have a request queue;
        channel = connection.channel()                                     # "gone" never connected to the broker
        for role in ("tax", "house"):
            channel.queue_declare(f"exnode.{names[role]}.rpc", durable=True, arguments={"x-queue-type": "quorum"})
    plain = public_keys_document(KeyStore.create(tmp_path / "plain"), names["plain"])
    del plain["encryption"]  # trusted, but publishes no encryption key: nothing may be sent to it
    (peers / "plain.json").write_text(json.dumps(plain), encoding="utf-8")
    thread = threading.Thread(target=responder.run, daemon=True)
    thread.start()
    running = RunningNode(config)
    running.start_rpc()
    yield running, names
    responder.stop()
    thread.join(10)
    running.close()
    delete_rpc_topology(node_id, *names.values())


def responder_key(setup):
    """The reference responder's encryption key (its key directory beside the node's)."""
    from cryptography.hazmat.primitives import serialization

    from adapters.responder import load_encryption_key
    from security.sealing import HPKE_X25519, ConsumerPrivateKey

    running, names = setup
    private = load_encryption_key(running.config.path("..") / "bank")
    return ConsumerPrivateKey(HPKE_X25519, private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


CENTRE = Principal("核对中心", CONSUMER, frozenset({"consumer"}))


def capture(app) -> tuple[list[bytes], list[bytes]]:
    """Record every request the node publishes and every answer it receives (then pass them on)."""
    sent: list[bytes] = []
    received: list[bytes] = []
    publish, receive = app.publish, app.receive

    def publishing(target: str, body: bytes, correlation: str) -> None:
        sent.append(body)
        publish(target, body, correlation)

    def receiving(correlation: str, body: bytes) -> None:
        received.append(body)
        receive(correlation, body)

    app.publish, app.receive = publishing, receiving
    return sent, received


def members() -> list[Member]:
    return [Member(WANG, "王芳"), Member(LI.lower(), "李娜")]


def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_a_check_collects_signed_answers_and_completes_at_the_deadline(setup):
    running, names = setup
    app = running.node.checks
    sent, received = capture(app)
    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=6)
    check = app.file_check(CENTRE, members(), "低保申请家庭经济状况核对", "SQ2026-001",
                           [(names["bank"], "银行"), (names["tax"], "税务"), (names["house"], "住建/房产")], deadline)
    state = lambda name: app.get_check(CENTRE, check.id).target(name)  # noqa: E731
    wait_for(lambda: state(names["bank"]).state is TargetState.ANSWERED)
    bank = state(names["bank"])
    assert bank.findings == ({"id_number": WANG, "items": {"存款余额": 52000.5, "理财产品": 0}},) and bank.signature
    assert len(sent) == 3 and len(received) == 1  # the node's requests and the responder's answer, as published
    readers = {running.config.node.id: running.node.encryption, names["bank"]: responder_key(setup),
               **{names[r]: node_key(KeyStore.load(running.config.path("..") / r)) for r in ("tax", "house")}}
    for body in sent + received:  # what crossed the broker: members and findings sealed to their one reader
        assert_conforms(body, readers)
        assert not any(s.encode() in body for s in (WANG, LI, LI.lower(), "王芳", "李娜", "52000")), body

    forger = ed25519.Ed25519PrivateKey.generate()  # an answer for the tax office, not signed by its key
    forged = answer_for({"check_id": check.id, "members": []}, {"members": {}}, names["tax"])
    body = json.dumps({"answer": forged, "kid": "whatever",
                       "signature": base64.b64encode(forger.sign(b"exnode-check-answer/1\n" + canonical(forged)))
                       .decode()}).encode()
    body = seal_message(body, running.config.node.id, parse_entry(public_entry(running.node.encryption)))
    with pika.BlockingConnection(pika.URLParameters(AMQP)) as connection:
        reply = f"exnode.{running.config.node.id}.rpc-reply"
        channel = connection.channel()
        channel.basic_publish("", reply, body, pika.BasicProperties(correlation_id=f"check:{check.id}:{names['tax']}"))
        duplicate = answer_for({"check_id": check.id, "members": [{"id_number": LI}]}, {"members": {LI: {"x": 1}}},
                               names["bank"])
        channel.basic_publish("", reply, json.dumps({"answer": duplicate, "kid": "k", "signature": ""}).encode(),
                              pika.BasicProperties(correlation_id=f"check:{check.id}:{names['bank']}"))
    wait_for(lambda: state(names["tax"]).state is TargetState.INVALID)
    assert "does not verify" in state(names["tax"]).reason
    assert state(names["bank"]).findings == bank.findings  # the second bank answer changed nothing
    assert not app.get_check(CENTRE, check.id).complete
    wait_for(lambda: dt.datetime.now(dt.UTC) > deadline, timeout=10)
    final = app.get_check(CENTRE, check.id)
    assert final.target(names["house"]).state is TargetState.LATE and final.complete
    report = app.export_csv(CENTRE, check.id).decode("utf-8")
    assert report.startswith("\ufeff核对编号") and "52000.5" in report and bank.signature in report
    with pytest.raises(Exception, match="check"):
        app.get_check(Principal("x", "11100000MB01284764", frozenset({"consumer"})), check.id)


def test_a_target_without_a_request_queue_is_undelivered_at_once_not_late_at_the_deadline(setup):
    """The broker returns the request (mandatory): the target is final with the reason naming the queue, and
    the other targets are unaffected."""
    running, names = setup
    app = running.node.checks
    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)
    check = app.file_check(CENTRE, members(), "低保申请家庭经济状况核对", "SQ2026-011",
                           [(names["bank"], "银行"), (names["gone"], "证券")], deadline)
    state = lambda name: app.get_check(CENTRE, check.id).target(name)  # noqa: E731
    wait_for(lambda: state(names["gone"]).state is TargetState.UNDELIVERED)
    wait_for(lambda: state(names["bank"]).state is TargetState.ANSWERED)
    gone = state(names["gone"])
    assert f"exnode.{names['gone']}.rpc" in gone.reason and "not delivered" in gone.reason, gone.reason
    assert app.get_check(CENTRE, check.id).complete  # long before its deadline
    assert dt.datetime.now(dt.UTC) < deadline
    from lxml import etree

    from node.files.check_report import report_schema
    document = etree.fromstring(app.export_xml(CENTRE, check.id))
    assert report_schema().validate(document), report_schema().error_log
    assert {t.get("state") for t in document.iter("{urn:exnode:check-report:v1}target")} == {"ANSWERED", "UNDELIVERED"}


@pytest.mark.parametrize(("change", "field"), [
    ({"authorisation": ""}, "authorisation"),
    ({"members": [Member(WANG, "王芳"), Member(WANG[:-1] + "2", "李娜")]}, "members[1].id_number"),
    ({"targets": [("bank-unknown", "银行")]}, "targets[0].name"),
    ({"targets": [("TAX", "税务")]}, "targets[0].name"),
])
def test_bad_input_files_no_check_and_names_the_field(setup, change, field):
    running, names = setup
    arguments = {"members": members(), "purpose": "低保核对", "authorisation": "SQ2026-002",
                 "targets": [(names["bank"], "银行")], "deadline": dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
                 **change}
    with pytest.raises(InvalidField) as refused:
        running.node.checks.file_check(CENTRE, **arguments)
    assert field in {p.field for p in refused.value.problems}
    with running.node.uow() as uow:
        from node.storage.tables import household_checks
        assert uow.connection.execute(household_checks.select()).first() is None


def test_a_target_without_an_encryption_key_is_refused_at_filing_and_nothing_is_filed(setup, capsys):
    """Its request could only cross the broker in clear: FAILED_PRECONDITION naming it, not LATE later."""
    from node.cli import main
    from node.storage.tables import household_checks

    running, names = setup
    client = ["--server", running.address, "--token", running.token(CONSUMER, ["consumer"])]
    sent, _ = capture(running.node.checks)
    assert main(["check", "file", *client, "--member", f"{WANG}=王芳", "--target", f"{names['bank']}=银行",
                 "--target", f"{names['plain']}=税务", "--purpose", "低保申请核对", "--authorisation", "SQ2026-010",
                 "--deadline-minutes", "1"]) == 1
    error = capsys.readouterr().err
    assert "FAILED_PRECONDITION" in error and names["plain"] in error and "encryption key" in error, error
    assert names["bank"] not in error.split("FAILED_PRECONDITION", 1)[1]  # names the one without a key
    assert not sent  # not even to the bank
    with running.node.uow() as uow:
        assert uow.connection.execute(household_checks.select()).first() is None


def test_the_cli_files_watches_and_exports_a_check_through_grpc(setup, tmp_path, capsys):
    from node.cli import main

    running, names = setup
    client = ["--server", running.address, "--token", running.token(CONSUMER, ["consumer"])]
    assert main(["check", "file", *client, "--member", f"{WANG}=王芳", "--member", f"{LI}=李娜",
                 "--target", f"{names['bank']}=银行", "--target", f"{names['house']}=住建/房产",
                 "--purpose", "低保申请核对", "--authorisation", "SQ2026-003", "--deadline-minutes", "0.1",
                 "--json"]) == 0
    filed = json.loads(capsys.readouterr().out)
    assert [t["state"] for t in filed["targets"]] == ["PENDING", "PENDING"]
    assert main(["check", "watch", *client, filed["id"], "--json"]) == 0
    states = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    last = {t["name"]: t["state"] for t in states[-1]["targets"]}
    assert states[-1]["complete"] and last == {names["bank"]: "ANSWERED", names["house"]: "LATE"}
    out = tmp_path / "report.csv"
    assert main(["check", "export", *client, filed["id"], "--out", str(out)]) == 0
    assert out.read_bytes().startswith("\ufeff核对编号".encode())
    xml = tmp_path / "report.xml"
    assert main(["check", "export", *client, filed["id"], "--format", "xml", "--out", str(xml)]) == 0
    from lxml import etree

    from node.files.check_report import report_schema
    document = etree.fromstring(xml.read_bytes())
    assert report_schema().validate(document)
    assert {t.get("state") for t in document.iter("{urn:exnode:check-report:v1}target")} == {"ANSWERED", "LATE"}
    assert main(["check", "file", *client, "--member", f"{WANG}=王芳", "--target", f"{names['bank']}=银行",
                 "--purpose", "低保申请核对"]) == 1
    assert "INVALID_ARGUMENT: authorisation" in capsys.readouterr().err


def test_members_findings_and_answers_are_sealed_at_rest_and_deleted_after_the_retention(setup):
    from sqlalchemy import select

    from node.bootstrap import purge_checks
    from node.storage.tables import check_targets, household_checks

    running, names = setup
    app = running.node.checks
    check = app.file_check(CENTRE, members(), "低保申请家庭经济状况核对", "SQ2026-002", [(names["bank"], "银行")],
                           dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2))
    wait_for(lambda: app.get_check(CENTRE, check.id).target(names["bank"]).state is TargetState.ANSWERED)
    with running.node.uow() as uow:
        rows = [tuple(r) for table in (household_checks, check_targets)
                for r in uow.connection.execute(select(table).where(
                    (table.c.id if table is household_checks else table.c.check_id) == check.id))]
        answer = uow.checks.answer(check.id, names["bank"])
    blob = repr(rows).encode()
    for secret in (WANG, LI, "王芳", "李娜", "52000.5"):  # the ID numbers, the names, what the bank holds
        assert secret.encode() not in blob and secret.encode("unicode_escape") not in blob, secret
    assert all(r[-1] for r in rows)  # every row names the data key that seals it
    assert answer is not None and b"52000.5" in answer  # the node opens the answer as received
    assert app.get_check(CENTRE, check.id).target(names["bank"]).findings[0]["id_number"] == WANG

    now = dt.datetime.now(dt.UTC)
    assert purge_checks(running.node, now)[0] == 0  # within the retention: kept
    later = now + dt.timedelta(days=running.config.checks.retention_days, minutes=1)
    assert purge_checks(running.node, later)[0] >= 1
    with running.node.uow() as uow:
        assert uow.checks.get(check.id) is None


def test_members_findings_and_answers_are_nowhere_in_clear_in_the_database(setup):
    """Household-check data is personal data too (issue 17): the members' ID numbers and names, the bank's
    findings and its signed answer are sealed at rest, and still read back whole."""

    running, names = setup
    app = running.node.checks
    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
    check = app.file_check(CENTRE, [Member(WANG, "王芳"), Member(LI, "李秘密")], "低保申请家庭经济状况核对",
                           "SQ2026-009", [(names["bank"], "银行")], deadline)
    wait_for(lambda: app.get_check(CENTRE, check.id).target(names["bank"]).state is TargetState.ANSWERED)
    read = app.get_check(CENTRE, check.id)
    assert [m.id_number for m in read.members] == [WANG, LI]
    assert read.target(names["bank"]).findings[0]["items"]["存款余额"] == 52000.5
    with running.node.uow() as uow:
        assert uow.checks.answer(check.id, names["bank"]) is not None
    secrets = [WANG.encode(), LI.encode(), "李秘密".encode(), b"52000.5"]
    blob, where = database_blob(running.config.database_url)
    assert check.id.encode() in blob  # the node's database, and the check is in it
    found = [s.decode() for s in secrets if s in blob]
    assert not found, f"{where} holds {found} in clear"


def database_blob(url: str) -> tuple[bytes, str]:
    """Every byte the database keeps (the SQLite file with its WAL, or a pg_dump), and what it is."""
    import subprocess

    if url.startswith("sqlite"):
        database = Path(url.removeprefix("sqlite:///"))
        return b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*")), f"the SQLite file {database}"
    dump = subprocess.run(["pg_dump", "--dbname", url.replace("+psycopg", "")], capture_output=True, check=True)
    return dump.stdout, "pg_dump"


def test_the_reference_responder_answers_a_node_of_the_national_suite_sealed_to_its_sm2_key(tmp_path):
    """An SM2-SM3 node names an SM2-SM4 reply key; the responder seals its answer to it (SM2 + SM4-GCM, as the
    schema says) and the node opens and verifies it: ANSWERED, not LATE."""
    from node.config import load_config
    from security.identity import create_dev_issuer_key
    from security.sealing import SM2_SM4

    suffix = uuid.uuid4().hex[:8]
    bank, node_id = f"bank-{suffix}", f"sm{suffix}"
    data = tmp_path / "node"
    KeyStore.create(data / "keys", "SM2-SM3")
    create_dev_issuer_key(data / "keys")
    config = load_config(data, environ={})
    config = replace(config, node=replace(config.node, id=node_id), auth=replace(config.auth, trust_dev_issuer=True),
                     exchange=replace(config.exchange, dispatch=False))
    peers = config.path(config.exchange.peers_dir)
    peers.mkdir(parents=True)
    responder = Responder(AMQP, bank, {"members": {WANG: {"存款余额": 1200}}}, tmp_path / "bank")
    (peers / "bank.json").write_text((tmp_path / "bank" / "public-keys.json").read_text(), encoding="utf-8")
    thread = threading.Thread(target=responder.run, daemon=True)
    thread.start()
    running = RunningNode(config)
    try:
        assert running.node.encryption.algorithm == SM2_SM4
        running.start_rpc()
        app = running.node.checks
        sent, received = capture(app)
        check = app.file_check(CENTRE, [Member(WANG, "王芳")], "低保申请家庭经济状况核对", "SQ2026-011",
                               [(bank, "银行")], dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2))
        wait_for(lambda: app.get_check(CENTRE, check.id).target(bank).state is not TargetState.PENDING, 60)
        answered = app.get_check(CENTRE, check.id).target(bank)
        assert answered.state is TargetState.ANSWERED, answered.reason
        assert answered.findings == ({"id_number": WANG, "items": {"存款余额": 1200}},)
        (reply,) = received
        assert json.loads(reply)["sealed"]["x-exnode-enc-alg"] == SM2_SM4 and b"1200" not in reply
        assert_conforms(reply, {node_id: running.node.encryption})
    finally:
        responder.stop()
        thread.join(10)
        running.close()
        delete_rpc_topology(node_id, bank)
